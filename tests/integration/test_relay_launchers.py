"""``--relay`` with the launchers: one ``pxrelay`` per host with the engines behind it, for a
local cluster (``pxcluster start -n 3 --relay``) and over ssh to a namespace host, where a
push to all its engines crosses the link once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
import pytest

from pxcluster import Cluster, MultiEngineClient
from pxcluster.profile import LauncherConfig
from pxcluster.testing import leftover_processes

T = 90


def run_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pxcluster.cli.cluster", *args],
        capture_output=True, text=True, timeout=T + 60, check=False,
    )  # fmt: skip


@pytest.mark.timeout(180)
def test_pxcluster_start_relay_puts_the_engines_behind_one_relay(tmp_path):
    flags = ["--profile-dir", str(tmp_path / "p")]
    start = run_cli(["start", "-n", "3", "--relay", "--timeout", str(T), *flags])
    pids: list[int] = []
    try:
        assert start.returncode == 0, start.stderr
        with MultiEngineClient(profile_dir=tmp_path / "p", timeout=T) as mec:
            assert mec.get_ids() == [0, 1, 2]
            parents = set(mec.apply(os.getppid))
            pids = [*mec.apply(os.getpid), *parents]
        assert len(parents) == 1  # all three started by one process: the relay
        (relay,) = parents
        assert "pxcluster.cli.relay" in " ".join(psutil.Process(relay).cmdline())
    finally:
        stop = run_cli(["stop", *flags])
    assert stop.returncode == 0, stop.stderr
    assert leftover_processes(pids) == []


def tx_bytes(interface: str) -> int:
    return int(Path(f"/sys/class/net/{interface}/statistics/tx_bytes").read_text())


@pytest.mark.timeout(240)
def test_ssh_relay_a_push_to_four_engines_crosses_the_link_once(tmp_path, netns_host, sshd_host):
    options = {"ssh": LauncherConfig(extra={
        "hosts": sshd_host.destination, "ssh_args": sshd_host.ssh_args, "relay": "true"})}
    cluster = Cluster(
        4,
        profile="sshrelay",
        profile_dir=tmp_path / "profile",
        controller_args=["--ip", "0.0.0.0", "--location", netns_host.peer],
        engines="ssh",
        options=options,
        timeout=T,
    )  # fmt: skip
    try:
        cluster.start()
        assert len(cluster.engine_handles) == 1  # the host's relay
        mec = cluster.client(timeout=T)
        mec.execute("import socket; name = socket.gethostname()", timeout=T)
        assert mec.pull("name", timeout=T) == [netns_host.hostname] * 4
        payload = np.random.default_rng(3).integers(0, 255, 16 << 20, dtype=np.uint8)
        before = tx_bytes(netns_host.interface)
        mec.push({"big": payload}, timeout=T)
        sent = tx_bytes(netns_host.interface) - before
        mec.execute("n = int(big.sum())", timeout=T)
        assert mec.pull("n", timeout=T) == [int(payload.sum())] * 4
        # four engines, 16 MiB each: directly that is 64 MiB over the link; through the
        # relay once, plus headers and TCP overhead
        assert payload.nbytes <= sent < 1.5 * payload.nbytes, sent
    finally:
        cluster.stop()
    assert netns_host.pxcluster_processes() == []
