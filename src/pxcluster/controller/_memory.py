"""Controller layer: give memory back to the system after a burst of work.

A burst of a million tiny tasks leaves the C heap with free space spread through it that
``free`` keeps for reuse (glibc trims only from the top of the heap), so the controller's
resident size stays near its peak long after. When the controller is idle again it asks
glibc to return those free pages (``malloc_trim``), which costs a few milliseconds and
only happens on an idle tick. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable


def _find_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _find_trim()


def give_back_memory() -> None:
    """Collect garbage and return free heap pages to the system (glibc only)."""
    gc.collect()
    if _TRIM is not None:
        _TRIM(0)
