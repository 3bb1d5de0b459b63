"""Serialize layer (bottom, pure): user objects to frames and back.

Pickle protocol 5 through cloudpickle, so that functions, lambdas, closures and classes
defined in ``__main__`` travel by value. Large contiguous buffers (numpy arrays, bytes,
anything exporting the buffer protocol) go out of band: they become frames of their own and
are never copied into the pickle stream.
"""

from pxcluster.serialize._functions import FunctionMemo
from pxcluster.serialize._pickling import (
    OUT_OF_BAND_THRESHOLD,
    detach,
    dumps,
    dumps_many,
    loads,
    loads_many,
)
from pxcluster.serialize._shm import (
    SHM_THRESHOLD,
    create_segment,
    export_frames,
    host_key,
    import_frames,
    sweep_stale,
    write_segment,
)
from pxcluster.serialize._shm import available as shm_available
from pxcluster.serialize._shm import unlink as unlink_segments

__all__ = [
    "OUT_OF_BAND_THRESHOLD",
    "SHM_THRESHOLD",
    "FunctionMemo",
    "create_segment",
    "detach",
    "dumps",
    "dumps_many",
    "export_frames",
    "host_key",
    "import_frames",
    "loads",
    "loads_many",
    "shm_available",
    "sweep_stale",
    "unlink_segments",
    "write_segment",
]
