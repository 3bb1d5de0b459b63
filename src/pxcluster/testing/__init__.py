"""Testing layer: start real clusters in throw-away profiles, and wait on conditions.

Used by pxcluster's own tests and benchmarks, and usable by projects built on pxcluster.
"""

from pxcluster.testing._cluster import cluster_in, leftover_processes
from pxcluster.testing._restart import controller_restarted
from pxcluster.testing._simulated import simulated_engines
from pxcluster.testing._waiting import wait_for

__all__ = [
    "cluster_in",
    "controller_restarted",
    "leftover_processes",
    "simulated_engines",
    "wait_for",
]
