"""Stalls, races and misuse that once hung a call or killed a process; each must now be safe."""

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest

from pxcluster import Cluster, client
from pxcluster.testing import cluster_in, controller_restarted, leftover_processes, wait_for


def test_a_stalled_controller_does_not_declare_engines_dead(cluster2):
    mec = cluster2.client()
    ids = mec.get_ids()
    controller = psutil.Process(cluster2.controller_pid)
    controller.suspend()
    try:
        time.sleep(3.5)  # the stimulus itself: a stall longer than the 2 s heartbeat timeout
    finally:
        controller.resume()
    assert mec.execute("a = 1", timeout=10) is not None
    assert mec.get_ids() == ids  # same engines, same ids: nobody was declared dead


def test_changing_an_array_after_a_nonblocking_push_does_not_corrupt_or_hang(mec):
    data = np.arange(2_000_000, dtype=np.float64)
    pending = mec.push({"x": data}, targets=0, block=False)
    data[:] = -1  # the caller reuses its buffer at once
    pending.get_result(timeout=20)
    assert mec[0].pull("x", timeout=20)[-1] == 1_999_999.0


@pytest.mark.parametrize(
    ("targets", "error"),
    [(True, TypeError), ([True], TypeError), ([0, 0], ValueError), ([], ValueError),
     ("0", TypeError), ([-1], ValueError), ([0.5], TypeError)],
)
def test_bad_targets_fail_at_once(mec, targets, error):
    with pytest.raises(error):
        mec.execute("a = 1", targets=targets, timeout=5)


def test_numpy_integers_are_engine_ids(mec):
    assert mec.pull("__name__", targets=np.int64(1), timeout=5) == ["__main__"]
    assert mec[np.int64(2)].execute("b = 2", timeout=5)[0]["id"] == 2
    with pytest.raises(ValueError, match="view of engine 0"):
        mec[0].execute("c = 3", targets=1)


def test_view_zip_pull_and_gather_of_scalars(mec):
    mec.execute("import numpy; s = numpy.float64(1.5); t = 't'", timeout=10)
    assert mec[0].zip_pull(("s", "t"), timeout=5) == [(1.5,), ("t",)]
    assert mec.gather("s", timeout=5) == [1.5] * 4


def test_pushing_the_engines_own_names_is_refused(mec):
    for name in ("__builtins__", "not a name", "1x"):
        with pytest.raises(ValueError, match="cannot push"):
            mec.push({name: {}})
    mec.execute("__builtins__ = {}", timeout=5)  # a user can still break it on purpose ...
    mec.reset(timeout=5)
    assert mec.execute("len('ok')", timeout=5)[0]["display"] == "2"  # ... and reset repairs it


def test_interrupt_while_the_error_is_being_built_keeps_the_engine(mec):
    mec.execute(
        "import time\n"
        "class Slow(Exception):\n"
        "    def __str__(self):\n"
        "        time.sleep(2)\n"
        "        return 'slow'\n",
        timeout=10,
    )
    pending = mec.execute("raise Slow()", targets=0, block=False)
    wait_for(lambda: mec.queue_status()[0][1]["queue"] == 1, timeout=5, message="running")
    mec.interrupt(targets=0, timeout=5)
    with pytest.raises(client.CompositeError):
        pending.get_result(timeout=15)
    assert mec[0].execute("1 + 1", timeout=10)[0]["display"] == "2"


def test_kill_stops_an_engine_whose_code_swallows_interrupts(tmp_path):
    with cluster_in(tmp_path / "p", n=2) as cluster:
        mec = cluster.client()
        pid = int(mec[1].execute("import os; os.getpid()", timeout=10)[0]["display"])
        mec[1].execute(
            "import time\nwhile True:\n    try:\n        time.sleep(0.1)\n"
            "    except KeyboardInterrupt:\n        pass\n",
            block=False,
        )
        wait_for(lambda: mec.queue_status()[1][1]["queue"] == 1, timeout=5, message="running")
        mec.kill(targets=1, timeout=10)
        wait_for(lambda: not leftover_processes([pid]), timeout=10,
                 message="the stubborn engine to exit")
        assert mec.get_ids() == [0]


