"""config.json: complete, matching the library's defaults, validated, and ranked below env and flags."""
import inspect
import json

import pytest

from denoise_cli.interfaces import cli as cli_module
from denoise_cli.interfaces.config import builtin_config
from denoise_cli.methods.tv import tv_denoise
from denoise_cli.methods.zsn2n import zsn2n_denoise

from .conftest import ROOT, SAMPLES, run_cli


def test_every_option_of_every_command_has_a_default_in_config_json():
    config = builtin_config()
    for name, command in cli_module.cli.commands.items():
        options = {p.name for p in command.params if p.opts[0].startswith("-") and p.name != "help"}
        keys = set(config.get(name, {})) | (set(config["common"]) & options)
        assert options == keys, name


def test_the_packaged_config_is_the_top_level_config_json():
    assert builtin_config() == json.loads((ROOT / "config.json").read_text())


@pytest.mark.parametrize("function,section", [(tv_denoise, "tv"), (zsn2n_denoise, "zsn2n")])
def test_library_defaults_equal_config_json(function, section):
    config = builtin_config()[section]
    signature = inspect.signature(function)
    shared = [name for name in signature.parameters if name in config]
    assert len(shared) >= 5
    for name in shared:
        assert signature.parameters[name].default == config[name], name


def _report_params(tmp_path, *args, env=None):
    report = tmp_path / "r.json"
    out = tmp_path / "o.png"
    result = run_cli(*args, "tv", str(SAMPLES / "text.noisy.png"), "-o", out, "--report", report,
                     "--max-iter", "3", "--overwrite", env=env)
    assert result.code == 0, result.stderr
    return json.loads(report.read_text())["images"][0]["params"]


def test_precedence_flag_over_environment_over_config_file_over_builtin(tmp_path):
    user = tmp_path / "user.json"
    user.write_text(json.dumps({"tv": {"weight": 0.05, "norm": "anisotropic"}, "common": {"seed": 7}}))
    params = _report_params(tmp_path)
    assert params["weight"] == {"value": "auto", "source": "default"}
    params = _report_params(tmp_path, "--config", user)
    assert params["weight"] == {"value": 0.05, "source": "config file"}
    assert params["seed"] == {"value": 7, "source": "config file"}
    params = _report_params(tmp_path, "--config", user, env={"DENOISE_TV_WEIGHT": "0.07", "DENOISE_SEED": "3"})
    assert params["weight"] == {"value": 0.07, "source": "environment"}
    assert params["seed"] == {"value": 3, "source": "environment"}
    assert params["norm"] == {"value": "anisotropic", "source": "config file"}
    report = tmp_path / "flag.json"
    result = run_cli("--config", user, "tv", SAMPLES / "text.noisy.png", "-o", tmp_path / "f.png", "--weight",
                     "0.2", "--max-iter", "3", "--report", report, env={"DENOISE_TV_WEIGHT": "0.07"})
    assert result.code == 0, result.stderr
    assert json.loads(report.read_text())["images"][0]["params"]["weight"] == {"value": 0.2, "source": "flag"}


@pytest.mark.parametrize("content,message", [
    ({"tv": {"wieght": 0.1}}, "unknown key tv.wieght"),
    ({"tvv": {}}, "unknown section 'tvv'"),
    ({"tv": {"max_iter": "many"}}, "tv.max_iter: expected an integer"),
    ({"tv": {"norm": "euclid"}}, "tv.norm"),
    ({"common": {"quiet": "yes"}}, "common.quiet: expected true or false"),
    ({"tv": {"weight": "loud"}}, "tv.weight"),
])
def test_bad_config_files_name_the_key(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    result = run_cli("--config", path, "tv", SAMPLES / "text.noisy.png", "-o", tmp_path / "o.png")
    assert result.code != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
