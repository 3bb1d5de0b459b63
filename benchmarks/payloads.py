"""Benchmarks: the functions sent to engines, and the data the workloads move.

The functions are made inside factories, so every serializer (cloudpickle in pxcluster and
Dask, ipyparallel's canning, the relay's cloudpickle) sends them by value: no engine needs
to import this module, and no system gets a cheaper by-reference pickle than another.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def make_noop() -> Callable[..., None]:
    def noop(*args: Any) -> None:
        return None

    return noop


def make_identity() -> Callable[[Any], Any]:
    def identity(x: Any) -> Any:
        return x

    return identity


def make_square() -> Callable[[Any], Any]:
    return lambda x: x * x


def small_dict() -> dict[str, Any]:
    """A dict of about 1 KB when pickled."""
    return {f"key{i:02d}": f"value-{i:04d}-" + "x" * 8 for i in range(33)}


def big_array(nbytes: int) -> Any:
    """A float64 numpy array of ``nbytes`` bytes with varied content."""
    import numpy

    return numpy.random.default_rng(0).random(nbytes // 8)


def range_array(items: int) -> Any:
    import numpy

    return numpy.arange(items, dtype=numpy.float64)
