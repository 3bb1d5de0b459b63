"""Launchers layer: the ``local`` launcher, processes on this machine (the default).

Each process is ``python -m MODULE ARGS`` in its own session (see ``_processes``); its
handle is its pid and start time, so ``pxcluster stop`` in another process finds exactly it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Sequence

from pxcluster.launchers._launcher import JobState, JobStatus, Launcher, LaunchHandle, LaunchSpec
from pxcluster.launchers._processes import ProcessRef, spawn_argv, terminate, wait_gone
from pxcluster.launchers._relayed import relayed, wants_relay
from pxcluster.profile import LAUNCHER_ENV, LauncherConfig, ProfilePaths


class LocalLauncher(Launcher):
    """Subprocesses of this machine; see ``Launcher`` for the contract."""

    name = "local"
    poll_interval = 0.05

    def __init__(self, paths: ProfilePaths, options: LauncherConfig | None = None) -> None:
        super().__init__(paths, options)
        #: The Popen objects of what this instance started, so their exit codes are known
        #: (and they are reaped); a launcher made afresh from handles uses psutil instead.
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, spec: LaunchSpec) -> list[LaunchHandle]:
        python = self.options.python or None
        env = {**os.environ, **spec.env, LAUNCHER_ENV: self.name}
        handles = []
        host = socket.gethostname()
        if spec.role == "engine" and spec.count > 0 and wants_relay(self.options):
            spec = relayed(spec, spec.count)  # one relay, the engines behind it (--relay)
        for _ in range(spec.count):
            log = self.paths.log / "controller.log" if spec.role == "controller" else None
            argv = spec.argv(python) if python else spec.argv()
            proc = spawn_argv(argv, log, env)
            self.procs[proc.pid] = proc
            ref = ProcessRef.of(proc.pid)
            handles.append(
                LaunchHandle(self.name, spec.role, host=host, pid=ref.pid, started=ref.started)
            )
        return handles

    def poll(self, handles: Sequence[LaunchHandle]) -> list[JobStatus]:
        out = []
        for handle in handles:
            proc = self.procs.get(handle.pid)
            if proc is not None and proc.poll() is not None:
                code = proc.returncode
                state = JobState.FINISHED if code == 0 else JobState.FAILED
                out.append(JobStatus(state, "" if code == 0 else f"exit code {code}"))
            elif _ref(handle).alive():
                out.append(JobStatus(JobState.RUNNING, host=handle.host))
            else:
                out.append(JobStatus(JobState.FINISHED, "exited"))
        return out

    def stop(self, handles: Sequence[LaunchHandle], timeout: float = 10.0) -> None:
        refs = [_ref(h) for h in handles]
        terminate(wait_gone(refs, timeout))
        for handle in handles:
            proc = self.procs.pop(handle.pid, None)
            if proc is not None:
                # gone or going (psutil may call an exiting process gone before it is a
                # zombie): reap it, so neither a zombie nor a ResourceWarning is left
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=2.0)

    def signal(self, handle: LaunchHandle, signum: int) -> None:
        _ref(handle).signal(signum)


def _ref(handle: LaunchHandle) -> ProcessRef:
    return ProcessRef(handle.pid, handle.started)
