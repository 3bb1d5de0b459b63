"""The package's layers depend downwards only; zmq and IPython stay in their one place each."""

import ast
from pathlib import Path

import pytest

import pxcluster

PACKAGE = Path(pxcluster.__file__).parent

# Higher number = higher layer. A module may import its own or lower layers only, and the
# three middle packages (controller, engine, client) never import one another.
LAYERS = {
    "_errors": 0, "_buffers": 0, "wire": 0, "serialize": 0, "profile": 0,
    "transport": 1,
    "controller": 2, "engine": 2, "client": 2, "relay": 2,
    "launchers": 3, "monitor": 3, "kernelclient": 3,
    "testing": 4, "magics": 4, "dashboard": 4, "cli": 5,
}


def imports_of(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts == ("__init__.py",):
            continue  # the public facade re-exports from every layer
        yield rel.parts[0].removesuffix(".py"), path


@pytest.mark.parametrize(("layer", "path"), list(modules()), ids=lambda v: str(v))
def test_imports_point_downwards(layer, path):
    own = LAYERS[layer]
    for name in imports_of(path):
        parts = name.split(".")
        if parts[0] == "zmq":
            assert layer == "transport", f"{path} imports zmq; only transport may"
        if parts[0] == "IPython":
            assert layer == "magics", f"{path} imports IPython; only magics may"
        if parts[0] != "pxcluster" or len(parts) < 2:
            continue
        other = parts[1]
        assert LAYERS[other] <= own, f"{path} ({layer}) imports higher layer {other}"
        if own == 2 and LAYERS[other] == 2:
            assert other == layer, f"{path} ({layer}) imports sibling {other}"


def test_public_surface():
    assert sorted(pxcluster.__all__) == [
        "Cluster", "CompositeError", "EngineError", "MapTask", "MultiEngineClient",
        "PendingResult", "PxclusterError", "PxclusterTimeoutError", "RemoteError", "ResultList",
        "StringTask", "TaskClient", "TaskResult", "__version__", "register_joblib_backend",
    ]
