"""Simulated engines run tasks that reach them in batches (wire/_batch.py).

A flood of tiny tasks on two engines queues up in the controller, which then sends each
engine several tasks in one BATCH; a simulated engine that ignored them left
``benchmarks/scale.py``'s task rows waiting forever. Every task must come back, once.
"""

import subprocess

import pytest

from pxcluster import MapTask, TaskClient
from pxcluster.testing import cluster_in, simulated_engines

pytestmark = pytest.mark.timeout(120)


def test_a_flood_of_tasks_completes_on_simulated_engines(tmp_path):
    with cluster_in(
        tmp_path / "p", n=0, controller_args=["--heartbeat-timeout", "60"], timeout=60
    ) as cluster, simulated_engines(cluster.paths.engine_file, 2, stdout=subprocess.DEVNULL):
        try:
            cluster.client(timeout=60).wait_for_engines(2, timeout=60)
            with TaskClient(profile_dir=cluster.paths.dir, timeout=60) as tc:
                ids = [tc.run(MapTask(lambda v: v * 2, args=(i,))) for i in range(400)]
                tc.barrier(ids, timeout=60)
                results = [tc.get_task_result(i) for i in ids]
            assert [r.r for r in results] == [2 * i for i in range(400)]
            assert {r.engineid for r in results} == {0, 1}
        finally:
            cluster.stop()  # the simulated engines leave with their controller
