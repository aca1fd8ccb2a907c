"""The type stubs (.pyi, py.typed) describe what the modules export."""

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "ztensor"


def stub_names(path):
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom) and node.module != "typing":
            names.update(a.asname for a in node.names if a.asname)
    return names


@pytest.mark.parametrize("module", ["ztensor", "ztensor.numpy", "ztensor.torch", "ztensor.codec"])
def test_stub_matches_module(module):
    if module == "ztensor.torch":
        pytest.importorskip("torch")
    mod = importlib.import_module(module)
    stub = PACKAGE / ("__init__.pyi" if module == "ztensor" else module.split(".")[1] + ".pyi")
    names = stub_names(stub)
    missing_at_runtime = {n for n in names if not hasattr(mod, n)}
    assert not missing_at_runtime
    public = set(getattr(mod, "__all__", []))
    assert public <= names | {"errors"}, public - names


def test_py_typed_marker():
    assert (PACKAGE / "py.typed").exists()
