"""Testing layer: a real local cluster in a temporary profile folder, always cleaned up."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil

from pxcluster.launchers import Cluster


def leftover_processes(pids: Sequence[int]) -> list[int]:
    """Those of ``pids`` that still run (zombies count as gone)."""
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


@contextlib.contextmanager
def cluster_in(
    profile_dir: Path,
    n: int = 2,
    *,
    heartbeat_timeout: float | None = None,
    controller_args: Sequence[str] = (),
    engine_args: Sequence[str] = (),
    timeout: float = 30.0,
) -> Iterator[Cluster]:
    """A started ``Cluster`` of ``n`` engines whose profile lives in ``profile_dir``.

    On exit it is stopped, even after a failure, and it is an error if any of its processes
    outlived the stop.
    """
    args = list(controller_args)
    if heartbeat_timeout is not None:
        args += [
            "--heartbeat-period",
            str(min(0.5, heartbeat_timeout / 4)),
            "--heartbeat-timeout",
            str(heartbeat_timeout),
        ]
    cluster = Cluster(
        n,
        profile="test",
        profile_dir=profile_dir,
        controller_args=args,
        engine_args=engine_args,
        timeout=timeout,
    )
    cluster.start()
    pids: list[int] = []
    try:
        yield cluster
    finally:
        pids = [p for p in [cluster.controller_pid, *cluster.engine_pids] if p is not None]
        cluster.stop()
    left = leftover_processes(pids)
    if left:
        raise AssertionError(f"processes still running after the cluster stopped: {left}")
