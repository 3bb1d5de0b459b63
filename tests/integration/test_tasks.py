"""The Task interface on real clusters: load balancing, results, dependencies and faults."""

import collections
import linecache
import os
import signal
import threading
import time

import pytest

from pxcluster import client
from pxcluster.testing import cluster_in, wait_for


@pytest.fixture
def tc(cluster2):
    with client.TaskClient(profile_dir=cluster2.paths.dir) as task_client:
        yield task_client


def test_design_transcript(tc):
    def f(x):
        return 2.0 * x**4

    tid = tc.run(client.MapTask(f, args=(4.0,)))
    tid2 = tc.run(client.StringTask("y = x**2", push=dict(x=3), pull="y"))
    tc.barrier([tid, tid2], timeout=20)
    assert tc.get_task_result(tid2, block=True).ns.y == 9
    assert tc.get_task_result(tid2).ns["y"] == 9
    result = tc.get_task_result(tid, block=True, timeout=10)
    assert result.r == 512.0
    assert result.result == 512.0
    assert result.failure is None
    assert result.taskid == tid
    assert result.engineid in (0, 1)
    assert result.submitted <= result.started <= result.completed
    assert result.duration == result.completed - result.started


def test_run_block_and_output(tc):
    result = tc.run(client.MapTask(print, args=("hello from a task",)), block=True, timeout=10)
    assert result.stdout == "hello from a task\n"
    assert result.r is None


def test_a_thousand_tasks_spread_over_every_engine(tc):
    # Tasks of 2 ms: tiny ones (a getpid) finish 1,000 in a fifth of a second, so on a
    # loaded machine one engine descheduled for 0.1 s leaves nearly all to the other, as it
    # should; the spread is checked where spreading matters.
    def pid_after_a_while():
        import os as _os
        import time as _time

        _time.sleep(0.002)
        return _os.getpid()

    ids = [tc.run(client.MapTask(pid_after_a_while)) for _ in range(1000)]
    tc.barrier(ids, timeout=60)
    results = [tc.get_task_result(i) for i in ids]
    by_engine = collections.Counter(r.engineid for r in results)
    assert set(by_engine) == {0, 1}
    assert min(by_engine.values()) > 100  # both engines did a real share
    assert len({r.r for r in results}) == 2  # two engine processes answered


def test_map_imap_and_parallel_keep_order(tc):
    assert tc.map(lambda x: x * x, range(100), chunksize=7) == [x * x for x in range(100)]
    assert tc.map(lambda a, b: a + b, [1, 2, 3], [10, 20, 30, 40]) == [11, 22, 33]
    stream = tc.imap(lambda x: -x, range(10), chunksize=3)
    assert next(stream) == 0
    assert list(stream) == [-x for x in range(1, 10)]

    @tc.parallel(chunksize=4)
    def cube(x):
        return x**3

    assert cube(range(12)) == [x**3 for x in range(12)]


def test_a_task_that_raises_carries_the_remote_traceback(tc):
    def explode(x):
        return x / 0

    result = tc.run(client.MapTask(explode, args=(1,)), block=True, timeout=10)
    assert isinstance(result.failure, client.RemoteError)
    assert result.failure.ename == "ZeroDivisionError"
    assert "return x / 0" in result.failure.traceback
    with pytest.raises(ZeroDivisionError):
        result.raise_exception()
    with pytest.raises(ZeroDivisionError):
        _ = result.r
    with pytest.raises(ZeroDivisionError):
        tc.map(explode, [1, 2])


def test_a_notebook_function_shows_its_cell_lines_in_the_remote_traceback(tc, cluster2):
    # A notebook cell's source lives only in the client's linecache; it travels with the
    # function, so the engine's traceback shows the user's line and the cell's name.
    cell = "<ipython-input-3-5f2c>"
    source = "def ratio(x):\n    total = x - x\n    return x / total\n"
    linecache.cache[cell] = (len(source), None, source.splitlines(keepends=True), cell)
    namespace: dict = {}
    exec(compile(source, cell, "exec"), namespace)
    ratio = namespace["ratio"]
    result = tc.run(client.MapTask(ratio, args=(3,)), block=True, timeout=10)
    assert f'File "{cell}", line 3, in ratio' in result.failure.traceback
    assert "return x / total" in result.failure.traceback
    with pytest.raises(client.CompositeError) as info:
            cluster2.client().apply(ratio, 2)
    assert "return x / total" in info.value.elist[0].traceback


