"""Launchers layer: start and stop controllers and engines through launchers (local, MPI, ssh,
Slurm, SGE, PBS) behind one interface (``Launcher``)."""

from pxcluster.launchers._cluster import Cluster, stop_handles, stop_profile
from pxcluster.launchers._engines import (
    RegisteredEngine,
    engine_handle,
    engine_logs,
    registered_engines,
)
from pxcluster.launchers._launcher import (
    LAUNCHERS,
    JobState,
    JobStatus,
    Launcher,
    LaunchHandle,
    LaunchSpec,
    launcher_class,
    make_launcher,
    match_handle,
)
from pxcluster.launchers._processes import ProcessRef
from pxcluster.launchers._record import ClusterRecord, handle_alive, running_controller

__all__ = [
    "LAUNCHERS",
    "Cluster",
    "ClusterRecord",
    "JobState",
    "JobStatus",
    "LaunchHandle",
    "LaunchSpec",
    "Launcher",
    "ProcessRef",
    "RegisteredEngine",
    "engine_handle",
    "engine_logs",
    "handle_alive",
    "launcher_class",
    "make_launcher",
    "match_handle",
    "registered_engines",
    "running_controller",
    "stop_handles",
    "stop_profile",
]
