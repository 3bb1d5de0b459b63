"""The suite on every Python the project supports that this machine has.

The default interpreter runs everything (the README's test command); nox runs the unit tests
and the Quick start's main job on each other supported minor version found here, on PATH or
among pyenv's versions. A version the machine lacks is not a failure: there is nothing to run
it on, and the session list says which were found.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nox

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

_PREFIX = "Programming Language :: Python :: "
# The supported versions are pyproject.toml's classifiers: one list to keep.
SUPPORTED = tuple(
    c.removeprefix(_PREFIX)
    for c in tomllib.loads(Path("pyproject.toml").read_text())["project"]["classifiers"]
    if c.startswith(_PREFIX) and c.removeprefix(_PREFIX).count(".") == 1
)
nox.options.sessions = ["other_pythons"]
nox.options.default_venv_backend = "venv"


def _works(python: str, minor: str) -> bool:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30, check=False,
        )
    except OSError:
        return False
    return out.returncode == 0 and out.stdout.strip() == minor


def _interpreter(minor: str) -> str | None:
    """A working ``python<minor>``: on PATH (pyenv's shims may refuse), else pyenv's own."""
    found = shutil.which(f"python{minor}")
    if found and _works(found, minor):
        return found
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for candidate in sorted(root.glob(f"versions/{minor}.*/bin/python{minor}"), reverse=True):
        if _works(str(candidate), minor):
            return str(candidate)
    return None


_THIS = f"{sys.version_info[0]}.{sys.version_info[1]}"
_FOUND = {m: p for m in SUPPORTED if m != _THIS and (p := _interpreter(m)) is not None}


@nox.session
@nox.parametrize("python", list(_FOUND.values()), ids=list(_FOUND))
def other_pythons(session: nox.Session) -> None:
    """Unit tests and the Quick start's main job on another supported Python."""
    session.install("-q", "-e", ".[unit]", "numpy")
    session.run("python", "-m", "pytest", "tests", "--ignore=tests/integration", "-q")
    session.run("python", "examples/quickstart.py")
