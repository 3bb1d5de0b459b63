"""The engine keeper (``--restart``) of clusters started in the background or from Python:
real engines SIGKILLed, a real controller killed and taken over, nothing left afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from pxcluster import Cluster, CompositeError, MultiEngineClient, PxclusterTimeoutError
from pxcluster._errors import ConnectionLost, NoClusterRunning
from pxcluster.launchers import ClusterRecord
from pxcluster.profile import LauncherConfig
from pxcluster.testing import leftover_processes, wait_for

pytestmark = pytest.mark.timeout(150)

#: Engines declared dead within a second of their end, so relaunches come quickly.
FAST_HEARTBEAT = "[controller]\nheartbeat_period = 0.25\nheartbeat_timeout = 1.0\n"


def pxcluster(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pxcluster.cli.cluster", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def keeper_status(profile: Path) -> dict[str, object]:
    try:
        data: dict[str, object] = json.loads((profile / "pid" / "keeper.json").read_text())
    except (OSError, ValueError):
        return {}
    return data


def engine_handles(profile: Path) -> list[int]:
    record = ClusterRecord.read(profile / "pid" / "cluster.json")
    return [h.pid for h in record.engines] if record else []


def own_processes(profile: Path) -> list[int]:
    """Every process that names the profile folder on its command line (the controller,
    engines, the keeper) or is an engine of its record."""
    found = set(engine_handles(profile))
    for proc in psutil.process_iter(["cmdline"]):
        if str(profile) in " ".join(proc.info["cmdline"] or []):
            found.add(proc.pid)
    found.add(int(str(keeper_status(profile).get("pid", 0))))
    return [p for p in found if p and p != os.getpid()]


@pytest.fixture
def profile(tmp_path: Path) -> Iterator[Path]:
    """A profile with a fast heartbeat whose cluster is stopped after the test, and
    whatever of it still runs then is killed (and reported)."""
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "pxcluster.toml").write_text(FAST_HEARTBEAT)
    seen: list[int] = []
    yield folder
    seen = own_processes(folder)
    pxcluster("stop", "--profile-dir", str(folder), timeout=60)
    left = leftover_processes(seen)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"still running after pxcluster stop: {left}"


def pid_of(mec: MultiEngineClient, engine: int) -> int:
    return int(mec[engine].execute("import os; os.getpid()", timeout=10)[0]["display"])


def ids_become(mec: MultiEngineClient, wanted: list[int], timeout: float = 30) -> None:
    seen: list[list[int]] = []

    def now() -> bool:
        try:
            seen.append(mec.get_ids(timeout=2))
        except (ConnectionLost, PxclusterTimeoutError):
            return False  # a controller taking over: not reconnected yet
        return seen[-1] == wanted

    try:
        wait_for(now, timeout=timeout, interval=0.1, message=f"engines {wanted}")
    except TimeoutError:
        raise AssertionError(f"wanted engines {wanted}; last seen {seen[-3:]}") from None


def connected(profile: Path) -> MultiEngineClient | None:
    """A client of the profile's controller, None while none runs (one taking over)."""
    try:
        return MultiEngineClient(profile_dir=profile, timeout=5)
    except (NoClusterRunning, ConnectionLost, PxclusterTimeoutError):
        return None


