"""Hundreds of simulated engines behind real relays (``pxrelay``): they register, compute and
stop, and the controller holds a few connections per relay, not four per engine."""

from __future__ import annotations

import json
import select
import subprocess
import sys

import psutil
import pytest

from pxcluster.testing import cluster_in

T = 120
PER_RELAY = 100
RELAYS = 2


def line_of(proc: subprocess.Popen[str], timeout: float) -> dict[str, object]:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"nothing written within {timeout} s"
    assert proc.stdout is not None
    return json.loads(proc.stdout.readline())


@pytest.mark.timeout(240)
def test_simulated_engines_behind_relays_cost_the_controller_per_relay(tmp_path):
    with cluster_in(
        tmp_path / "p", n=0, controller_args=["--heartbeat-timeout", "60"], timeout=60
    ) as cluster:
        engine_file = str(cluster.paths.engine_file)
        procs: list[subprocess.Popen[str]] = []
        try:
            for i in range(RELAYS):
                folder = str(tmp_path / f"relay{i}")
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "pxcluster.cli.relay", "--file", engine_file,
                     "--folder", folder],
                    stdout=subprocess.DEVNULL, text=True,
                ))  # fmt: skip
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "pxcluster.testing._simulator", "--file",
                     engine_file, "-n", str(PER_RELAY), "--relay", folder],
                    stdout=subprocess.PIPE, text=True,
                ))  # fmt: skip
            for sim in procs[1::2]:
                assert line_of(sim, T)["registered"] == PER_RELAY
            mec = cluster.client(timeout=T)
            ids = mec.wait_for_engines(RELAYS * PER_RELAY, timeout=T)
            assert mec.apply(lambda: 6 * 7) == [42] * len(ids)
            mec.scatter("x", list(range(2 * len(ids))), timeout=T)
            assert mec.gather("x", timeout=T) == list(range(2 * len(ids)))
            # directly, 200 engines would hold 800 connections of the controller
            assert psutil.Process(cluster.controller_pid).num_fds() < 100
            cluster.stop()
            for proc in procs:
                assert proc.wait(timeout=T) == 0  # relays and simulators stop with it
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=T)
                if proc.stdout is not None:
                    proc.stdout.close()
