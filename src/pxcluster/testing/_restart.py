"""Testing layer: kill a cluster's controller and start another in its place."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

from pxcluster._errors import ConnectionLost, PxclusterTimeoutError
from pxcluster.client import MultiEngineClient
from pxcluster.launchers import Cluster
from pxcluster.testing._waiting import wait_for


@contextlib.contextmanager
def controller_restarted(
    cluster: Cluster, mec: MultiEngineClient, timeout: float = 30.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Kill ``cluster``'s controller (SIGKILL, as a crash would), start a new ``pxcontroller``
    in its profile, and wait until ``mec`` sees the same engines again.

    On exit the new controller is stopped, and its engines with it.

    Raises:
        TimeoutError: the engines did not come back within ``timeout`` seconds.
    """
    engines = mec.get_ids()
    pid = cluster.controller_pid
    if pid is None:
        raise RuntimeError("this cluster has no controller running to restart")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not cluster.controller_alive(), timeout=10, message="the controller gone")
    command = [sys.executable, "-m", "pxcluster.cli.controller", "--profile-dir"]
    proc = subprocess.Popen(
        [*command, str(cluster.paths.dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def back() -> bool:
        try:
            return mec.get_ids(timeout=2) == engines
        except (ConnectionLost, PxclusterTimeoutError):
            return False  # not reconnected yet

    try:
        wait_for(back, timeout=timeout, message="the engines back with the new controller")
        yield proc
    finally:
        proc.terminate()  # stops its engines too
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
