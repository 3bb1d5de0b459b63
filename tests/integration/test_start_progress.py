"""A long start shows the engines registering: Cluster.start reports them as they come."""

from pxcluster import Cluster
from pxcluster.testing import leftover_processes


def test_start_reports_engines_registering(tmp_path):
    seen = []
    cluster = Cluster(3, profile="test", profile_dir=tmp_path / "profile", timeout=30)
    try:
        cluster.start(progress=lambda registered, expected: seen.append((registered, expected)))
    finally:
        pids = [p for p in [cluster.controller_pid, *cluster.engine_pids] if p is not None]
        cluster.stop()
    assert seen[-1] == (3, 3)
    assert {expected for _, expected in seen} == {3}
    counts = [registered for registered, _ in seen]
    assert counts == sorted(counts)
    assert leftover_processes(pids) == []
