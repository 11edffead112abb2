"""Defaults from config.json, turned into click's ``default_map``.

Precedence, highest first: a flag on the command line, an environment variable (``DENOISE_<COMMAND>_<OPTION>``, or
``DENOISE_<OPTION>`` for the options every command shares), a ``--config FILE``, the built-in config.json. A config
file has a ``common`` section (options shared by the commands) and a section per command; a command's section wins
over ``common``. Unknown sections or keys and values of the wrong type are errors that name the key.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Optional

import click

from ..core.errors import UsageError

COMMON = "common"


def builtin_config() -> dict:
    """The config.json shipped with the package (the top-level config.json of the source tree)."""
    text = resources.files("denoise_cli").joinpath("config.json").read_text(encoding="utf-8")
    return json.loads(text, object_pairs_hook=_unique_keys)


def read_config_file(path: str) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"config {path}: cannot read ({exc.strerror or exc})") from None
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise UsageError(f"config {path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except DuplicateKey as exc:
        raise UsageError(f"config {path}: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"config {path}: expected a JSON object of sections")
    return data


class DuplicateKey(ValueError):
    """A JSON object names a key twice (json keeps the last silently; a config file must not)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """json's object_pairs_hook: the object as a dict, or DuplicateKey."""
    seen: dict = {}
    for key, value in pairs:
        if key in seen:
            raise DuplicateKey(f"key {key!r} appears twice in one section")
        seen[key] = value
    return seen


@dataclass
class Defaults:
    """The merged defaults per command, and which keys the user's config file set."""

    default_map: dict
    from_user_file: dict = field(default_factory=dict)  # command -> set of keys set by --config FILE

    def source(self, ctx: click.Context, name: str) -> str:
        """Where the value of option ``name`` of the command in ``ctx`` came from."""
        origin = ctx.get_parameter_source(name)
        if origin == click.core.ParameterSource.COMMANDLINE:
            return "flag"
        if origin == click.core.ParameterSource.ENVIRONMENT:
            return "environment"
        if name in self.from_user_file.get(ctx.info_name, set()):
            return "config file"
        return "default"


def load_defaults(group: click.Group, user_file: Optional[str]) -> Defaults:
    """Validate the built-in config and ``user_file`` against ``group``'s commands and merge them."""
    builtin = builtin_config()
    validate_config(builtin, group, "built-in config.json")
    user = {}
    if user_file:
        user = read_config_file(user_file)
        validate_config(user, group, f"config {user_file}")
    default_map: dict = {}
    from_user: dict = {}
    for name, command in group.commands.items():
        options = _option_names(command)
        merged = {}
        for layer in (builtin, user):
            for section in (COMMON, name):
                for key, value in layer.get(section, {}).items():
                    if key in options:
                        merged[key] = value
                        if layer is user:
                            from_user.setdefault(name, set()).add(key)
        default_map[name] = merged
    return Defaults(default_map, from_user)


def _option_names(command: click.Command) -> dict:
    return {param.name: param for param in command.params if isinstance(param, click.Option)}


def validate_config(config: dict, group: click.Group, where: str) -> None:
    """Raise UsageError for an unknown section or key, or a value an option would not accept."""
    commands = group.commands
    for section, values in config.items():
        if section != COMMON and section not in commands:
            known = ", ".join([COMMON] + sorted(commands))
            raise UsageError(f"{where}: unknown section {section!r} (known: {known})")
        if not isinstance(values, dict):
            raise UsageError(f"{where}: section {section!r} must be an object")
        targets = commands.values() if section == COMMON else [commands[section]]
        for key, value in values.items():
            params = [p for p in (_option_names(c).get(key) for c in targets) if p is not None]
            if not params:
                raise UsageError(f"{where}: unknown key {section}.{key}")
            for param in params:
                _check_value(param, value, f"{where}: {section}.{key}")


def _check_value(param: click.Option, value: Any, label: str) -> None:
    if value is None:
        return
    if param.is_flag and not param.count:
        if not isinstance(value, bool):
            raise UsageError(f"{label}: expected true or false, got {json.dumps(value)}")
        return
    if isinstance(value, bool) or isinstance(value, (list, dict)):
        raise UsageError(f"{label}: expected a {param.type.name}, got {json.dumps(value)}")
    if isinstance(param.type, click.types.IntParamType) and not isinstance(value, int):
        raise UsageError(f"{label}: expected an integer, got {json.dumps(value)}")
    if isinstance(param.type, click.types.FloatParamType) and not isinstance(value, (int, float)):
        raise UsageError(f"{label}: expected a number, got {json.dumps(value)}")
    try:
        param.type.convert(value, param, None)
    except click.BadParameter as exc:
        raise UsageError(f"{label}: {exc.message}") from None
