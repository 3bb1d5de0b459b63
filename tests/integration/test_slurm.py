"""Engines and controllers as Slurm jobs, against a real single-node Slurm
(tests/services/slurm.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pxcluster import MultiEngineClient
from pxcluster.launchers import ClusterRecord

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(120)]


def pxcluster(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run the ``pxcluster`` command as a user would (SLURM_CONF comes from the fixture)."""
    return subprocess.run(
        [sys.executable, "-m", "pxcluster.cli.cluster", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
        check=False,
    )


@pytest.fixture
def profile(slurm: object) -> Iterator[Path]:
    """A profile folder (under PXCLUSTER_DIR, so `pxcluster list` sees it) whose cluster is
    stopped, and its jobs checked gone, after the test."""
    folder = Path(os.environ["PXCLUSTER_DIR"]) / "profile_slurm"
    folder.mkdir(parents=True)
    yield folder
    record = ClusterRecord.read(folder / "pid" / "cluster.json")
    pxcluster("stop", "--profile-dir", str(folder), timeout=60)
    if record is not None:
        jobs = {h.job_id for h in [record.controller, *record.engines] if h.job_id}
        left = [j for j in _queue() if j.split("_")[0] in jobs]
        assert not left, f"jobs still queued after stop: {left}"


def _queue() -> list[str]:
    out = subprocess.run(
        ["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def _config(profile: Path, text: str) -> None:
    (profile / "pxcluster.toml").write_text(text)


def test_engines_run_as_one_job_array_and_stop_cancels_it(profile: Path) -> None:
    done = pxcluster("start", "-n", "4", "--engines", "slurm", "--profile-dir", str(profile))
    assert done.returncode == 0, done.stderr
    assert "4 engines [0, 1, 2, 3]" in done.stdout
    record = ClusterRecord.read(profile / "pid" / "cluster.json")
    assert record is not None
    jobs = {h.job_id for h in record.engines}
    assert len(jobs) == 1, record.engines
    (job,) = jobs
    assert sorted(_queue()) == [f"{job}_{i}" for i in range(4)]

    with MultiEngineClient(profile_dir=profile, timeout=30) as mec:
        assert mec.map(lambda x: x * x, range(8)) == [x * x for x in range(8)]
        indices = mec.execute("import os; i = os.environ['SLURM_ARRAY_TASK_ID']")
        assert sorted(mec.pull("i")) == ["0", "1", "2", "3"], indices

    listing = pxcluster("list")
    assert f"slurm job {job}: 4 running" in listing.stdout, listing.stdout
    logs = pxcluster("logs", "2", "--profile-dir", str(profile))
    assert logs.returncode == 0, logs.stderr
    assert f"slurm job {job}[" in logs.stdout
    assert ".out <==" in logs.stdout

    stopped = pxcluster("stop", "--profile-dir", str(profile))
    assert stopped.returncode == 0, stopped.stderr
    assert not [j for j in _queue() if j.startswith(f"{job}_")]


def test_relay_runs_one_relay_per_array_task_with_its_engines_behind_it(profile: Path) -> None:
    import collections

    import psutil

    from pxcluster.testing import leftover_processes

    done = pxcluster(
        "start", "-n", "5", "--engines", "slurm", "--relay", "--engines-per-job", "2",
        "--profile-dir", str(profile),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "5 engines [0, 1, 2, 3, 4]" in done.stdout
    record = ClusterRecord.read(profile / "pid" / "cluster.json")
    assert record is not None
    (job,) = {h.job_id for h in record.engines}
    assert sorted(_queue()) == [f"{job}_{i}" for i in range(3)]  # 2 + 2 + 1

    with MultiEngineClient(profile_dir=profile, timeout=30) as mec:
        mec.execute(
            "import os; task = os.environ['SLURM_ARRAY_TASK_ID']; "
            "cpus = os.environ['SLURM_CPUS_PER_TASK']; relay = os.getppid()"
        )
        tasks, relays = mec.pull("task"), mec.pull("relay")
        assert collections.Counter(tasks) == {"0": 2, "1": 2, "2": 1}
        assert set(mec.pull("cpus")) == {"2"}  # each task asked for its engines' cores
        pids = [*mec.apply(os.getpid), *set(relays)]
        assert mec.map(lambda x: x * x, range(10)) == [x * x for x in range(10)]
    assert len(set(relays)) == 3  # one relay per array task, its engines its children
    for relay in set(relays):
        assert "pxcluster.cli.relay" in " ".join(psutil.Process(relay).cmdline())
    # an array task is a relay and its engines: ending it for one engine would end them all
    for refused in (["restart", "0"], ["signal", "0", "TERM"]):
        done = pxcluster(*refused, "--profile-dir", str(profile))
        assert done.returncode == 1, done.stdout
        assert "runs behind a relay with the other engines of slurm job" in done.stderr
    with MultiEngineClient(profile_dir=profile, timeout=30) as mec:
        assert mec.get_ids() == [0, 1, 2, 3, 4]
        mec.kill(targets=0, block=True, timeout=30)  # what to do instead: its relay ends it
        assert mec.get_ids() == [1, 2, 3, 4]

    stopped = pxcluster("stop", "--profile-dir", str(profile))
    assert stopped.returncode == 0, stopped.stderr
    assert not [j for j in _queue() if j.startswith(f"{job}_")]
    assert leftover_processes(pids) == []


def test_a_refused_directive_fails_at_once_naming_sbatch(profile: Path) -> None:
    _config(profile, '[slurm]\ndirectives = ["--partitoin=debug"]\n')
    done = pxcluster("start", "-n", "2", "--engines", "slurm", "--profile-dir", str(profile))
    assert done.returncode == 1
    assert "sbatch" in done.stderr, done.stderr
    assert "refused the job" in done.stderr
    assert "partitoin" in done.stderr


@pytest.mark.parametrize(
    ("python", "code", "said"),
    [
        ("/nonexistent/bin/python3", "127", "/nonexistent/bin/python3"),  # no such Python
        ("/usr/bin/python3", "1", "No module named"),  # a Python without pxcluster
    ],
)
def test_a_job_that_fails_at_once_fails_start_with_its_output(
    profile: Path, python: str, code: str, said: str
) -> None:
    _config(profile, f'[slurm]\npython = "{python}"\n')
    done = pxcluster(
        "start", "-n", "2", "--engines", "slurm", "--timeout", "60", "--profile-dir", str(profile)
    )
    assert done.returncode == 1
    assert "FAILED" in done.stderr, done.stderr
    assert f"exit code {code}:0" in done.stderr
    assert said in done.stderr  # the job's own output lines
    assert ".out" in done.stderr  # the output file is named


def test_a_held_job_says_held_and_start_gives_up_naming_it(profile: Path) -> None:
    _config(profile, '[slurm]\ndirectives = ["--hold"]\n')
    done = pxcluster(
        "start", "-n", "2", "--engines", "slurm", "--timeout", "5", "--profile-dir", str(profile)
    )
    assert done.returncode == 1
    assert "only 0 of 2 engines registered within 5.0 s" in done.stderr, done.stderr
    assert "pending (held: JobHeldUser)" in done.stderr
    assert "output:" in done.stderr
    assert ".out" in done.stderr


def test_controller_as_a_job_and_engines_added_later_are_one_cluster(profile: Path) -> None:
    done = pxcluster(
        "start",
        "-n",
        "2",
        "--engines",
        "slurm",
        "--controller",
        "slurm",
        "--profile-dir",
        str(profile),
    )
    assert done.returncode == 0, done.stderr
    added = pxcluster("add", "-n", "2", "--engines", "slurm", "--profile-dir", str(profile))
    assert added.returncode == 0, added.stderr
    assert "engines now [0, 1, 2, 3]" in added.stdout
    record = ClusterRecord.read(profile / "pid" / "cluster.json")
    assert record is not None
    assert record.controller.launcher == "slurm"
    jobs = {record.controller.job_id, *(h.job_id for h in record.engines)}
    assert len(jobs) == 3  # the controller's job, the first array, the added array

    with MultiEngineClient(profile_dir=profile, timeout=30) as mec:
        assert mec.apply(lambda: 1) == [1, 1, 1, 1]

    stopped = pxcluster("stop", "--profile-dir", str(profile))
    assert stopped.returncode == 0, stopped.stderr
    assert not [j for j in _queue() if j.split("_")[0] in jobs]


def test_one_engine_is_replaced_through_its_array_task(profile: Path) -> None:
    done = pxcluster("start", "-n", "2", "--engines", "slurm", "--profile-dir", str(profile))
    assert done.returncode == 0, done.stderr
    record = ClusterRecord.read(profile / "pid" / "cluster.json")
    assert record is not None
    (job,) = {h.job_id for h in record.engines}
    with MultiEngineClient(profile_dir=profile, timeout=30) as mec:
        mec.execute("import os; task = os.environ['SLURM_ARRAY_TASK_ID']")
        tasks = dict(zip(mec.get_ids(), mec.pull("task"), strict=True))
    restarted = pxcluster("restart", "1", "--profile-dir", str(profile))
    assert restarted.returncode == 0, restarted.stderr
    assert "engine 1 replaced; engines now [0, 2]" in restarted.stdout, (
        profile / "log" / "controller.log"
    ).read_text()
    # engine 1's array task is gone; a further job runs its replacement
    assert f"{job}_{tasks[1]}" not in _queue()
    assert f"{job}_{tasks[0]}" in _queue()
    record = ClusterRecord.read(profile / "pid" / "cluster.json")
    assert record is not None
    assert len({h.job_id for h in record.engines}) == 2


def test_engines_near_their_walltime_get_no_tasks(profile: Path) -> None:
    # a 1-minute job and a 5-minute margin: its engine is retired as soon as it registers
    _config(profile, "[controller]\nwalltime_margin = 300.0\n")
    done = pxcluster("start", "-n", "1", "--profile-dir", str(profile))
    assert done.returncode == 0, done.stderr
    added = pxcluster(
        "add", "-n", "1", "--engines", "slurm", "--walltime", "1", "--profile-dir", str(profile)
    )
    assert added.returncode == 0, added.stderr
    with MultiEngineClient(profile_dir=profile, timeout=30) as mec:
        mec.execute("import os; end = float(os.environ.get('PXCLUSTER_END_TIME', 0))")
        ends = dict(zip(mec.get_ids(), mec.pull("end"), strict=True))
    assert ends[0] == 0.0
    assert ends[1] > 0
    from pxcluster import MapTask, TaskClient

    with TaskClient(profile_dir=profile, timeout=30) as tc:
        ids = [tc.run(MapTask(abs, args=(-i,))) for i in range(8)]
        tc.barrier(ids, timeout=30)
        results = [tc.get_task_result(i, block=True, timeout=30) for i in ids]
    assert [r.result for r in results] == list(range(8))
    assert {r.engineid for r in results} == {0}
    log = (profile / "log" / "controller.log").read_text()
    assert "engine 1 takes no new tasks: its job's walltime ends in" in log


def test_a_held_job_shows_held_in_list_and_registers_once_released_without_the_file(
    profile: Path,
) -> None:
    done = pxcluster("start", "-n", "1", "--profile-dir", str(profile))
    assert done.returncode == 0, done.stderr
    _config(profile, '[slurm]\ndirectives = ["--hold"]\n')
    add = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pxcluster.cli.cluster",
            "add",
            "-n",
            "2",
            "--engines",
            "slurm",
            "--timeout",
            "60",
            "--profile-dir",
            str(profile),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with MultiEngineClient(profile_dir=profile, timeout=30) as mec:
            # the add's job is in the record once submitted; until released it is held
            record = None
            while record is None or not any(h.job_id for h in record.engines):
                assert add.poll() is None, add.communicate()
                record = ClusterRecord.read(profile / "pid" / "cluster.json")
                mec.queue_status()  # a round trip instead of a sleep between looks
            (job,) = {h.job_id for h in record.engines if h.job_id}
            listing = pxcluster("list").stdout
            assert f"slurm job {job}: 2 pending (held: JobHeldUser)" in listing, listing
            # the engines must not need the profile's connection file: take it away
            engine_file = profile / "security" / "engine.json"
            hidden = engine_file.rename(profile / "engine.json.hidden")
            subprocess.run(["scontrol", "release", job], check=True)
            out, err = add.communicate(timeout=60)
            hidden.rename(engine_file)
        assert add.returncode == 0, err
        assert "engines now [0, 1, 2]" in out
        assert "held" in err  # the add said so while it waited
    finally:
        if add.poll() is None:
            add.kill()
            add.communicate()


def test_stop_cleans_up_after_a_start_killed_with_sigkill(profile: Path) -> None:
    _config(profile, '[slurm]\ndirectives = ["--hold"]\n')  # engines that never come
    start = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pxcluster.cli.cluster",
            "start",
            "-n",
            "2",
            "--engines",
            "slurm",
            "--controller",
            "slurm",
            "--timeout",
            "60",
            "--profile-dir",
            str(profile),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # wait until the controller job is recorded (held too: a job that never runs)
        record = None
        while record is None:
            assert start.poll() is None
            record = ClusterRecord.read(profile / "pid" / "cluster.json")
            subprocess.run(["squeue", "-h"], capture_output=True, check=True)  # paces the loop
    finally:
        start.kill()
        start.wait()
    jobs = {record.controller.job_id}
    assert [j for j in _queue() if j.split("_")[0] in jobs]
    # without scancel the stop fails, says so, and keeps the record for the next try
    cannot = subprocess.run(
        [sys.executable, "-m", "pxcluster.cli.cluster", "stop", "--profile-dir", str(profile)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": str(Path(sys.executable).parent)},
        check=False,
    )
    assert cannot.returncode == 1
    assert "'scancel' was not found on PATH" in cannot.stderr, cannot.stderr
    assert (profile / "pid" / "cluster.json").exists()
    stopped = pxcluster("stop", "--profile-dir", str(profile))
    assert stopped.returncode == 0, stopped.stderr
    assert not [j for j in _queue() if j.split("_")[0] in jobs]


def test_restart_replaces_engines_before_their_walltime_ends(profile: Path) -> None:
    # 40 s jobs, 10 s margin: a replacement is submitted 20 s before each job ends
    _config(profile, "[controller]\nwalltime_margin = 10.0\n")
    foreground = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pxcluster.cli.cluster",
            "-n",
            "1",
            "--engines",
            "slurm",
            "--walltime",
            "0:40",
            "--restart",
            "1",
            "--profile-dir",
            str(profile),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert foreground.stdout is not None
        for line in foreground.stdout:  # until the cluster says it is ready
            if "ready in" in line:
                break
        with MultiEngineClient(profile_dir=profile, timeout=60) as mec:
            assert mec.wait_for_engines(2, timeout=60) == [0, 1]
        record = ClusterRecord.read(profile / "pid" / "cluster.json")
        assert record is not None
        jobs = {h.job_id for h in record.engines}
        assert len(jobs) == 2  # the first array and its replacement
    finally:
        foreground.terminate()
        out, err = foreground.communicate(timeout=60)
    assert "pxcluster: stopping" in out, err
    assert not [j for j in _queue() if j.split("_")[0] in jobs]
