"""Direct calls (issue 13 item 6): a blocking call to one engine on the client's host goes
to the engine directly (client/_direct.py, engine/_direct.py), with the controller kept
informed. Real controller, real engines; the controller path (``PXCLUSTER_DIRECT=0``) is the
reference the direct one must match.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pxcluster import Cluster, MultiEngineClient
from pxcluster._errors import CompositeError, EngineError
from pxcluster.profile import ENGINE_CONNECTION_ENV
from pxcluster.testing import cluster_in, wait_for
from pxcluster.wire import MsgType

T = 30  # seconds any one call may take on the loaded test machine


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One 2-engine cluster for the tests that leave its engines alive."""
    with cluster_in(tmp_path_factory.mktemp("direct") / "profile", n=2) as cluster:
        yield cluster


@pytest.fixture
def both(shared: Cluster, monkeypatch: pytest.MonkeyPatch) -> tuple[MultiEngineClient, ...]:
    """A client that calls directly, and one that goes through the controller."""
    direct = connect(shared)
    monkeypatch.setenv("PXCLUSTER_DIRECT", "0")
    relayed = connect(shared)
    monkeypatch.delenv("PXCLUSTER_DIRECT")
    return direct, relayed


def connect(cluster: Cluster) -> MultiEngineClient:
    """A client whose blocking calls wait ``T`` seconds at most (``apply`` passes every
    keyword to the function, so its bound is the client's ``timeout``)."""
    mec = cluster.client(timeout=T)
    mec.timeout = T
    return mec


def in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run a blocking call in a thread; its value or exception lands in the dict."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # the test inspects it
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def queued_on(mec: MultiEngineClient, engine: int) -> int:
    return dict(mec.queue_status(timeout=T))[engine]["queue"]


def test_a_direct_call_needs_no_controller(shared: Cluster) -> None:
    # The user-visible proof that the call skips the controller: it is answered while the
    # controller process is stopped. Through the controller it could not be.
    mec = connect(shared)
    assert mec[0].apply(os.getpid) > 0  # ports known, connections made
    os.kill(shared.controller_pid, signal.SIGSTOP)
    try:
        assert mec[0].apply(lambda: 6 * 7) == 42
        assert mec.execute("z = 5", targets=0, timeout=T)[0]["id"] == 0
        assert mec[0].pull("z", timeout=T) == 5
        mec.execute("w = 2", timeout=T)  # on both engines: a direct call to each
        assert mec.pull("w", timeout=T) == [2, 2]
    finally:
        os.kill(shared.controller_pid, signal.SIGCONT)


def test_direct_and_relayed_calls_give_the_same_results_and_errors(
    both: tuple[MultiEngineClient, ...],
) -> None:
    direct, relayed = both
    outputs = []
    for mec in (direct, relayed):
        mec.execute("import os\nx = 7", targets=0, timeout=T)
        mec.push({"y": [1, 2, 3]}, targets=0, timeout=T)
        assert mec[0].pull(("x", "y"), timeout=T) == [7, [1, 2, 3]]
        assert mec[0].apply(lambda a, b=2: a * b, 21) == 42
        assert "x" in mec[0].keys(timeout=T)
        outputs.append(str(mec.execute("print(x * 6)\nx", targets=0, timeout=T)))
        outputs.append(str(mec.get_result(targets=0, timeout=T)))  # what %result shows
        outputs.append(str(mec.execute("print('on', 'each')", timeout=T)))  # both engines
    # the same text, but for the engine's execution counts (both clients ran on engine 0)
    counted = [re.sub(r"\[\d+\]", "[N]", text) for text in outputs]
    assert counted[:3] == counted[3:]
    assert counted[0] == counted[1]  # %result shows the last execute as it came back
    assert "Out[" in outputs[0]
    assert "42" in outputs[0]

    failures = []
    for mec in (direct, relayed):
        with pytest.raises(CompositeError) as caught:
            mec.execute("def f():\n    return 1 / 0\nf()", targets=0, timeout=T)
        failures.append(caught.value)
        with pytest.raises(ZeroDivisionError):
            caught.value.raise_exception(0)
        with pytest.raises(CompositeError) as applied:
            mec[0].apply(lambda: {}["missing"])
        with pytest.raises(KeyError):
            applied.value.raise_exception(0)
        with pytest.raises(CompositeError) as on_one:  # one of two engines fails
            mec.execute("q = 1 / (len(globals().get('y', [0])) - 3)", timeout=T)
        failures.append(on_one.value)
    assert str(failures[0]) == str(failures[2])
    assert str(failures[1]) == str(failures[3])
    assert len(failures[1].elist) == 1  # y = [1, 2, 3] is on engine 0 only
    remote = [f.elist[0] for f in failures[::2]]
    assert [(e.ename, e.evalue) for e in remote] == [("ZeroDivisionError", "division by zero")] * 2
    for error in remote:  # the user's own lines, not pxcluster's
        assert "return 1 / 0" in error.traceback
        assert "pxcluster" not in error.traceback


