"""Engines and a controller as PBS jobs, through Slurm's Torque-syntax qsub/qstat/qdel
wrappers (Debian has no PBS server; tests/services/install.sh unpacks the wrappers into
/opt/pxcluster-test/pbs/usr/bin, beside SGE's own qsub)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pxcluster import MultiEngineClient
from pxcluster.launchers import ClusterRecord

pytestmark = [pytest.mark.pbs, pytest.mark.timeout(120)]

WRAPPERS = Path(os.environ.get("PXTEST_SERVICES_PREFIX", "/opt/pxcluster-test")) / "pbs/usr/bin"


@pytest.fixture
def pbs_env(slurm: object) -> dict[str, str]:
    """The environment of a user whose qsub is the Torque-syntax one."""
    if not (WRAPPERS / "qsub").exists():
        pytest.fail(f"no PBS qsub at {WRAPPERS}: run tests/services/install.sh", pytrace=False)
    return {**os.environ, "PATH": f"{WRAPPERS}:{os.environ['PATH']}"}


def pxcluster(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pxcluster.cli.cluster", *args],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        check=False,
    )


@pytest.fixture
def profile(pbs_env: dict[str, str]) -> Iterator[Path]:
    folder = Path(os.environ["PXCLUSTER_DIR"]) / "profile_pbs"
    folder.mkdir(parents=True)
    yield folder
    pxcluster(pbs_env, "stop", "--profile-dir", str(folder))


def _slurm_queue() -> list[str]:
    done = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True)
    return done.stdout.split()


def test_engines_and_controller_as_pbs_jobs(profile: Path, pbs_env: dict[str, str]) -> None:
    done = pxcluster(
        pbs_env,
        "start",
        "-n",
        "3",
        "--engines",
        "pbs",
        "--controller",
        "pbs",
        "--walltime",
        "10",
        "--profile-dir",
        str(profile),
    )
    assert done.returncode == 0, done.stderr
    assert "3 engines [0, 1, 2]" in done.stdout
    record = ClusterRecord.read(profile / "pid" / "cluster.json")
    assert record is not None
    assert record.controller.launcher == "pbs"
    assert record.controller.job_id
    assert {h.job_id for h in record.engines} != {""}
    script = Path(record.engines[0].extra["script"]).read_text()
    assert "#PBS -t 0-2" in script
    assert "#PBS -l walltime=0:10:00" in script

    with MultiEngineClient(profile_dir=profile, timeout=30) as mec:
        assert mec.map(lambda x: x + 1, range(6)) == list(range(1, 7))
        mec.execute("import os; end = float(os.environ['PXCLUSTER_END_TIME'])")
        assert all(end > 0 for end in mec.pull("end"))

    listing = pxcluster(pbs_env, "list")
    assert f"pbs job {record.engines[0].job_id}: 3 running" in listing.stdout, listing.stdout
    stopped = pxcluster(pbs_env, "stop", "--profile-dir", str(profile))
    assert stopped.returncode == 0, stopped.stderr
    jobs = {record.controller.job_id, *(h.job_id for h in record.engines)}
    assert not [j for j in _slurm_queue() if j.split("_")[0] in jobs]