def test_calls_after_the_controller_died_fail_fast(tmp_path):
    with cluster_in(tmp_path / "p", n=1, engine_args=["--controller-timeout", "3"]) as cluster:
        mec = cluster.client()
        os.kill(cluster.controller_pid, signal.SIGKILL)
        wait_for(lambda: not cluster.controller_alive(), timeout=10, message="controller gone")

        def fails_at_once():
            try:
                mec.execute("a = 1", timeout=0.5)
            except client.ConnectionLost:
                return True  # failed at once, within its own 0.5 s
            except client.PxclusterTimeoutError:
                return False  # the loss was not noticed yet
            return False

        wait_for(fails_at_once, timeout=15, message="calls to fail at once with ConnectionLost")


def test_foreground_cluster_stops_on_hangup(tmp_path):
    env = {**os.environ, "PXCLUSTER_DIR": str(tmp_path / "root")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pxcluster.cli.cluster", "-n", "1", "--profile", "hup"],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    try:
        lines = []
        wait_for(lambda: lines.append(proc.stdout.readline()) or "Ctrl-C" in lines[-1],
                 timeout=30, message="the foreground cluster")
        children = psutil.Process(proc.pid).children(recursive=True)
        pids = [c.pid for c in children]
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(timeout=20) == 0
        assert leftover_processes(pids) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def recorded(db, task_id):
    """True once the record store's file holds ``task_id``."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return conn.execute("SELECT 1 FROM tasks WHERE id = ?", (task_id,)).fetchone()


def test_a_restarted_controller_gets_its_engines_clients_and_results_back(tmp_path):
    # DESIGN: engines and clients survive a controller restart by reconnecting, and results
    # already recorded are not lost. A controller that finds the files of one that is gone
    # takes over its ports and keys.
    with cluster_in(tmp_path / "p", n=2) as cluster:
        mec = cluster.client()
        mec.execute("kept = 'still here'")
        pids = mec.apply(os.getpid)
        with client.TaskClient(profile_dir=cluster.paths.dir) as tc:
            tid = tc.run(client.MapTask(pow, args=(2, 10)))
            assert tc.get_task_result(tid, block=True, timeout=30).r == 1024
            wait_for(  # the record store writes finished tasks every 0.2 s
                lambda: recorded(cluster.paths.dir / "db.sqlite3", tid),
                timeout=10,
                message="the task written to the record store",
            )
        # the same client object reconnects; the same engines come back with their ids
        with controller_restarted(cluster, mec):
            assert mec.apply(os.getpid) == pids
            assert mec.pull("kept", timeout=10) == ["still here"] * 2
            with client.TaskClient(profile_dir=cluster.paths.dir) as tc:
                assert tc.get_task_result(tid, block=True, timeout=10).r == 1024
                assert tc.map(abs, [-1, -2, -3], timeout=30) == [1, 2, 3]


def test_kill_ends_an_engine_stuck_in_c_code_holding_the_gil(tmp_path):
    started = tmp_path / "started"
    with cluster_in(tmp_path / "p", n=2) as cluster:
        mec = cluster.client()
        pid = int(mec[1].execute("import os; os.getpid()", timeout=10)[0]["display"])
        # PyDLL keeps the GIL through the C call: the engine's I/O thread cannot run at all
        mec[1].execute(
            f"import ctypes, pathlib\npathlib.Path({str(started)!r}).touch()\n"
            "ctypes.PyDLL(None).sleep(120)\n",
            block=False,
        )
        wait_for(started.exists, timeout=10, message="the C call to start")
        mec.kill(targets=1, timeout=2.0)  # within 2 s, or PxclusterTimeoutError fails this
        wait_for(lambda: not leftover_processes([pid]), timeout=5, message="the engine gone")
        assert mec.get_ids() == [0]
        assert mec.execute("1 + 1", timeout=10)[0]["display"] == "2"  # the rest goes on


def test_an_engine_stopped_past_its_timeout_comes_back_as_a_new_engine(tmp_path):
    gate = tmp_path / "gate"
    with cluster_in(tmp_path / "p", n=2, heartbeat_timeout=1.0) as cluster:
        mec = cluster.client()
        pid = int(mec[1].execute("import os; os.getpid()", timeout=10)[0]["display"])
        mec[1].execute("ran = []", timeout=10)
        mec[1].execute(
            f"import os, time\nwhile not os.path.exists({str(gate)!r}):\n    time.sleep(0.01)",
            block=False,
        )
        queued = mec[1].execute("ran.append(1)", block=False)  # waits behind the first
        os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(client.CompositeError) as failed:
                queued.get_result(timeout=30)  # its client is told it failed
            assert [type(e).__name__ for e in failed.value.elist] == ["EngineDied"]
        finally:
            os.kill(pid, signal.SIGCONT)
        gate.touch()
        wait_for(lambda: mec.get_ids() == [0, 2], timeout=30,
                 message="the engine back under a new id")
        # what it held when it was declared dead did not run (its client was told it failed)
        assert mec[2].pull("ran", timeout=10) == []


def test_engines_that_die_are_relaunched_a_bounded_number_of_times(tmp_path):
    beat = ["--heartbeat-period", "0.25", "--heartbeat-timeout", "1"]
    cluster = Cluster(
        2, profile="test", profile_dir=tmp_path / "p", controller_args=beat, restart=1
    )
    pids = []
    with cluster:
        mec = cluster.client()
        pids = list(cluster.engine_pids)
        victim = int(mec[1].execute("import os; os.getpid()", timeout=10)[0]["display"])
        os.kill(victim, signal.SIGKILL)  # engine 1 (launch order is not id order)
        seen = []

        def replaced():
            seen.append(mec.get_ids())
            return seen[-1] == [0, 2]

        try:
            wait_for(replaced, timeout=30, message="a new engine (new id) in the dead one's place")
        except TimeoutError:
            raise AssertionError(f"engines seen: {seen[-3:]}") from None
        assert mec[2].execute("1 + 1", timeout=10)[0]["display"] == "2"
        (_, new), = cluster.keeper.relaunched
        pids.append(new.pid)
        os.kill(new.pid, signal.SIGKILL)  # the one restart is used up: not relaunched
        wait_for(lambda: mec.get_ids() == [0], timeout=30, message="engine 2 declared dead")
        wait_for(lambda: len(cluster.engine_handles) == 1, timeout=30,
                 message="the keeper (a process of its own) forgets the dead engine")
        assert cluster.keeper.restarts == 1
    assert not leftover_processes(pids)


def test_a_normal_stop_makes_no_engine_warn_of_a_lost_controller(tmp_path):
    with cluster_in(tmp_path / "p", n=2) as cluster:
        cluster.client().execute("x = 1", timeout=10)
        logs = cluster.paths.log
    engine_logs = sorted(logs.glob("engine*.log"))
    assert len(engine_logs) == 2
    for path in engine_logs:
        text = path.read_text()
        assert "shutdown requested" in text  # the log is the engine's own, to its end
        assert "WARNING" not in text, text


def test_an_engine_declared_dead_exits_when_told_to(tmp_path):
    with cluster_in(tmp_path / "p", n=2, heartbeat_timeout=1.0,
                    engine_args=["--exit-when-declared-dead"]) as cluster:
        mec = cluster.client()
        pid = int(mec[1].execute("import os; os.getpid()", timeout=10)[0]["display"])
        os.kill(pid, signal.SIGSTOP)
        try:
            wait_for(lambda: mec.get_ids() == [0], timeout=30, message="engine 1 declared dead")
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_for(lambda: not leftover_processes([pid]), timeout=30, message="engine 1 exits")
        assert mec.get_ids() == [0]  # it did not join again


def test_interrupt_reaches_an_engine_stuck_in_c_code_holding_the_gil(tmp_path):
    started = tmp_path / "started"
    with cluster_in(tmp_path / "p", n=2) as cluster:
        mec = cluster.client()
        # PyDLL keeps the GIL through the C call: the engine's I/O thread cannot run at all
        stuck = mec[1].execute(
            f"import ctypes, pathlib\npathlib.Path({str(started)!r}).touch()\n"
            "ctypes.PyDLL(None).sleep(120)\n",
            block=False,
        )
        wait_for(started.exists, timeout=10, message="the C call to start")
        mec.interrupt(targets=1, timeout=2.0)  # answered within 2 s, or this times out
        with pytest.raises(client.CompositeError) as failed:
            stuck.get_result(timeout=5)
        assert failed.value.elist[0].ename == "KeyboardInterrupt"
        assert mec[1].execute("1 + 1", timeout=10)[0]["display"] == "2"  # the engine lives on
