"""Engine layer: executes requests in a persistent namespace; the engine process itself."""

from pxcluster.engine._engine import Engine
from pxcluster.engine._mpi import MpiStartupError, MpiWorld, rank_from_environment, start_mpi

__all__ = ["Engine", "MpiStartupError", "MpiWorld", "rank_from_environment", "start_mpi"]
