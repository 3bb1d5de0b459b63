"""Engines on another host: a namespace host with its own address, hostname, /dev/shm, /tmp
and home (tests/services/netns.py), reaching a controller on this machine over a veth link.

The controller listens on the link's interface (given by name) and writes the address the
other host should use into the connection files; engines there get their connection from
their environment (nothing of the profile is visible to them), connect with CurveZMQ on,
and receive big arrays over the sockets, since their shared memory is not ours.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pxcluster import Cluster
from pxcluster.profile import ENGINE_CONNECTION_ENV, EngineConnection, write_connection
from pxcluster.serialize import host_key
from pxcluster.testing import cluster_in, leftover_processes

T = 60


def start_remote_engines(
    host, connection_text: str, count: int, log_dir, args: tuple[str, ...] = ()
) -> list:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": "/root",
        ENGINE_CONNECTION_ENV: connection_text,
    }
    procs = []
    for i in range(count):
        log = open(log_dir / f"remote-engine-{i}.log", "wb")  # noqa: SIM115
        procs.append(
            subprocess.Popen(
                host.command([sys.executable, "-m", "pxcluster.cli.engine", *args]),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        log.close()
    return procs


@pytest.mark.timeout(180)
def test_engines_on_another_host_register_compute_and_get_arrays_over_sockets(tmp_path, netns_host):
    # --ip by interface name; the location written is that interface's address
    with cluster_in(
        tmp_path / "profile", n=2, controller_args=["--ip", netns_host.interface, "--curve"]
    ) as cluster:
        engine_file = cluster.paths.engine_file
        connection = json.loads(engine_file.read_text())
        assert connection["url"].startswith(f"tcp://{netns_host.peer}:")
        assert connection["curve_serverkey"]
        remote = start_remote_engines(netns_host, engine_file.read_text(), 2, tmp_path)
        try:
            mec = cluster.client(timeout=T)
            ids = mec.wait_for_engines(4, timeout=T)
            mec.execute("import socket, os; name = socket.gethostname()", timeout=T)
            names = dict(zip(ids, mec.pull("name", timeout=T), strict=True))
            there = [e for e, name in names.items() if name == netns_host.hostname]
            here = [e for e, name in names.items() if name != netns_host.hostname]
            assert len(there) == 2
            assert len(here) == 2

            # the connection (and its key) is not left in the engines' environment
            mec.execute(f"leaked = os.environ.get({ENGINE_CONNECTION_ENV!r})", timeout=T)
            assert mec.pull("leaked", timeout=T) == [None] * 4
            # shared memory is only used where it is shared: a push to both hosts at once
            array = np.arange(4 << 20, dtype=np.float64)  # 32 MiB
            mec.push({"a": array}, timeout=T)
            sums = mec.execute("s = float(a.sum()); n = a.size", timeout=T)
            assert sums is not None
            assert mec.pull("s", timeout=T) == [float(array.sum())] * 4
            back = mec[there[0]].pull("a", timeout=T)
            assert np.array_equal(back, array)
            # nothing of ours was left in the other host's /dev/shm, nor theirs in ours
            listing = netns_host.run(["ls", "-A", "/dev/shm"])
            assert listing.returncode == 0
            assert "pxshm-" not in listing.stdout
            keys = mec.execute(
                "from pxcluster.serialize import host_key; k = host_key()", timeout=T
            )
            assert keys is not None
            remote_keys = {mec[e].pull("k", timeout=T) for e in there}
            assert host_key() not in remote_keys
        finally:
            cluster.stop()
            for proc in remote:
                assert proc.wait(timeout=T) == 0  # told to stop by the controller
    assert netns_host.pxcluster_processes() == []


@pytest.mark.timeout(120)
def test_controller_ip_reaches_a_controller_on_every_interface_with_curve(tmp_path, netns_host):
    """The file says another address (this machine's first); the engine is told the one
    its host can reach, and keeps the file's Curve key and heartbeat ports."""
    with cluster_in(
        tmp_path / "profile", n=0, controller_args=["--ip", "0.0.0.0", "--curve"]
    ) as cluster:
        text = cluster.paths.engine_file.read_text()
        assert f"tcp://{netns_host.peer}:" not in text
        remote = start_remote_engines(
            netns_host, text, 1, tmp_path, ("--controller-ip", netns_host.peer)
        )
        try:
            mec = cluster.client(timeout=T)
            assert mec.wait_for_engines(1, timeout=T) == [0]
            mec.execute("import socket; h = socket.gethostname()", timeout=T)
            assert mec.pull("h", timeout=T) == [netns_host.hostname]
        finally:
            cluster.stop()
            assert remote[0].wait(timeout=T) == 0
    assert netns_host.pxcluster_processes() == []


@pytest.mark.timeout(120)
def test_an_engine_started_before_its_controller_registers_when_it_appears(tmp_path):
    profile = tmp_path / "profile"
    engine = subprocess.Popen(
        [sys.executable, "-m", "pxcluster.cli.engine", "--profile-dir", str(profile),
         "--controller-timeout", "60"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    cluster = Cluster(0, profile="late", profile_dir=profile, timeout=T)
    try:
        cluster.start()
        mec = cluster.client(timeout=T)
        assert mec.wait_for_engines(1, timeout=T) == [0]
        assert mec.execute("x = 6 * 7", timeout=T) is not None
        assert mec.pull("x", timeout=T) == [42]
    finally:
        cluster.stop()
        engine.wait(timeout=T)
    assert leftover_processes([engine.pid]) == []


def test_an_engine_that_cannot_reach_its_controller_says_where_it_tried(tmp_path):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conn = tmp_path / "engine.json"
    write_connection(conn, EngineConnection(f"tcp://127.0.0.1:{port}", b"k" * 32))
    done = subprocess.run(
        [sys.executable, "-m", "pxcluster.cli.engine", "--file", str(conn),
         "--controller-timeout", "1"],
        capture_output=True, text=True, timeout=T, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert f"tcp://127.0.0.1:{port}" in done.stderr
    assert "--ip/--location" in done.stderr


def test_controller_ip_by_an_unknown_interface_name_is_a_clear_error(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pxcluster.cli.controller", "--profile-dir", str(tmp_path),
         "--ip", "no-such-if0"],
        capture_output=True, text=True, timeout=T, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "no-such-if0" in done.stderr
    assert "interfaces here:" in done.stderr


def test_controller_ip_overrides_keep_the_curve_key(tmp_path):
    """pxengine --controller-ip/--controller-port change only the address."""
    from pxcluster.cli.engine import connection_from, parser

    path = tmp_path / "engine.json"
    write_connection(
        path,
        EngineConnection(
            "tcp://127.0.0.1:5000", b"k" * 32, 42, "p", 6000, 6001, curve_serverkey="Z" * 40
        ),
    )
    args = parser().parse_args(
        ["--file", str(path), "--controller-ip", "10.200.0.1", "--controller-port", "5555"]
    )
    conn = connection_from(args, path)
    assert conn.url == "tcp://10.200.0.1:5555"
    assert conn.curve_serverkey == "Z" * 40
    assert (conn.hb_ping_port, conn.hb_pong_port) == (6000, 6001)


def test_a_private_dev_shm_with_the_same_hostname_and_boot_is_another_host_key():
    """A container or namespace that keeps the machine's hostname and boot id but mounts
    its own /dev/shm does not share our segments: its host key must differ."""
    script = "from pxcluster.serialize import host_key; print(host_key())"
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f"mount -t tmpfs tmpfs /dev/shm && exec {sys.executable} -c '{script}'"],
        capture_output=True, text=True, timeout=T, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    theirs = done.stdout.strip()
    assert theirs.split("/")[:2] == host_key().split("/")[:2]  # same hostname and boot
    assert theirs != host_key()
