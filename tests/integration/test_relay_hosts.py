"""Engines on another host behind its relay: a namespace host (tests/services/netns.py) runs
``pxrelay --engines 2``; the controller here reaches them, with CurveZMQ on, through the
relay's one connection, and ends them by signal through it when they do not answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pxcluster import CompositeError
from pxcluster.profile import ENGINE_CONNECTION_ENV
from pxcluster.testing import cluster_in, leftover_processes, wait_for

T = 60


def start_remote_relay(host, connection_text: str, engines: int, log_path) -> subprocess.Popen:
    env = {"PATH": os.environ["PATH"], "HOME": "/root", ENGINE_CONNECTION_ENV: connection_text}
    if "PYTHONPATH" in os.environ:  # a checkout run without installing it
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            host.command([sys.executable, "-m", "pxcluster.cli.relay", "--engines", str(engines),
                          "--log-level", "INFO"]),
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip


def relay_counts(log: Path) -> dict[str, int]:
    """The counts a relay prints last, when it stops (its engines share its output)."""
    lines = [line for line in log.read_text().splitlines() if line.startswith('{"engines"')]
    return json.loads(lines[-1])


@pytest.mark.timeout(180)
def test_interrupt_and_kill_reach_an_engine_on_another_host_stuck_in_c_code(tmp_path, netns_host):
    marker = "/tmp/started"  # the other host's own /tmp
    with cluster_in(
        tmp_path / "p", n=0, controller_args=["--ip", netns_host.interface, "--curve"]
    ) as cluster:
        relay = start_remote_relay(
            netns_host, cluster.paths.engine_file.read_text(), 2, tmp_path / "relay.log"
        )
        try:
            mec = cluster.client(timeout=T)
            ids = mec.wait_for_engines(2, timeout=T)
            assert mec[ids].apply(__import__("socket").gethostname) == [netns_host.hostname] * 2
            pid = mec[ids[0]].apply(os.getpid)
            code = (
                f"import ctypes, pathlib\npathlib.Path({marker!r}).touch()\n"
                "ctypes.PyDLL(None).sleep(120)\n"  # PyDLL holds the GIL through the C call
            )

            def started() -> bool:
                return netns_host.run(["test", "-e", marker]).returncode == 0

            stuck = mec[ids[0]].execute(code, block=False)
            wait_for(started, timeout=T, message="the C call to start")
            mec.interrupt(targets=ids[0], timeout=2.0)  # within 2 s, or this fails
            with pytest.raises(CompositeError) as failed:
                stuck.get_result(timeout=T)
            assert failed.value.elist[0].ename == "KeyboardInterrupt"
            assert netns_host.run(["rm", marker]).returncode == 0

            mec[ids[0]].execute(code, block=False)
            wait_for(started, timeout=T, message="the C call to start again")
            mec.kill(targets=ids[0], timeout=2.0)  # within 2 s, or this fails
            wait_for(lambda: not leftover_processes([pid]), timeout=T,
                     message="the engine on the other host killed by its relay")
            assert mec.get_ids() == ids[1:]
            assert mec[ids[1]].apply(os.getpid) != pid  # the other one goes on
        finally:
            cluster.stop()
            assert relay.wait(timeout=T) == 0
    assert netns_host.pxcluster_processes() == []
    last = relay_counts(tmp_path / "relay.log")
    assert last["fanouts"] >= 1  # apply on both: one message over the link
