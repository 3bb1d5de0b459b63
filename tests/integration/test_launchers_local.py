"""The local launcher behind the launcher interface: handles, logs, per-engine control,
and a start that gives up listing what is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pxcluster import Cluster
from pxcluster._errors import LaunchFailed
from pxcluster.launchers import ClusterRecord, JobState, make_launcher
from pxcluster.profile import ProfilePaths
from pxcluster.testing import cluster_in


def test_local_handles_are_recorded_and_logs_found_by_engine_id(tmp_path: Path) -> None:
    with cluster_in(tmp_path / "p", n=2) as cluster:
        record = ClusterRecord.read(cluster.paths.cluster_file)
        assert record is not None
        assert [h.launcher for h in record.engines] == ["local", "local"]
        assert sorted(h.pid for h in record.engines) == sorted(cluster.engine_pids)
        launcher = make_launcher("local", cluster.paths)
        assert {s.state for s in launcher.poll(record.engines)} == {JobState.RUNNING}
        mec = cluster.client()
        mec.execute("print('hello from the engine')", targets=1)
        logs = cluster.engine_logs(1)
        assert logs.startswith("engine 1: pid ")
        assert "running" in logs
        assert "registered as engine 1" in logs  # the engine's own log, found by id


def test_restart_replaces_one_engine_and_keeps_the_rest(tmp_path: Path) -> None:
    profile = Path(os.environ["PXCLUSTER_DIR"]) / "profile_local"

    def px(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pxcluster.cli.cluster", *args, "--profile-dir", str(profile)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert px("start", "-n", "2").returncode == 0
    try:
        record = ClusterRecord.read(profile / "pid" / "cluster.json")
        assert record is not None
        before = {h.pid for h in record.engines}
        done = px("restart", "0")
        assert done.returncode == 0, done.stderr
        assert "engine 0 replaced; engines now [1, 2]" in done.stdout
        record = ClusterRecord.read(profile / "pid" / "cluster.json")
        assert record is not None
        alive = make_launcher("local", ProfilePaths.for_profile("local", profile)).poll(
            record.engines
        )
        running = {
            h.pid for h, s in zip(record.engines, alive, strict=True) if s.state.value == "running"
        }
        assert len(running) == 2
        assert len(before & running) == 1  # engine 1 kept, engine 0 replaced
    finally:
        assert px("stop").returncode == 0


def test_a_start_that_gives_up_lists_the_engines_missing(tmp_path: Path) -> None:
    cluster = Cluster(
        2,
        profile="t",
        profile_dir=tmp_path / "p",
        engine_args=["--controller-ip", "127.0.0.9"],  # nobody listens there
        timeout=4,
    )
    with pytest.raises(LaunchFailed) as failed:
        cluster.start()
    text = str(failed.value)
    assert "only 0 of 2 engines registered within 4" in text
    assert "not registered (2 of the 2 launched now):" in text
    assert text.count("running, but not registered; output: ") == 2
    assert "/log/engine-" in text  # where each one's log is


def test_a_missing_submit_command_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no sbatch, qsub or anything
    cluster = Cluster(2, profile="t", profile_dir=tmp_path / "p", engines="slurm", timeout=30)
    with pytest.raises(LaunchFailed, match="'sbatch' was not found on PATH") as failed:
        cluster.start()
    assert "cannot submit" in str(failed.value)
    assert "engines-" in str(failed.value)  # the job script it wrote is named
