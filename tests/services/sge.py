"""A real single-node Son of Grid Engine (sge_qmaster + sge_execd) for the tests that ask.

A pytest plugin (registered in tests/conftest.py). The ``sge`` fixture is session-scoped
and started only when a test asks for it: it configures the cell that Debian's
gridengine packages made (root jobs allowed, a 1 s scheduler interval, no load alarms, 32
slots; about 10 s, the recipe of ../shared/notes/real-components.md) and starts both
daemons, which it stops at the end of the session, also after failures. SGE keeps one
cell per machine, so a qmaster that is already running (another session's) is used as it
is and left running. Installing it is tests/services/install.sh's job; a machine without it
fails these tests with a message saying so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pxcluster.testing import wait_for

SGE_ROOT = "/var/lib/gridengine"
QMASTER_PID = Path("/var/spool/gridengine/qmaster/qmaster.pid")
EXECD_PID = Path("/var/spool/gridengine/execd/localhost/execd.pid")

CONFIGURE = r"""
set -eu
W=$1
qconf -sconf global | sed -e 's/^min_uid .*/min_uid 0/' -e 's/^min_gid .*/min_gid 0/' > $W/global
qconf -Mconf $W/global
qconf -ssconf | sed -e 's/^schedule_interval .*/schedule_interval 0:0:1/' \
  -e 's/^flush_submit_sec .*/flush_submit_sec 1/' \
  -e 's/^flush_finish_sec .*/flush_finish_sec 1/' > $W/sched
qconf -Msconf $W/sched
printf '%s\n' 'hostname localhost' 'load_scaling NONE' 'complex_values NONE' \
  'user_lists NONE' 'xuser_lists NONE' 'projects NONE' 'xprojects NONE' \
  'usage_scaling NONE' 'report_variables NONE' > $W/exechost
qconf -Ae $W/exechost >/dev/null 2>&1 || qconf -Me $W/exechost
qconf -as localhost >/dev/null 2>&1 || true
printf 'group_name @allhosts\nhostlist localhost\n' > $W/hgrp
qconf -Ahgrp $W/hgrp >/dev/null 2>&1 || qconf -Mhgrp $W/hgrp
for pe in smp mpi; do
  printf '%s\n' "pe_name $pe" 'slots 99' 'user_lists NONE' 'xuser_lists NONE' \
    'start_proc_args NONE' 'stop_proc_args NONE' 'allocation_rule $fill_up' \
    'control_slaves TRUE' 'job_is_first_task FALSE' 'urgency_slots min' \
    'accounting_summary FALSE' 'qsort_args NONE' > $W/pe_$pe
  qconf -Ap $W/pe_$pe >/dev/null 2>&1 || qconf -Mp $W/pe_$pe
done
qconf -sq all.q 2>/dev/null > $W/allq || qconf -sq > $W/allq
sed -i -e 's/^qname .*/qname all.q/' -e 's/^hostlist .*/hostlist @allhosts/' \
  -e 's/^slots .*/slots 32/' -e 's/^pe_list .*/pe_list smp mpi/' \
  -e 's/^load_thresholds .*/load_thresholds NONE/' -e 's#^shell .*#shell /bin/bash#' $W/allq
qconf -Aq $W/allq >/dev/null 2>&1 || qconf -Mq $W/allq
"""


@dataclasses.dataclass(frozen=True)
class SgeService:
    """The running test SGE; ``env`` is what its client commands need."""

    env: dict[str, str]

    def run(self, *argv: str, check: bool = True) -> str:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=30, env={**os.environ, **self.env}
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed: {done.stderr}")
        return done.stdout

    def jobs(self) -> list[str]:
        """Ids of the jobs qstat lists (any user)."""
        lines = self.run("qstat", "-u", "*", check=False).splitlines()[2:]
        return sorted({line.split()[0] for line in lines if line.strip()})


def _alive(pidfile: Path) -> int:
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return 0
    return pid


def _stop(pidfile: Path, timeout: float = 15.0) -> None:
    pid = _alive(pidfile)
    if not pid:
        return
    os.kill(pid, 15)
    with contextlib.suppress(TimeoutError):
        wait_for(lambda: not _alive(pidfile), timeout, interval=0.2, message=f"{pidfile} gone")
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 9)


@pytest.fixture(scope="session")
def sge() -> Iterator[SgeService]:
    """A running single-node SGE; ``SGE_ROOT``/``SGE_CELL`` set for this whole session."""
    with running_sge() as service:
        yield service


@contextlib.contextmanager
def running_sge() -> Iterator[SgeService]:
    """Configure and start SGE's daemons (unless running); stop what it started on exit."""
    qmaster = Path("/usr/lib/gridengine/sge_qmaster")
    if not qmaster.exists() or shutil.which("qconf") is None:
        pytest.fail(
            "Son of Grid Engine is not installed: run tests/services/install.sh (as root)",
            pytrace=False,
        )
    env = {"SGE_ROOT": SGE_ROOT, "SGE_CELL": "default"}
    previous = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    service = SgeService(env)
    started: list[Path] = []
    work = Path(tempfile.mkdtemp(prefix="pxtest-sge-"))
    try:
        if not _alive(QMASTER_PID):
            # the client says "vm" (hostname) where the daemons resolve "localhost"
            aliases = Path(SGE_ROOT, "default", "common", "host_aliases")
            aliases.write_text(f"localhost {socket.gethostname()}\n")
            subprocess.run([str(qmaster)], check=True, timeout=60)
            started.append(QMASTER_PID)
        wait_for(
            lambda: service.run("qconf", "-sh", check=False) != "", 30, 0.2, "sge_qmaster"
        )
        subprocess.run(
            ["bash", "-c", CONFIGURE, "configure", str(work)],
            check=True,
            timeout=120,
            capture_output=True,
        )
        if not _alive(EXECD_PID):
            subprocess.run(["/usr/lib/gridengine/sge_execd"], check=True, timeout=60)
            started.append(EXECD_PID)

        def queue_up() -> bool:
            out = service.run("qstat", "-f", check=False)
            lines = [line.split() for line in out.splitlines() if "all.q@localhost" in line]
            # a sixth column holds alarm/unknown/disabled states: the queue takes no jobs
            return bool(lines) and (len(lines[0]) == 5 or not set("uadE") & set(lines[0][5]))

        wait_for(queue_up, 30, 0.2, "the all.q@localhost queue")
        yield service
    finally:
        left = service.jobs()
        if left:
            service.run("qdel", *left, check=False)
        for pidfile in reversed(started):
            _stop(pidfile)
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(work, ignore_errors=True)