def test_retries_and_recovery_task_run_again(tc, tmp_path):
    marker = tmp_path / "attempts"

    def flaky(path):
        from pathlib import Path

        with Path(path).open("a") as handle:
            handle.write("x")
        if len(Path(path).read_text()) < 3:
            raise RuntimeError("not yet")
        return "done"

    recovery = client.StringTask("recovered = True")
    tid = tc.run(client.MapTask(flaky, args=(str(marker),), retries=2, recovery_task=recovery))
    assert tc.get_task_result(tid, block=True, timeout=20).r == "done"
    assert marker.read_text() == "xxx"
    no_retry = tc.run(client.MapTask(flaky, args=(str(tmp_path / "once"),)))
    assert isinstance(tc.get_task_result(no_retry, block=True, timeout=10).failure,
                      client.RemoteError)


def test_after_and_depend(tc):
    first = tc.run(client.StringTask("import time; time.sleep(0.3); v = 1", pull="v"))
    second = tc.run(client.MapTask(lambda: "second", after=[first]))
    assert tc.get_task_result(second, block=True, timeout=10).r == "second"
    assert tc.get_task_result(first).completed <= tc.get_task_result(second).started

    failed = tc.run(client.MapTask(lambda: 1 / 0))
    doomed = tc.run(client.MapTask(lambda: "never", after=[failed]))
    failure = tc.get_task_result(doomed, block=True, timeout=10).failure
    assert isinstance(failure, client.UnmetDependency)
    assert "failed" in str(failure)

    only_one = tc.run(client.MapTask(lambda: "here", depend=lambda p: p["engine_id"] == 1))
    assert tc.get_task_result(only_one, block=True, timeout=10).engineid == 1
    nowhere = tc.run(client.MapTask(lambda: 1, depend=lambda p: False))
    failure = tc.get_task_result(nowhere, block=True, timeout=10).failure
    assert isinstance(failure, client.UnmetDependency)
    assert "no engine accepted" in str(failure)


def test_timeout_and_abort(tc):
    slow = tc.run(client.MapTask(time.sleep, args=(30,), timeout=0.5))
    failure = tc.get_task_result(slow, block=True, timeout=15).failure
    assert isinstance(failure, client.TaskTimeout)

    running = [tc.run(client.MapTask(time.sleep, args=(30,))) for _ in range(2)]
    queued = tc.run(client.MapTask(lambda: "never"))
    wait_for(lambda: tc.queue_status()["assigned"] == 3, timeout=10, message="all assigned")
    tc.abort(queued)
    for tid in running:
        tc.abort(tid)
    for tid in [queued, *running]:
        assert isinstance(tc.get_task_result(tid, block=True, timeout=15).failure,
                          client.TaskAborted)
    assert tc.run(client.MapTask(lambda: "still fine"), block=True, timeout=10).r == "still fine"


def test_bad_input_fails_clearly_and_queues_nothing(tc):
    before = tc.queue_status()
    with pytest.raises(client.SerializationError, match="lock"):
        tc.run(client.MapTask(print, args=(threading.Lock(),)))
    with pytest.raises(TypeError):
        tc.run(client.MapTask("not callable"))
    with pytest.raises(ValueError, match="retries"):
        client.MapTask(print, retries=-1)
    with pytest.raises(client.UnknownTask, match="no-such-task"):
        tc.get_task_result("no-such-task")
    with pytest.raises(client.UnknownTask):
        tc.abort("no-such-task")
    after = tc.queue_status()
    assert (after["queued"], after["records"]) == (before["queued"], before["records"])
    unknown_dep = tc.run(client.MapTask(print, after=["no-such-task"]))
    failure = tc.get_task_result(unknown_dep, block=True, timeout=10).failure
    assert isinstance(failure, client.UnmetDependency)


