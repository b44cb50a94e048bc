"""The packages' one arrow: solver <- flexcouple <- coupling <- flexcouple_cli (the command layer).

Every import in every module is read from its syntax tree, those inside functions too, and also
``importlib.import_module("...")`` with a literal name, so an arrow hidden from the top of a file
still counts. The solver never imports torch (MPI ranks that only simulate must not pay for it).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["solver", "flexcouple", "coupling", "flexcouple_cli"]  # each may import only those before it
FORBIDDEN_EXTRA = {"solver": {"torch"}}


def imported_packages(path: Path) -> dict[str, int]:
    """Top-level package name -> first line importing it, for one module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names = [node.args[0].value]
        for name in names:
            found.setdefault(name.split(".")[0], node.lineno)
    return found


@pytest.mark.parametrize("layer", LAYERS)
def test_no_package_imports_a_layer_above_it(layer):
    above = set(LAYERS[LAYERS.index(layer) + 1:]) | FORBIDDEN_EXTRA.get(layer, set())
    offences = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        for package, line in imported_packages(path).items():
            if package in above:
                offences.append(f"{path.relative_to(ROOT)}:{line} imports {package}")
    assert not offences, f"{layer} may import only {LAYERS[:LAYERS.index(layer)] or 'nothing of ours'}: " + "; ".join(offences)


def test_the_reader_sees_imports_inside_functions_and_import_module(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import os\n\ndef g():\n    from coupling.hybrid import X\n    import importlib\n"
                 "    importlib.import_module('flexcouple_cli.demo')\n")
    assert imported_packages(f) == {"os": 1, "coupling": 4, "importlib": 5, "flexcouple_cli": 6}