def test_order_holds_between_direct_and_queued_requests(shared: Cluster) -> None:
    mec = connect(shared)
    mec.execute("seen = []", targets=0, timeout=T)
    pending = []
    for i in range(60):
        code = f"import time; time.sleep(0.002); seen.append({i})"
        if i % 3 == 0:  # through the controller, not waited for: later calls queue behind it
            pending.append(mec.execute(code, targets=0, block=False))
        else:
            mec.execute(code, targets=0, timeout=T)
    mec.barrier(pending, timeout=T)
    assert mec[0].pull("seen", timeout=T) == list(range(60))
    # a call sent right behind a slow one that is still queued waits for it
    slow = mec.execute("import time; time.sleep(0.5); late = 1", targets=0, block=False)
    assert mec[0].pull("late", timeout=T) == 1
    slow.get_result(timeout=T)


def test_the_controller_sees_direct_calls(shared: Cluster) -> None:
    mec = connect(shared)
    watcher = connect(shared)
    thread, outcome = in_thread(
        lambda: mec.execute("import time; time.sleep(2); slept = True", targets=1, timeout=T)
    )
    try:
        wait_for(lambda: queued_on(watcher, 1) == 1, timeout=T, message="the call queued")
    finally:
        thread.join(T)
    assert outcome.get("value") is not None, outcome
    wait_for(lambda: queued_on(watcher, 1) == 0, timeout=T, message="the queue emptied")

    # quick calls too reach the controller's history (the monitors' recent requests)
    mec[1].apply(lambda: "marker")
    marker = mec._core.session  # every request id of this client starts with it

    def reported() -> bool:
        reply = watcher._core.call_controller(MsgType.MONITOR, {"since": 0}, "monitor", T)
        mine = [e for e in reply.content["events"] if str(e[3]).startswith(marker)]
        return len(mine) >= 2 and {e[1] for e in mine} == {1}

    wait_for(reported, timeout=T, message="the direct calls in the controller's history")


def test_ctrl_c_interrupts_a_direct_call(shared: Cluster) -> None:
    mec = connect(shared)
    watcher = connect(shared)

    def press_ctrl_c() -> None:
        wait_for(lambda: queued_on(watcher, 0) == 1, timeout=T, message="the call queued")
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    presser.start()
    with pytest.raises(KeyboardInterrupt):
        mec.execute("import time; time.sleep(60)", targets=0, timeout=T)
    presser.join(T)
    # the engine stopped sleeping: it answers well before the 60 s sleep would end
    assert mec[0].apply(lambda: "awake") == "awake"


def test_interrupt_from_another_thread_stops_a_direct_call(shared: Cluster) -> None:
    mec = connect(shared)
    thread, outcome = in_thread(
        lambda: mec.execute("import time; time.sleep(60)", targets=1, timeout=T)
    )
    wait_for(lambda: queued_on(mec, 1) == 1, timeout=T, message="the call queued")
    mec.interrupt(targets=1, timeout=T)
    thread.join(T)
    assert isinstance(outcome.get("error"), CompositeError), outcome
    with pytest.raises(KeyboardInterrupt):
        outcome["error"].raise_exception(0)