def test_background_start_relaunches_dead_engines_but_not_ones_removed_on_purpose(
    profile: Path,
) -> None:
    started = pxcluster("start", "-n", "3", "--restart", "2", "--profile-dir", str(profile))
    assert started.returncode == 0, started.stderr
    listing = pxcluster("list")
    assert "keeper pid" in listing.stdout
    assert "0 of 2 restarts used" in listing.stdout
    with MultiEngineClient(profile_dir=profile, timeout=30) as mec:
        assert mec.get_ids() == [0, 1, 2]
        os.kill(pid_of(mec, 1), signal.SIGKILL)  # a crash: relaunched under a new id
        ids_become(mec, [0, 2, 3])
        assert mec[3].execute("1 + 1", timeout=10)[0]["display"] == "2"

        mec.kill(targets=0, block=True, timeout=10)  # removed on purpose: stays removed
        wait_for(
            lambda: len(engine_handles(profile)) == 2,
            timeout=30,
            message="the keeper forgets the killed engine",
        )
        signalled = pxcluster("signal", "2", "TERM", "--profile-dir", str(profile))
        assert signalled.returncode == 0, signalled.stderr
        wait_for(
            lambda: len(engine_handles(profile)) == 1,
            timeout=30,
            message="the keeper forgets the signalled engine",
        )
        assert keeper_status(profile)["restarts"] == 1
        assert mec.get_ids() == [3]

        os.kill(pid_of(mec, 3), signal.SIGKILL)  # the second and last restart
        ids_become(mec, [4])
        os.kill(pid_of(mec, 4), signal.SIGKILL)  # budget spent: not relaunched
        wait_for(
            lambda: keeper_status(profile).get("given_up") == 1,
            timeout=30,
            message="the keeper gives up on the third death",
        )
        assert mec.get_ids() == []
    listing = pxcluster("list")
    assert "2 of 2 restarts used; 1 not relaunched" in listing.stdout, listing.stdout
    keeper = int(str(keeper_status(profile)["pid"]))
    stopped = pxcluster("stop", "--profile-dir", str(profile))
    assert stopped.returncode == 0, stopped.stderr
    assert not leftover_processes([keeper])
    assert not (profile / "pid" / "keeper.json").exists()


SCRIPT = """
from pxcluster import Cluster
cluster = Cluster(2, profile_dir={profile!r}, restart=1).start()
print(cluster.keeper.pid, flush=True)
# and leave: the cluster keeps running, its keeper with it
"""


