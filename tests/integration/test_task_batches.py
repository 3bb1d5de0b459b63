"""Tiny tasks in floods, on real clusters: they travel several to a message (client,
controller and engines batch what queues up), and every task keeps its own outcome,
retries, dependencies and timeout."""

import collections
import os
import signal

import pytest

from pxcluster import client
from pxcluster.testing import cluster_in, wait_for


def test_a_flood_with_failures_and_an_engine_killed_mid_batch_settles_each_task_once(tmp_path):
    with cluster_in(tmp_path / "p", n=3, heartbeat_timeout=2.0) as cluster:
        mec = cluster.client()
        pids = mec.apply(os.getpid)
        with client.TaskClient(profile_dir=cluster.paths.dir) as tc:
            # many tiny tasks first: engines then take deep batches (the short prefetch)
            tc.barrier([tc.run(client.MapTask(int)) for _ in range(300)], timeout=60)
            log = tmp_path / "ran"

            def work(i, path=str(log)):
                import time as _time
                from pathlib import Path

                with Path(path).open("a") as handle:
                    handle.write(f"{i}\n")
                if i % 97 == 0:
                    raise ValueError(f"task {i} fails")
                _time.sleep(0.002)
                return i

            ids = [tc.run(client.MapTask(work, args=(i,), retries=1)) for i in range(1500)]
            wait_for(lambda: len(log.read_text().split()) > 300 if log.exists() else False,
                     timeout=30, message="the flood running on every engine")
            victim = mec.ids[-1]
            os.kill(pids[victim], signal.SIGKILL)
            tc.barrier(ids, timeout=120)
            results = [tc.get_task_result(i) for i in ids]
            raised = set()
            for i, result in enumerate(results):
                if i % 97 == 0:  # failed for good: its retry raised too, or died with the victim
                    if isinstance(getattr(result.failure, "original", None), ValueError):
                        raised.add(i)
                    else:
                        assert isinstance(result.failure, client.EngineDied)
                else:
                    assert result.failure is None
                    assert result.r == i
            assert victim not in mec.get_ids()
            ran = collections.Counter(int(i) for i in log.read_text().split())
            assert all(ran[i] >= 1 for i in range(1500))
            failing = [i for i in range(1500) if i % 97 == 0]
            assert len(raised) >= len(failing) - 3
            assert all(ran[i] >= 2 for i in raised)  # retried once, alone, then failed
            # beyond the failures' retries, only what the killed engine held ran twice
            extra = sum(ran.values()) - 1500 - len(failing)
            assert extra <= 64
            status = tc.queue_status()
            assert status["queued"] == status["assigned"] == 0


def test_dependencies_and_timeouts_hold_inside_a_flood(cluster2):
    with client.TaskClient(profile_dir=cluster2.paths.dir) as tc:
        tc.barrier([tc.run(client.MapTask(int)) for _ in range(300)], timeout=60)
        chain = [tc.run(client.MapTask(lambda: 0))]
        for _ in range(40):  # each after the one before: submitted together, run in order
            chain.append(tc.run(client.MapTask(lambda: 1, after=[chain[-1]])))
        slow = tc.run(client.MapTask(__import__("time").sleep, args=(30,), timeout=0.5))
        tiny = [tc.run(client.MapTask(abs, args=(-i,))) for i in range(500)]
        tc.barrier([*chain, *tiny], timeout=60)
        assert [tc.get_task_result(t).r for t in tiny] == list(range(500))
        starts = [tc.get_task_result(t).started for t in chain]
        assert starts == sorted(starts)
        failure = tc.get_task_result(slow, block=True, timeout=30).failure
        assert isinstance(failure, client.TaskTimeout)


def test_map_of_one_item_per_task_and_results_fetched_by_another_client(cluster2):
    with client.TaskClient(profile_dir=cluster2.paths.dir) as tc:
        assert tc.map(lambda x: x * 3, range(3000), chunksize=1) == [x * 3 for x in range(3000)]
        ids = [tc.run(client.MapTask(pow, args=(i, 2))) for i in range(200)]
        tc.barrier(ids, timeout=60)
    # every result of the batches was recorded: another client reads them from the store
    with client.TaskClient(profile_dir=cluster2.paths.dir) as other:
        assert [other.get_task_result(i, block=True, timeout=30).r for i in ids] == [
            i * i for i in range(200)
        ]


@pytest.mark.parametrize("count", [1, 2])
def test_a_lone_task_and_a_pair_run(cluster2, count):
    with client.TaskClient(profile_dir=cluster2.paths.dir) as tc:
        ids = [tc.run(client.MapTask(str, args=(i,))) for i in range(count)]
        assert [tc.get_task_result(i, block=True, timeout=30).r for i in ids] == [
            str(i) for i in range(count)
        ]
