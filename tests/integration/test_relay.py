"""The per-host relay (``pxrelay``): real relay processes between real engines and a real
controller on this machine (engines on another host: ``test_relay_hosts.py``)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pxcluster import CompositeError
from pxcluster.testing import cluster_in, controller_restarted, leftover_processes, wait_for

T = 60


@contextlib.contextmanager
def relay_process(
    engine_file: Path, folder: Path, engines: int, log: Path, *extra: str
) -> Iterator[subprocess.Popen[bytes]]:
    """A ``pxrelay`` with ``engines`` engines behind it; killed (with them) on exit."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pxcluster.cli.relay", "--file", str(engine_file),
             "--folder", str(folder), "--engines", str(engines), "--log-level", "INFO", *extra],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()  # its engines die with it (PDEATHSIG)
        proc.wait(timeout=T)


@contextlib.contextmanager
def relayed_cluster(tmp_path: Path, local: int, relayed: int, **kwargs: object):
    """A cluster of ``local`` engines, and a relay with ``relayed`` engines behind it."""
    log = tmp_path / "relay.log"
    with cluster_in(tmp_path / "p", n=local, **kwargs) as cluster, relay_process(
        cluster.paths.engine_file, tmp_path / "r", relayed, log
    ) as relay:
        yield cluster, relay


def engine_pids(mec, ids) -> dict[int, int]:
    return dict(zip(ids, mec[ids].apply(os.getpid), strict=True))


def relay_counts(log: Path) -> dict[str, int]:
    """The counts a relay prints last, when it stops (its engines share its output)."""
    lines = [line for line in log.read_text().splitlines() if line.startswith('{"engines"')]
    return json.loads(lines[-1])


@pytest.mark.timeout(120)
def test_engines_behind_a_relay_compute_receive_fan_outs_and_stop_with_the_cluster(
    tmp_path, monkeypatch
):
    # through the controller and the relay: this client's blocking calls would otherwise
    # go to the engines (all on this host) directly (docs/design.md, "Direct calls")
    monkeypatch.setenv("PXCLUSTER_DIRECT", "0")
    with relayed_cluster(tmp_path, 1, 3) as (cluster, relay):
        mec = cluster.client(timeout=T)
        ids = mec.wait_for_engines(4, timeout=T)
        pids = engine_pids(mec, ids)
        relayed = [e for e, pid in pids.items() if pid not in cluster.engine_pids]
        assert len(relayed) == 3
        # execute on all (one message to the relay for its three engines) and a big
        # push, sent once to the relay and handed to each engine
        mec.execute("import os; me = os.getpid()", timeout=T)
        assert mec.pull("me", timeout=T) == [pids[e] for e in ids]
        array = np.arange(1 << 20, dtype=np.float64)
        mec.push({"a": array}, timeout=T)
        mec.execute("s = float(a.sum())", timeout=T)
        assert mec.pull("s", timeout=T) == [float(array.sum())] * 4
        assert np.array_equal(mec[relayed[0]].pull("a", timeout=T), array)
        mec.scatter("x", list(range(12)), timeout=T)
        assert mec.gather("x", timeout=T) == list(range(12))
        # tasks go to relayed engines as to any
        with cluster.task_client(timeout=T) as tc:
            assert sorted(tc.map(abs, range(-20, 0), timeout=T)) == list(range(1, 21))
        # one engine behind the relay killed: the relay reports it, the others go on
        os.kill(pids[relayed[0]], signal.SIGKILL)
        wait_for(lambda: relayed[0] not in mec.get_ids(), timeout=T,
                 message="the relay reporting its engine's death")
        assert mec.pull("s", targets=relayed[1:], timeout=T) == [float(array.sum())] * 2
        cluster.stop()
        assert relay.wait(timeout=T) == 0  # the engines stopped; the relay with them
        # what went to all engines went to the relay once (execute, push, pull...)
        stats = relay_counts(tmp_path / "relay.log")
        assert stats["fanouts"] >= 5
        assert stats["down"] >= 3 * stats["fanouts"]
    assert leftover_processes(list(pids.values())) == []