def test_a_queued_direct_call_can_be_cleared(shared: Cluster) -> None:
    # another client's long request runs; this client's direct call waits behind it in the
    # engine's queue, where clear_queue() finds it
    other = connect(shared)
    mec = connect(shared)
    busy = other.execute("import time; time.sleep(3)", targets=1, block=False)
    wait_for(lambda: queued_on(mec, 1) == 1, timeout=T, message="the long request queued")
    thread, outcome = in_thread(lambda: mec[1].apply(lambda: "ran"))
    wait_for(lambda: queued_on(mec, 1) == 2, timeout=T, message="the direct call queued")
    other.clear_queue(targets=1, timeout=T)
    thread.join(T)
    assert isinstance(outcome.get("error"), CompositeError), outcome
    assert "cleared" in str(outcome["error"])
    busy.get_result(timeout=T)  # the running one was not touched
    assert mec[1].apply(lambda: "ran") == "ran"


def test_kill_and_death_end_direct_calls(tmp_path: Path) -> None:
    with cluster_in(tmp_path / "profile", n=2, heartbeat_timeout=2.0) as cluster:
        mec = connect(cluster)
        pids = dict(zip(mec.get_ids(), mec.apply(os.getpid), strict=True))
        # a client's kill() of an engine running a direct call
        killed, killed_outcome = in_thread(
            lambda: mec.execute("import time; time.sleep(60)", targets=0, timeout=T)
        )
        wait_for(lambda: queued_on(mec, 0) == 1, timeout=T, message="the call queued")
        mec.kill(targets=0, timeout=T)
        killed.join(T)
        assert isinstance(killed_outcome.get("error"), CompositeError), killed_outcome
        # an engine that dies (SIGKILL) with a direct call running: the call fails
        started = tmp_path / "started"
        died, died_outcome = in_thread(
            lambda: mec.execute(
                f"import time; open({str(started)!r}, 'w').close(); time.sleep(60)",
                targets=1,
                timeout=T,
            )
        )
        wait_for(started.exists, timeout=T, message="the call started")
        os.kill(pids[1], signal.SIGKILL)
        died.join(T)
        error = died_outcome.get("error")
        assert isinstance(error, CompositeError), died_outcome
        with pytest.raises(EngineError):
            error.raise_exception(0)
        wait_for(lambda: mec.get_ids() == [], timeout=T, message="both engines gone")


@pytest.mark.timeout(180)
def test_engines_on_another_host_are_called_through_the_controller(
    tmp_path: Path, netns_host: Any
) -> None:
    # An engine on another host (its own /dev/shm, so not this host's key) offers a direct
    # port the client cannot reach: the client must not try it, or the call would hang.
    with cluster_in(
        tmp_path / "profile", n=1, controller_args=["--ip", netns_host.interface]
    ) as cluster:
        env = {
            "PATH": os.environ["PATH"],
            "HOME": "/root",
            ENGINE_CONNECTION_ENV: cluster.paths.engine_file.read_text(),
        }
        if "PYTHONPATH" in os.environ:  # a checkout run without installing it
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        with open(tmp_path / "remote-engine.log", "wb") as log:
            remote = [
                subprocess.Popen(
                    netns_host.command([sys.executable, "-m", "pxcluster.cli.engine"]),
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            ]
        try:
            mec = connect(cluster)
            ids = mec.wait_for_engines(2, timeout=T)
            names = mec.apply(lambda: __import__("socket").gethostname())
            there = [e for e, name in zip(ids, names, strict=True) if name == netns_host.hostname]
            assert len(there) == 1
            for _ in range(20):
                assert mec[there[0]].apply(lambda: 6 * 7) == 42
            mec.execute("w = 1", targets=there[0], timeout=T)
            assert mec[there[0]].pull("w", timeout=T) == 1
        finally:
            for proc in remote:
                proc.kill()
                proc.wait(T)


def test_socket_files_go_with_the_client_and_the_engine(tmp_path: Path) -> None:
    def files_of(pid: int) -> set[Path]:
        return set(Path("/dev/shm").glob(f"pxdirect-{pid}-*.sock"))

    with cluster_in(tmp_path / "profile", n=1) as cluster:
        before = files_of(os.getpid())  # other clients of this process (the cluster's own)
        mec = connect(cluster)
        engine = mec[0].apply(os.getpid)
        assert len(files_of(engine)) == 1  # its direct port
        assert len(files_of(os.getpid()) - before) == 1  # this client's reply socket
        mec.close()
        assert files_of(os.getpid()) - before == set()
    assert files_of(engine) == set()  # the engine stopped with the cluster