def test_ten_thousand_queued_tasks_and_clear(tc):
    ids = [tc.run(client.MapTask(int)) for _ in range(10_000)]
    tc.barrier(ids, timeout=120)
    assert tc.get_task_result(ids[-1]).r == 0
    assert tc.queue_status()["records"] >= 10_000
    assert tc.clear() >= 10_000
    status = tc.queue_status()
    assert (status["queued"], status["assigned"], status["records"]) == (0, 0, 0)
    with pytest.raises(client.UnknownTask):
        tc.get_task_result(ids[0])


def test_results_survive_the_client_leaving(cluster2):
    first = client.TaskClient(profile_dir=cluster2.paths.dir)
    tid = first.run(client.StringTask("import time; time.sleep(0.5); z = 42", pull="z"))
    first.close()
    with client.TaskClient(profile_dir=cluster2.paths.dir) as second:
        assert second.get_task_result(tid, block=True, timeout=10).ns.z == 42
        assert second.get_task_result(tid).ns.z == 42


def test_a_short_task_is_not_stranded_behind_a_long_one(tc):
    long_ids = [tc.run(client.MapTask(time.sleep, args=(s,))) for s in (30, 0.1)]
    short = tc.run(client.MapTask(lambda: "quick"))
    # with a prefetch of 2, one engine may hold the short task behind the 30 s one; once
    # the other engine is idle the controller takes it back and runs it there
    result = tc.get_task_result(short, block=True, timeout=10)
    assert result.r == "quick"
    tc.abort(long_ids[0])


def test_tasks_prefetched_deep_behind_a_long_one_are_taken_back(tc):
    # After many tiny tasks each engine may hold 8 (task_prefetch_short); tiny tasks queued
    # behind a long one must still run elsewhere soon, not wait for it.
    tc.barrier([tc.run(client.MapTask(int)) for _ in range(200)], timeout=30)
    long_id = tc.run(client.MapTask(time.sleep, args=(30,)))
    quick = [tc.run(client.MapTask(int, args=(i,))) for i in range(12)]
    tc.barrier(quick, timeout=8)  # well before the 30 s task ends, or it times out
    assert [tc.get_task_result(t).r for t in quick] == list(range(12))
    tc.abort(long_id)


def test_multiengine_and_tasks_share_the_engines(cluster2, tc):
    mec = cluster2.client()
    ids = [tc.run(client.MapTask(time.sleep, args=(0.01,))) for _ in range(50)]
    assert mec.execute("a = 1", timeout=20) is not None
    assert mec.pull("a", timeout=10) == [1, 1]
    tc.barrier(ids, timeout=30, progress=True)


def test_engine_killed_while_running_tasks(tmp_path):
    with cluster_in(tmp_path / "p", n=3, heartbeat_timeout=2.0) as cluster:
        mec = cluster.client()
        pids = dict(zip(mec.get_ids(), mec.execute("import os; os.getpid()", timeout=10),
                        strict=True))
        with client.TaskClient(profile_dir=cluster.paths.dir) as tc:
            log = tmp_path / "ran"

            def work(i, path=str(log)):
                import time as _time
                from pathlib import Path

                _time.sleep(0.2)
                with Path(path).open("a") as handle:
                    handle.write(f"{i}\n")
                return i

            ids = [tc.run(client.MapTask(work, args=(i,), retries=2)) for i in range(30)]
            wait_for(lambda: tc.queue_status()["assigned"] >= 3, timeout=10,
                     message="tasks running on every engine")
            victim = 1
            os.kill(int(pids[victim]["display"]), signal.SIGKILL)
            tc.barrier(ids, timeout=60)
            results = [tc.get_task_result(i) for i in ids]
            assert [r.r for r in results] == list(range(30))  # nothing lost
            assert victim not in mec.get_ids()
            ran = collections.Counter(log.read_text().split())
            assert all(ran[str(i)] >= 1 for i in range(30))
            # only what the killed engine held (at most the prefetch of 2) can have run twice
            assert sum(ran.values()) - 30 <= 2

            no_retry = tc.run(client.MapTask(time.sleep, args=(30,), retries=0))
            wait_for(lambda: tc.queue_status()["assigned"] >= 1, timeout=10, message="running")
            for eid in mec.get_ids():
                os.kill(int(pids[eid]["display"]), signal.SIGKILL)
            failure = tc.get_task_result(no_retry, block=True, timeout=15).failure
            assert isinstance(failure, client.EngineDied)
