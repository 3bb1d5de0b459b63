"""Profile layer: the environment variables through which a launcher tells an engine who it is.

A launcher sets them in each process's environment (a batch job script exports them from
the scheduler's own variables); the engine reads them with ``launch_info`` and sends the
result with its registration, so that the controller and clients can map an engine id to
the launcher's handle (job id, array index) and know when its job's walltime ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

#: Name of the launcher that started this process ("local", "slurm", ...).
LAUNCHER_ENV = "PXCLUSTER_LAUNCHER"
#: The batch job id (for an array: the array's id).
JOB_ID_ENV = "PXCLUSTER_JOB_ID"
#: The index in the job array (or the MPI rank).
ARRAY_INDEX_ENV = "PXCLUSTER_ARRAY_INDEX"
#: Epoch seconds at which the job's walltime ends.
END_TIME_ENV = "PXCLUSTER_END_TIME"


def launch_info(environ: Mapping[str, str]) -> dict[str, str | int | float]:
    """The ``launch`` field of an engine's registration, from its environment.

    Only variables that are set (and parse) appear; an engine started by hand gets ``{}``.
    """
    info: dict[str, str | int | float] = {}
    launcher = environ.get(LAUNCHER_ENV, "")
    if launcher:
        info["launcher"] = launcher[:64]
    job = environ.get(JOB_ID_ENV, "")
    if job:
        info["job_id"] = job[:128]
    with contextlib.suppress(ValueError):
        info["array_index"] = int(environ.get(ARRAY_INDEX_ENV, ""))
    try:
        end = float(environ.get(END_TIME_ENV, ""))
    except ValueError:
        pass
    else:
        if end > 0:
            info["end_time"] = end
    return info
