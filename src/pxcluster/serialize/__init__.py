"""Serialize layer (bottom, pure): user objects to frames and back.

Pickle protocol 5 through cloudpickle, so that functions, lambdas, closures and classes
defined in ``__main__`` travel by value. Large contiguous buffers (numpy arrays, bytes,
anything exporting the buffer protocol) go out of band: they become frames of their own and
are never copied into the pickle stream.
"""

from pxcluster.serialize._pickling import (
    OUT_OF_BAND_THRESHOLD,
    detach,
    dumps,
    dumps_many,
    loads,
    loads_many,
)

__all__ = ["OUT_OF_BAND_THRESHOLD", "detach", "dumps", "dumps_many", "loads", "loads_many"]
