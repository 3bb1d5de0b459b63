"""A real single-node Slurm (munged + slurmctld + slurmd) for the tests that ask for it.

A pytest plugin (registered in tests/conftest.py). The ``slurm`` fixture is session-scoped
and started only when a test asks for it: a private munged on its own socket, and Slurm
daemons on free ports with their state, spool and logs in a temporary folder, configured
through ``SLURM_CONF`` (nothing under /etc is touched, so another test session's Slurm can
run beside this one). The node declares 32 CPUs (``SlurmdParameters=config_overrides``) so a
job array's tasks all run at once on a 2-core machine. Everything is stopped at the end of the
session, also after failures. Installing the programs is tests/services/install.sh's job;
a machine without them fails these tests with a message saying so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pxcluster.testing import wait_for

INSTALL_HINT = "run tests/services/install.sh (as root) to install Slurm and munge"


@dataclasses.dataclass(frozen=True)
class SlurmService:
    """The running test Slurm: its config file (``SLURM_CONF``) and folders."""

    conf: Path
    root: Path

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *argv: str, check: bool = True) -> str:
        """Run a Slurm command against this Slurm; its stdout."""
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=30, env={**os.environ, **self.env}
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed: {done.stderr}")
        return done.stdout

    def queue(self) -> list[str]:
        """The jobs ``squeue`` lists (id and state), e.g. ['12_0 RUNNING']."""
        return self.run("squeue", "-h", "-r", "-o", "%i %T").split()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _require(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None and not Path(p).exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: {INSTALL_HINT}", pytrace=False)


def _wait(what: str, check: Callable[[], object], timeout: float, log: Path | None = None) -> None:
    try:
        wait_for(check, timeout, interval=0.1, message=what)
    except TimeoutError:
        tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
        raise RuntimeError(f"{what} did not come up within {timeout} s\n{tail}") from None


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _stop_pidfile(pidfile: Path, timeout: float = 10.0) -> None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        return
    with contextlib.suppress(TimeoutError):
        wait_for(lambda: _gone(pid), timeout, interval=0.1, message=f"pid {pid} to exit")
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 9)


def _start_munge(root: Path) -> subprocess.Popen[bytes]:
    folder = root / "munge"
    folder.mkdir(mode=0o711)
    shutil.copy("/etc/munge/munge.key", folder / "key")
    shutil.chown(folder, "munge", "munge")
    shutil.chown(folder / "key", "munge", "munge")
    os.chmod(folder / "key", 0o400)
    proc = subprocess.Popen(
        [
            "runuser",
            "-u",
            "munge",
            "--",
            "/usr/sbin/munged",
            "-F",
            "--force",
            f"--socket={folder / 'sock'}",
            f"--key-file={folder / 'key'}",
            f"--pid-file={folder / 'pid'}",
            f"--log-file={folder / 'log'}",
            f"--seed-file={folder / 'seed'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait("munged", lambda: (folder / "sock").exists(), 10)
    return proc


CONF = """\
ClusterName=px
SlurmctldHost=localhost
SlurmUser=root
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
AuthInfo=socket={munge}
CredType=cred/munge
StateSaveLocation={root}/ctld
SlurmdSpoolDir={root}/d
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=120
KillWait=2
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs=32 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
"""


@pytest.fixture(scope="session")
def slurm() -> Iterator[SlurmService]:
    """A running single-node Slurm; ``SLURM_CONF`` points at it for this whole session."""
    with running_slurm() as service:
        yield service


@contextlib.contextmanager
def running_slurm() -> Iterator[SlurmService]:
    """Start munged, slurmctld and slurmd; stop them on exit (also used by benchmarks/)."""
    _require("/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd", "sbatch")
    root = Path(tempfile.mkdtemp(prefix="pxtest-slurm-"))
    os.chmod(root, 0o755)
    state = root / "slurm"
    for sub in ("ctld", "d", "log"):
        (state / sub).mkdir(parents=True)
    munge = _start_munge(root)
    conf = state / "slurm.conf"
    conf.write_text(
        CONF.format(
            ctld_port=_free_port(),
            d_port=_free_port(),
            munge=root / "munge" / "sock",
            root=state,
        )
    )
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)
    service = SlurmService(conf, root)
    try:
        subprocess.run(["/usr/sbin/slurmctld", "-i", "-f", str(conf)], check=True, timeout=30)
        subprocess.run(
            ["/usr/sbin/slurmd", "-N", "localhost", "-f", str(conf)], check=True, timeout=30
        )

        def idle() -> bool:
            out = service.run("sinfo", "-h", "-o", "%t", check=False)
            return out.strip() in ("idle", "mix", "alloc")

        _wait("slurmd (node idle in sinfo)", idle, 30, state / "log" / "slurmctld.log")
        yield service
    finally:
        jobs = service.run("squeue", "-h", "-o", "%i", check=False).split()
        if jobs:
            service.run("scancel", *jobs, check=False)
            with contextlib.suppress(RuntimeError):
                _wait("jobs cancelled", lambda: not service.queue(), 15)
        _stop_pidfile(state / "slurmd.pid")
        _stop_pidfile(state / "slurmctld.pid")
        _stop_pidfile(root / "munge" / "pid")
        munge.terminate()
        try:
            munge.wait(10)
        except subprocess.TimeoutExpired:
            munge.kill()
            munge.wait(10)
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        shutil.rmtree(root, ignore_errors=True)
