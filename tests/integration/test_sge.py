"""Engines and a controller as Grid Engine jobs, against a real single-node SGE
(tests/services/sge.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pxcluster import MultiEngineClient
from pxcluster.launchers import ClusterRecord

pytestmark = [pytest.mark.sge, pytest.mark.timeout(150)]


def pxcluster(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pxcluster.cli.cluster", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
        check=False,
    )


@pytest.fixture
def profile(sge: object) -> Iterator[Path]:
    folder = Path(os.environ["PXCLUSTER_DIR"]) / "profile_sge"
    folder.mkdir(parents=True)
    yield folder
    pxcluster("stop", "--profile-dir", str(folder))


def _qstat_jobs() -> list[str]:
    done = subprocess.run(["qstat", "-u", "*"], capture_output=True, text=True, check=False)
    return [line.split()[0] for line in done.stdout.splitlines()[2:] if line.strip()]


def test_engines_as_an_sge_array_then_stop_deletes_it(profile: Path) -> None:
    done = pxcluster(
        "start",
        "-n",
        "3",
        "--engines",
        "sge",
        "--controller",
        "sge",
        "--timeout",
        "90",
        "--profile-dir",
        str(profile),
    )
    assert done.returncode == 0, done.stderr
    assert "3 engines [0, 1, 2]" in done.stdout
    record = ClusterRecord.read(profile / "pid" / "cluster.json")
    assert record is not None
    assert record.controller.launcher == "sge"
    (job,) = {h.job_id for h in record.engines}

    with MultiEngineClient(profile_dir=profile, timeout=30) as mec:
        assert mec.map(lambda x: 2 * x, range(6)) == [0, 2, 4, 6, 8, 10]
        mec.execute("import os; task = os.environ['SGE_TASK_ID']")
        assert sorted(mec.pull("task")) == ["1", "2", "3"]

    assert f"sge job {job}: 3 running" in pxcluster("list").stdout
    logs = pxcluster("logs", "0", "--profile-dir", str(profile))
    assert f"sge job {job}[" in logs.stdout, logs.stdout
    assert ".out <==" in logs.stdout

    stopped = pxcluster("stop", "--profile-dir", str(profile))
    assert stopped.returncode == 0, stopped.stderr
    assert job not in _qstat_jobs()
    assert record.controller.job_id not in _qstat_jobs()


def test_relay_per_sge_array_task(profile: Path) -> None:
    import collections

    from pxcluster.testing import leftover_processes

    done = pxcluster(
        "start", "-n", "3", "--engines", "sge", "--relay", "--engines-per-job", "2",
        "--timeout", "90", "--profile-dir", str(profile),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = ClusterRecord.read(profile / "pid" / "cluster.json")
    assert record is not None
    (job,) = {h.job_id for h in record.engines}
    with MultiEngineClient(profile_dir=profile, timeout=30) as mec:
        mec.execute("import os; task = os.environ['SGE_TASK_ID']; relay = os.getppid()")
        assert collections.Counter(mec.pull("task")) == {"1": 2, "2": 1}
        relays = mec.pull("relay")
        pids = [*mec.apply(os.getpid), *set(relays)]
    assert len(set(relays)) == 2  # one relay per array task, its engines behind it
    stopped = pxcluster("stop", "--profile-dir", str(profile))
    assert stopped.returncode == 0, stopped.stderr
    assert job not in _qstat_jobs()
    assert leftover_processes(pids) == []


def test_held_engines_are_reported_held(profile: Path) -> None:
    (profile / "pxcluster.toml").write_text('[sge]\ndirectives = ["-h"]\n')
    done = pxcluster(
        "start", "-n", "2", "--engines", "sge", "--timeout", "6", "--profile-dir", str(profile)
    )
    assert done.returncode == 1
    assert "only 0 of 2 engines registered within 6.0 s" in done.stderr, done.stderr
    assert "pending (held (hqw))" in done.stderr


def test_an_unknown_resource_is_refused_by_qsub(profile: Path) -> None:
    (profile / "pxcluster.toml").write_text('[sge]\ndirectives = ["-l h_rtt=1"]\n')
    done = pxcluster("start", "-n", "2", "--engines", "sge", "--profile-dir", str(profile))
    assert done.returncode == 1
    assert "refused the job" in done.stderr
    assert 'unknown resource "h_rtt"' in done.stderr


def test_a_job_without_pxcluster_fails_start_with_its_output(profile: Path) -> None:
    (profile / "pxcluster.toml").write_text('[sge]\npython = "/usr/bin/python3"\n')
    done = pxcluster(
        "start", "-n", "2", "--engines", "sge", "--timeout", "60", "--profile-dir", str(profile)
    )
    assert done.returncode == 1
    assert "before it was ready" in done.stderr, done.stderr
    assert "No module named" in done.stderr  # the job's own output lines
    assert ".out" in done.stderr
