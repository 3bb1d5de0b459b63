"""Client layer: splitting a sequence over engines (scatter) and joining parts (gather).

Parts are contiguous and differ in length by at most one, longer parts first, so
``scatter('a', range(10))`` over 4 engines gives 3, 3, 2, 2 items. Slicing keeps numpy
arrays as views, which travel out of band without copies.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def split_bounds(length: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` (start, stop) pairs covering ``range(length)``."""
    base, extra = divmod(length, parts)
    bounds = []
    start = 0
    for index in range(parts):
        stop = start + base + (1 if index < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def as_sliceable(seq: Iterable[Any]) -> Sequence[Any]:
    """``seq`` itself if it slices into parts a user expects, else a list of it."""
    if isinstance(seq, (list, tuple)) or hasattr(seq, "__array__"):
        return seq  # type: ignore[return-value]
    return list(seq)


def partition(seq: Iterable[Any], parts: int, flatten: bool = False) -> list[Any]:
    """Split ``seq`` into ``parts`` contiguous pieces (``flatten``: 1-item pieces unwrapped)."""
    items = as_sliceable(seq)
    pieces = [items[lo:hi] for lo, hi in split_bounds(len(items), parts)]
    if flatten:
        return [p[0] if len(p) == 1 else p for p in pieces]
    return pieces


def concatenate(parts: Sequence[Any]) -> Any:
    """Join gathered parts: numpy arrays into one array, anything else into one list."""
    if parts and all(getattr(p, "ndim", 0) >= 1 and hasattr(p, "__array__") for p in parts):
        import numpy

        return numpy.concatenate(parts)
    out: list[Any] = []
    for part in parts:
        if isinstance(part, (list, tuple, range)) or getattr(part, "ndim", 0) >= 1:
            out.extend(part)
        else:
            out.append(part)
    return out
