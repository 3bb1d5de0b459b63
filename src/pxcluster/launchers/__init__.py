"""Launchers layer: start and stop controllers and engines (local processes for now)."""

from pxcluster.launchers._cluster import (
    Cluster,
    ClusterRecord,
    running_controller,
    stop_profile,
)
from pxcluster.launchers._processes import ProcessRef

__all__ = ["Cluster", "ClusterRecord", "ProcessRef", "running_controller", "stop_profile"]
