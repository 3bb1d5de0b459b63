"""The three commands, run as a user runs them: real subprocesses, real clusters."""

import json
import os
import signal
import subprocess
import sys

import psutil
import pytest

from pxcluster import MultiEngineClient
from pxcluster.testing import leftover_processes, wait_for

PXCLUSTER = [sys.executable, "-m", "pxcluster.cli.cluster"]
PXCONTROLLER = [sys.executable, "-m", "pxcluster.cli.controller"]
PXENGINE = [sys.executable, "-m", "pxcluster.cli.engine"]


def run(cmd, timeout=60):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def cluster_pids(profile_dir):
    record = json.loads((profile_dir / "pid" / "cluster.json").read_text())
    return [record["controller"]["pid"], *(e["pid"] for e in record["engines"])]


@pytest.fixture
def root(tmp_path):
    """PXCLUSTER_DIR for these tests (set by conftest); stops whatever a test left running."""
    path = tmp_path / "pxroot"
    yield path
    for folder in path.glob("profile_*"):
        if (folder / "pid" / "cluster.json").exists():
            run([*PXCLUSTER, "stop", "--profile", folder.name.removeprefix("profile_")])


@pytest.mark.parametrize("cmd", [PXCLUSTER, [*PXCLUSTER, "start"], [*PXCLUSTER, "stop"],
                                 [*PXCLUSTER, "list"], PXCONTROLLER, PXENGINE])
def test_every_command_has_help(cmd):
    result = run([*cmd, "--help"])
    assert result.returncode == 0
    assert result.stdout.startswith("usage:")
    assert len(result.stdout.splitlines()) > 4  # a description and the options


def test_start_list_stop(root):
    started = run([*PXCLUSTER, "start", "-n", "2", "--profile", "cli"])
    assert started.returncode == 0, started.stderr
    assert "2 engines [0, 1]" in started.stdout
    assert "MultiEngineClient(profile='cli')" in started.stdout
    pids = cluster_pids(root / "profile_cli")
    assert len(leftover_processes(pids)) == 3

    with MultiEngineClient(profile="cli") as mec:
        assert mec.map(lambda x: x + 1, [1, 2, 3]) == [2, 3, 4]

    listed = run([*PXCLUSTER, "list"])
    assert listed.returncode == 0
    line = next(ln for ln in listed.stdout.splitlines() if ln.startswith("cli "))
    assert str(pids[0]) in line
    assert "0:0, 1:0" in line

    again = run([*PXCLUSTER, "start", "-n", "1", "--profile", "cli"])
    assert again.returncode == 1
    assert "already running" in again.stderr
    assert "pxcluster stop --profile cli" in again.stderr

    stopped = run([*PXCLUSTER, "stop", "--profile", "cli"])
    assert stopped.returncode == 0, stopped.stderr
    assert leftover_processes(pids) == []
    assert not (root / "profile_cli" / "security" / "client.json").exists()

    twice = run([*PXCLUSTER, "stop", "--profile", "cli"])
    assert twice.returncode == 1
    assert "no cluster of profile 'cli' is running" in twice.stderr
    assert "no running clusters" in run([*PXCLUSTER, "list"]).stdout


def test_foreground_cluster_stops_on_ctrl_c(root):
    proc = subprocess.Popen([*PXCLUSTER, "-n", "2", "--profile", "fg"],
                            stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        wait_for(lambda: lines.append(proc.stdout.readline()) or "Ctrl-C" in lines[-1],
                 timeout=30, message="the foreground cluster to be ready")
        pids = cluster_pids(root / "profile_fg")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        assert leftover_processes(pids) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_controller_and_engines_started_by_hand(tmp_path):
    profile = tmp_path / "hand"
    controller = subprocess.Popen([*PXCONTROLLER, "--profile-dir", str(profile)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    engines = []
    try:
        client_file = profile / "security" / "client.json"
        engine_file = profile / "security" / "engine.json"
        wait_for(client_file.exists, timeout=20, message="the connection files")
        for path in (client_file, engine_file):
            assert path.stat().st_mode & 0o777 == 0o600
        client_info, engine_info = (json.loads(p.read_text()) for p in (client_file, engine_file))
        assert client_info["key"] != engine_info["key"]
        port = engine_info["url"].rsplit(":", 1)[1]
        engines.append(subprocess.Popen([*PXENGINE, "--profile-dir", str(profile)]))
        engines.append(subprocess.Popen([*PXENGINE, "--file", str(engine_file),
                                         "--controller-ip", "127.0.0.1",
                                         "--controller-port", port]))
        with MultiEngineClient(profile_dir=profile) as mec:
            assert mec.wait_for_engines(2, timeout=20) == [0, 1]
            pids = mec.execute("import os; os.getpid()")
            assert sorted(int(r["display"]) for r in pids) == sorted(e.pid for e in engines)
            mec.kill(controller=True, timeout=10)
        for proc in [controller, *engines]:
            assert proc.wait(timeout=15) == 0
    finally:
        for proc in [controller, *engines]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_engine_key_cannot_act_as_a_client(tmp_path):
    profile = tmp_path / "keys"
    controller = subprocess.Popen([*PXCONTROLLER, "--profile-dir", str(profile)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        engine_file = profile / "security" / "engine.json"
        wait_for(engine_file.exists, timeout=20, message="the connection files")
        forged = json.loads(engine_file.read_text())
        forged["role"] = "client"
        fake = tmp_path / "forged.json"
        fake.write_text(json.dumps(forged))
        fake.chmod(0o600)  # a key file others can read is refused before it is tried
        with pytest.raises(TimeoutError, match="no controller answered"):
            MultiEngineClient(fake, timeout=1.0)
    finally:
        controller.send_signal(signal.SIGTERM)
        assert controller.wait(timeout=15) == 0


def test_engine_without_controller_exits_with_a_clear_message(tmp_path):
    result = run([*PXENGINE, "--profile-dir", str(tmp_path / "none")])
    assert result.returncode != 0
    assert "no connection file" in result.stderr


def test_no_engine_processes_are_children_left(root):
    me = psutil.Process(os.getpid())
    names = [" ".join(c.cmdline()) for c in me.children(recursive=True)]
    assert not [n for n in names if "pxcluster.cli" in n]


def test_engines_per_job_is_refused_where_it_means_nothing_before_anything_starts(root):
    alone = run([*PXCLUSTER, "start", "-n", "2", "--engines-per-job", "2"])
    assert alone.returncode == 1
    assert "--engines-per-job goes with --relay and a batch launcher" in alone.stderr
    unsized = run([*PXCLUSTER, "start", "-n", "2", "--engines", "slurm", "--relay"])
    assert unsized.returncode == 1
    assert "needs --engines-per-job K" in unsized.stderr
    assert not root.exists() or not list(root.glob("profile_*/pid/*"))  # nothing started
