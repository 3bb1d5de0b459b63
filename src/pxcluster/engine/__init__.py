"""Engine layer: executes requests in a persistent namespace; the engine process itself."""

from pxcluster.engine._engine import Engine

__all__ = ["Engine"]
