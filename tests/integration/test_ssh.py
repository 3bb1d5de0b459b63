"""The ssh launcher against a real sshd on a namespace host (tests/services/sshd.py): its own
address, hostname, /dev/shm, /tmp and home, so nothing of this machine's profile is visible
there and shared memory is not shared.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from pxcluster import Cluster, MultiEngineClient, StringTask, TaskClient
from pxcluster._errors import LaunchFailed
from pxcluster.profile import LauncherConfig

T = 90


def tunnel_processes(sshd) -> list[str]:
    """Our ssh tunnel processes (ssh -N -L ... to the test's sshd) still running."""
    import psutil

    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        line = proc.info["cmdline"] or []
        if proc.info["name"] == "ssh" and "-N" in line and sshd.destination in line:
            found.append(" ".join(line))
    return found


def ssh_options(sshd, **extra) -> dict[str, LauncherConfig]:
    return {
        "ssh": LauncherConfig(extra={"hosts": sshd.destination, "ssh_args": sshd.ssh_args, **extra})
    }


@pytest.mark.timeout(240)
def test_engines_started_over_ssh_get_100_mb_intact_over_curve(tmp_path, netns_host, sshd_host):
    cluster = Cluster(
        2,
        profile="ssh",
        profile_dir=tmp_path / "profile",
        controller_args=["--ip", "0.0.0.0", "--location", netns_host.peer, "--curve"],
        engines="ssh",
        options=ssh_options(sshd_host),
        timeout=T,
    )
    try:
        cluster.start()
        assert {h.host for h in cluster.engine_handles} == {netns_host.hostname}
        mec = cluster.client(timeout=T)
        mec.execute("import socket, os; name = socket.gethostname()", timeout=T)
        assert mec.pull("name", timeout=T) == [netns_host.hostname] * 2
        # their profile is their own: nothing of ours is visible there
        seen = mec.execute(f"import os; here = os.path.exists({str(tmp_path)!r})", timeout=T)
        assert seen is not None
        assert mec.pull("here", timeout=T) == [False, False]

        array = np.random.default_rng(7).integers(0, 255, 100_000_000, dtype=np.uint8)
        digest = hashlib.sha256(array).hexdigest()
        mec.push({"big": array}, timeout=T)
        mec.execute("import hashlib; d = hashlib.sha256(big).hexdigest()", timeout=T)
        assert mec.pull("d", timeout=T) == [digest, digest]
    finally:
        cluster.stop()
    assert netns_host.pxcluster_processes() == []


@pytest.mark.timeout(240)
def test_pxcluster_start_puts_controller_and_engines_on_the_host_and_stop_ends_them(
    tmp_path, netns_host, sshd_host
):
    """pxcluster start --controller ssh --controller-host H --engines ssh --hosts H:2
    (no -n: one engine per slot)"""
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "pxcluster.toml").write_text(f"[ssh]\nssh_args = {json.dumps(sshd_host.ssh_args)}\n")
    flags = ["--profile-dir", str(profile)]
    start = run_cli(
        ["start", "--controller", "ssh", "--controller-host", sshd_host.destination,
         "--engines", "ssh", "--hosts", f"{sshd_host.destination}:2", "--timeout", str(T),
         *flags]
    )  # fmt: skip
    try:
        assert start.returncode == 0, start.stderr
        with MultiEngineClient(profile_dir=profile, timeout=T) as mec:
            assert mec.get_ids() == [0, 1]
            mec.execute("import socket; n = socket.gethostname()", timeout=T)
            assert mec.pull("n", timeout=T) == [netns_host.hostname] * 2
        assert len(netns_host.pxcluster_processes()) == 3  # the controller and two engines
        # a client with nothing but the login: the connection file is read over ssh and
        # the connection goes through an SSH tunnel
        nothing_here = tmp_path / "laptop"
        tunnel = {"ssh": sshd_host.destination, "ssh_options": sshd_host.ssh_args}
        with MultiEngineClient(profile_dir=nothing_here, timeout=T, **tunnel) as mec:
            assert mec._core.connection.url.startswith("tcp://127.0.0.1:")
            assert mec.pull("n", timeout=T) == [netns_host.hostname] * 2
        tc = TaskClient(profile_dir=nothing_here, timeout=T, **tunnel)
        try:
            tid = tc.run(StringTask("import socket; h = socket.gethostname()", pull="h"))
            assert tc.get_task_result(tid, block=True, timeout=T).ns.h == netns_host.hostname
        finally:
            tc.close()
        assert tunnel_processes(sshd_host) == []  # closing the clients ended their tunnels
    finally:
        stop = run_cli(["stop", *flags])
    assert stop.returncode == 0, stop.stderr
    assert netns_host.pxcluster_processes() == []


def run_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pxcluster.cli.cluster", *args],
        capture_output=True,
        text=True,
        timeout=T + 60,
        check=False,
    )


@pytest.mark.timeout(120)
def test_engines_elsewhere_with_a_loopback_controller_fail_at_once(tmp_path, sshd_host):
    cluster = Cluster(
        1,
        profile="loop",
        profile_dir=tmp_path / "profile",
        engines="ssh",
        options=ssh_options(sshd_host),
        timeout=T,
    )
    with pytest.raises(LaunchFailed, match=r"--ip .*--location"):
        cluster.start()  # stops what it started when it fails
    assert not cluster.controller_alive()