def test_a_cluster_left_by_its_script_is_kept_across_a_controller_takeover(
    profile: Path,
) -> None:
    script = textwrap.dedent(SCRIPT).format(profile=str(profile))
    ran = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=90, check=False
    )
    assert ran.returncode == 0, ran.stderr
    keeper = int(ran.stdout.split()[0])
    assert psutil.pid_exists(keeper)
    with MultiEngineClient(profile_dir=profile, timeout=30) as mec:
        assert mec.get_ids() == [0, 1]
        survivor, victim = pid_of(mec, 0), pid_of(mec, 1)
    record = ClusterRecord.read(profile / "pid" / "cluster.json")
    assert record is not None
    os.kill(record.controller.pid, signal.SIGKILL)  # the controller crashes...
    os.kill(victim, signal.SIGKILL)  # ...and an engine dies while it is away
    wait_for(lambda: not leftover_processes([victim]), timeout=10, message="the engine gone")
    takeover = subprocess.Popen(
        [sys.executable, "-m", "pxcluster.cli.controller", "--profile-dir", str(profile)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with wait_for(lambda: connected(profile), timeout=30, message="the new controller") as mec:
            # engine 0 comes back with its id, and engine 1 is relaunched. (Its id: a
            # controller that took over has not seen id 1, so it may give it again.)
            wait_for(
                lambda: keeper_status(profile).get("restarts") == 1,
                timeout=30,
                message="the dead engine relaunched once the controller is back",
            )
            wait_for(lambda: len(mec.get_ids()) == 2, timeout=30, message="two engines")
            first, second = mec.get_ids()
            assert first == 0
            assert pid_of(mec, 0) == survivor  # the same process, its namespace kept
            assert pid_of(mec, second) in engine_handles(profile)  # the relaunched one
            assert victim not in engine_handles(profile)
            assert psutil.pid_exists(keeper)
    finally:
        stopped = pxcluster("stop", "--profile-dir", str(profile))
        if takeover.poll() is None and stopped.returncode != 0:
            takeover.terminate()
        takeover.wait(timeout=30)
    assert stopped.returncode == 0, stopped.stderr
    assert not leftover_processes([keeper])


def _slurm_queue() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True)
    return out.stdout.split()


@pytest.mark.slurm
def test_a_slurm_engine_that_crashes_is_resubmitted_and_stop_cancels_all(
    slurm: object, profile: Path
) -> None:
    started = pxcluster(
        "start", "-n", "2", "--engines", "slurm", "--restart", "1", "--profile-dir", str(profile)
    )
    assert started.returncode == 0, started.stderr
    record = ClusterRecord.read(profile / "pid" / "cluster.json")
    assert record is not None
    (first_job,) = {h.job_id for h in record.engines}
    with MultiEngineClient(profile_dir=profile, timeout=30) as mec:
        mec[1].execute("import os; os._exit(3)", block=False)  # engine 1 crashes
        ids_become(mec, [0, 2], timeout=60)  # a new array job, a new id
    record = ClusterRecord.read(profile / "pid" / "cluster.json")
    assert record is not None
    jobs = {h.job_id for h in record.engines}
    assert len(jobs) == 2, record.engines
    assert first_job in jobs
    assert keeper_status(profile)["restarts"] == 1
    stopped = pxcluster("stop", "--profile-dir", str(profile))
    assert stopped.returncode == 0, stopped.stderr
    wait_for(
        lambda: not [j for j in _slurm_queue() if j.split("_")[0] in jobs],
        timeout=30,
        message="every job of the cluster cancelled",
    )


def test_mpi_ranks_that_die_are_relaunched_together_as_a_new_mpi_world(
    openmpi: Any, no_mpi_left: None, profile: Path
) -> None:
    options = {"mpi": LauncherConfig(extra={"mpiexec": str(openmpi.mpiexec)})}
    cluster = Cluster(2, profile_dir=profile, engines="mpi", options=options, restart=2, timeout=60)
    with cluster:
        mec = cluster.client(timeout=60)
        (job,) = {h.job_id for h in cluster.engine_handles}
        os.kill(pid_of(mec, 1), signal.SIGKILL)  # Open MPI then ends the whole job
        ids_become(mec, [2, 3], timeout=60)
        (new_job,) = {h.job_id for h in cluster.engine_handles}
        assert new_job != job  # one new mpiexec for both ranks
        mec.execute("from mpi4py import MPI; total = MPI.COMM_WORLD.allreduce(1)", timeout=60)
        assert mec.pull("total", timeout=60) == [2, 2]  # one world of two ranks
        assert cluster.keeper is not None
        assert cluster.keeper.restarts == 2


STUCK = (
    "import ctypes, pathlib\n"
    "pathlib.Path('/tmp/pxkeeper-stuck').touch()\n"
    "ctypes.PyDLL(None).sleep(120)\n"  # PyDLL holds the GIL through the C call
)


@pytest.mark.timeout(240)
def test_an_ssh_engine_stuck_in_c_code_is_interrupted_and_killed_through_its_launcher(
    tmp_path: Path, netns_host: Any, sshd_host: Any
) -> None:
    """The controller cannot signal an engine on another host (no relay): the cluster's
    keeper does it through the ssh launcher, so interrupt and kill still work."""
    ssh = LauncherConfig(extra={"hosts": sshd_host.destination, "ssh_args": sshd_host.ssh_args})
    beat = ["--heartbeat-period", "0.5", "--heartbeat-timeout", "20"]  # not declared dead
    cluster = Cluster(
        1,
        profile_dir=tmp_path / "p",
        controller_args=["--ip", "0.0.0.0", "--location", netns_host.peer, *beat],
        engines="ssh",
        options={"ssh": ssh},
        timeout=90,
    )

    def stuck() -> bool:
        return netns_host.run(["test", "-e", "/tmp/pxkeeper-stuck"]).returncode == 0

    try:
        cluster.start()
        assert cluster.keeper is not None  # engines elsewhere: a keeper, without --restart
        mec = cluster.client(timeout=30)
        running = mec[0].execute(STUCK, block=False)
        wait_for(stuck, timeout=30, message="the C call to start on the ssh host")
        mec.interrupt(targets=0, timeout=15)
        with pytest.raises(CompositeError) as failed:
            running.get_result(timeout=15)
        assert failed.value.elist[0].ename == "KeyboardInterrupt"
        assert mec[0].execute("1 + 1", timeout=15)[0]["display"] == "2"  # it lives on

        netns_host.run(["rm", "-f", "/tmp/pxkeeper-stuck"])
        mec[0].execute(STUCK, block=False)
        wait_for(stuck, timeout=30, message="the C call to start again")
        mec.kill(targets=0, block=True, timeout=15)  # succeeds: the launcher killed it
        assert mec.get_ids() == []
        wait_for(
            lambda: not netns_host.pxcluster_processes(),
            timeout=15,
            message="no engine left on the ssh host",
        )
        log = (cluster.paths.log / "keeper.log").read_text()
        assert "sent SIGUSR1 through its launcher" in log
        assert "sent SIGKILL through its launcher" in log
    finally:
        cluster.stop()
        netns_host.run(["rm", "-f", "/tmp/pxkeeper-stuck"])
    assert netns_host.pxcluster_processes() == []


@pytest.mark.timeout(240)
def test_an_ssh_engine_that_crashes_is_relaunched_on_its_host(
    tmp_path: Path, netns_host: Any, sshd_host: Any
) -> None:
    ssh = LauncherConfig(extra={"hosts": sshd_host.destination, "ssh_args": sshd_host.ssh_args})
    cluster = Cluster(
        1,
        profile_dir=tmp_path / "p",
        controller_args=["--ip", "0.0.0.0", "--location", netns_host.peer],
        engines="ssh",
        options={"ssh": ssh},
        timeout=90,
        restart=1,
    )
    try:
        cluster.start()
        mec = cluster.client(timeout=30)
        mec[0].execute("import os; os._exit(3)", block=False)  # it crashes
        ids_become(mec, [1], timeout=60)
        mec[1].execute("import socket; name = socket.gethostname()", timeout=30)
        assert mec[1].pull("name", timeout=30) == netns_host.hostname
        assert [h.host for h in cluster.engine_handles] == [netns_host.hostname]
    finally:
        cluster.stop()
    assert netns_host.pxcluster_processes() == []


def test_stop_ends_the_keeper_and_the_engines_after_the_controller_was_killed(
    profile: Path,
) -> None:
    started = pxcluster("start", "-n", "2", "--restart", "1", "--profile-dir", str(profile))
    assert started.returncode == 0, started.stderr
    everything = own_processes(profile)  # controller, two engines, the keeper
    assert len(everything) == 4, everything
    record = ClusterRecord.read(profile / "pid" / "cluster.json")
    assert record is not None
    os.kill(record.controller.pid, signal.SIGKILL)
    stopped = pxcluster("stop", "--profile-dir", str(profile))
    assert stopped.returncode == 0, stopped.stderr
    assert not leftover_processes(everything)


def _sge_jobs() -> list[str]:
    done = subprocess.run(["qstat", "-u", "*"], capture_output=True, text=True, check=False)
    return [line.split()[0] for line in done.stdout.splitlines()[2:] if line.strip()]


@pytest.mark.sge
def test_an_sge_engine_that_crashes_is_resubmitted_and_stop_deletes_all(
    sge: object, profile: Path
) -> None:
    started = pxcluster(
        "start", "-n", "2", "--engines", "sge", "--restart", "1", "--timeout", "90",
        "--profile-dir", str(profile),
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    with MultiEngineClient(profile_dir=profile, timeout=30) as mec:
        mec[1].execute("import os; os._exit(3)", block=False)  # engine 1 crashes
        ids_become(mec, [0, 2], timeout=90)  # a new array job, a new id
    record = ClusterRecord.read(profile / "pid" / "cluster.json")
    assert record is not None
    jobs = {h.job_id for h in record.engines}
    assert len(jobs) == 2, record.engines
    stopped = pxcluster("stop", "--profile-dir", str(profile))
    assert stopped.returncode == 0, stopped.stderr
    wait_for(
        lambda: not [j for j in _sge_jobs() if j in jobs],
        timeout=30,
        message="every job of the cluster deleted",
    )
