"""One real controller and a few hundred simulated engines (pxcluster.testing._simulator):
registration in a burst, execute, scatter/gather and tasks on all, and a clean stop.

The full figures (1,000 and 5,000 engines) come from ``benchmarks/scale.py``; this is the
modest version that keeps the paths working. The simulated engines open the four connections
a real engine opens and echo heartbeats from one Python thread, so the controller gets a
generous heartbeat timeout here: on a loaded 2-core machine that thread can fall behind, and
liveness is not what this test is about.
"""

import json
import select
import subprocess

import pytest

from pxcluster import MapTask, TaskClient
from pxcluster.testing import cluster_in, simulated_engines

ENGINES = 250

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def simulated(tmp_path):
    """A controller alone, then one simulator process with ENGINES engines."""
    with cluster_in(
        tmp_path / "p", n=0, controller_args=["--heartbeat-timeout", "60"], timeout=60
    ) as cluster, simulated_engines(
        cluster.paths.engine_file, ENGINES, stdout=subprocess.PIPE, text=True
    ) as sim:
        try:
            yield cluster, sim
        finally:
            cluster.stop()  # the simulated engines leave with their controller


def line_of(sim, timeout):
    """The simulator's next line of JSON (fails after ``timeout`` seconds without one)."""
    ready, _, _ = select.select([sim.stdout], [], [], timeout)
    assert ready, f"the simulator wrote nothing within {timeout} s"
    return json.loads(sim.stdout.readline())


def test_hundreds_of_engines_register_compute_and_stop(simulated):
    cluster, sim = simulated
    mec = cluster.client(timeout=120)
    assert mec.wait_for_engines(ENGINES, timeout=120) == list(range(ENGINES))
    assert line_of(sim, timeout=60)["registered"] == ENGINES

    mec.execute("a = 7")
    assert mec.pull("a") == [7] * ENGINES
    mec.scatter("x", range(ENGINES * 3))
    assert mec.gather("x") == list(range(ENGINES * 3))

    with TaskClient(profile_dir=cluster.paths.dir, timeout=120) as tc:
        ids = [tc.run(MapTask(lambda v: v + 1, args=(i,))) for i in range(600)]
        tc.barrier(ids, timeout=120)
        results = [tc.get_task_result(i) for i in ids]
    assert [r.r for r in results] == [i + 1 for i in range(600)]
    assert len({r.engineid for r in results}) > ENGINES // 2  # spread, not piled on a few

    cluster.stop()
    assert sim.wait(timeout=60) == 0  # every simulated engine was told to shut down
    done = line_of(sim, timeout=10)["done"]
    assert done["stopped"] == ENGINES