@pytest.mark.timeout(120)
def test_a_relay_that_dies_takes_its_engines_with_it(tmp_path):
    with relayed_cluster(tmp_path, 1, 2, heartbeat_timeout=2.0) as (cluster, relay):
        mec = cluster.client(timeout=T)
        ids = mec.wait_for_engines(3, timeout=T)
        pids = engine_pids(mec, ids)
        behind = [e for e, pid in pids.items() if pid not in cluster.engine_pids]
        stuck = mec.execute("import time; time.sleep(60)", targets=behind[0], block=False)
        relay.kill()
        relay.wait(timeout=T)
        wait_for(lambda: mec.get_ids() == [e for e in ids if e not in behind], timeout=T,
                 message="both engines declared dead with their relay")
        with pytest.raises(CompositeError) as failed:
            stuck.get_result(timeout=T)
        assert type(failed.value.elist[0]).__name__ == "EngineDied"
        wait_for(lambda: not leftover_processes([pids[e] for e in behind]), timeout=T,
                 message="the engines gone with their relay")


@pytest.mark.timeout(120)
def test_kill_and_interrupt_reach_engines_behind_a_relay_stuck_in_c_code(tmp_path):
    started = tmp_path / "started"
    with relayed_cluster(tmp_path, 0, 2) as (cluster, _):
        mec = cluster.client(timeout=T)
        ids = mec.wait_for_engines(2, timeout=T)
        pids = engine_pids(mec, ids)
        code = (
            f"import ctypes, pathlib\npathlib.Path({str(started)!r}).touch()\n"
            "ctypes.PyDLL(None).sleep(120)\n"  # PyDLL holds the GIL through the C call
        )
        stuck = mec[ids[0]].execute(code, block=False)
        wait_for(started.exists, timeout=T, message="the C call to start")
        mec.interrupt(targets=ids[0], timeout=2.0)  # within 2 s, or this fails
        with pytest.raises(CompositeError) as failed:
            stuck.get_result(timeout=T)
        assert failed.value.elist[0].ename == "KeyboardInterrupt"
        started.unlink()
        mec[ids[0]].execute(code, block=False)
        wait_for(started.exists, timeout=T, message="the C call to start again")
        mec.kill(targets=ids[0], timeout=2.0)
        wait_for(lambda: not leftover_processes([pids[ids[0]]]), timeout=T,
                 message="the engine killed by its relay")
        assert mec.get_ids() == ids[1:]


@pytest.mark.timeout(120)
def test_engines_behind_a_relay_come_back_to_a_controller_that_takes_over(tmp_path):
    with relayed_cluster(tmp_path, 0, 2) as (cluster, _):
        mec = cluster.client(timeout=T)
        ids = mec.wait_for_engines(2, timeout=T)
        mec.push({"kept": "still here"}, timeout=T)
        # the relay reconnects and says which engines it serves; they register again
        with controller_restarted(cluster, mec, timeout=T):
            assert mec.get_ids() == ids
            assert mec.pull("kept", timeout=T) == ["still here"] * 2


@pytest.mark.timeout(120)
def test_engines_of_a_relay_that_stood_still_come_back_as_new_engines(tmp_path):
    with relayed_cluster(tmp_path, 1, 2, heartbeat_timeout=1.0) as (cluster, relay):
        mec = cluster.client(timeout=T)
        ids = mec.wait_for_engines(3, timeout=T)
        pids = engine_pids(mec, ids)
        behind = sorted(e for e, pid in pids.items() if pid not in cluster.engine_pids)
        here = [e for e in ids if e not in behind]
        os.kill(relay.pid, signal.SIGSTOP)
        try:
            wait_for(lambda: mec.get_ids() == here, timeout=T,
                     message="the relay's engines declared dead while it stands still")
        finally:
            os.kill(relay.pid, signal.SIGCONT)
        # asked back through the relay: the same processes, under new ids (never reused)
        wait_for(lambda: len(mec.get_ids()) == 3, timeout=T, message="the engines back")
        back = sorted(set(mec.get_ids()) - set(here))
        assert min(back) > max(ids)
        assert sorted(engine_pids(mec, back).values()) == sorted(pids[e] for e in behind)
