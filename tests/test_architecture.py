"""The package layout holds its rules: each layer imports only the layers below it, no module imports click or Flask
outside the interfaces, and no module is longer than the limit the design sets."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "denoise_cli"
#: Lowest first: a module may import its own layer and those before it.
LAYERS = ("core", "methods", "batch", "interfaces")
INTERFACE_ONLY = ("click", "flask", "tqdm")
MAX_LINES = 400


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py"))


def _layer(path: Path):
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 and parts[0] in LAYERS else None


def _imports(path: Path):
    """(absolute module names imported, package-relative targets as layer names) of one module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package_parts = list(path.relative_to(PACKAGE).parts[:-1])
    absolute, layers = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            absolute.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                absolute.add(node.module.split(".")[0])
                if node.module.startswith("denoise_cli."):
                    layers.add(node.module.split(".")[1])
                continue
            base = package_parts[: len(package_parts) - (node.level - 1)]
            target = base + (node.module.split(".") if node.module else [])
            names = target if target else [alias.name for alias in node.names]
            if target:
                layers.add(target[0])
            else:
                layers.update(names)
    return absolute, layers


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_layer_imports_only_the_layers_below_it(path):
    layer = _layer(path)
    if layer is None:
        return  # the package's own __init__ and __main__ put the API together
    allowed = set(LAYERS[: LAYERS.index(layer) + 1])
    _, layers = _imports(path)
    upward = {name for name in layers if name in LAYERS and name not in allowed}
    assert not upward, f"{path.name} ({layer}) imports {upward}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_interfaces_know_the_terminal_and_web_libraries(path):
    if _layer(path) in ("interfaces", None):
        return
    absolute, _ = _imports(path)
    assert not absolute & set(INTERFACE_ONLY), f"{path.name} imports {absolute & set(INTERFACE_ONLY)}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_longer_than_the_limit(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_LINES


def test_every_module_belongs_to_a_layer():
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert loose == []
