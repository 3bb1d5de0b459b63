"""Launchers layer: waiting for a launched controller and engines, whatever the launcher.

While it waits, ``Cluster.start`` polls the launcher (at its ``poll_interval``) as well as
the controller, so a job that fails at once fails the start within seconds with the
scheduler's reason and the job's last output lines, and a start that gives up says which
engines or jobs are missing and what their scheduler says about them.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence

from pxcluster._errors import (
    LaunchFailed,
    NoClusterRunning,
    PxclusterError,
    PxclusterTimeoutError,
)
from pxcluster.client import MultiEngineClient
from pxcluster.launchers._engines import handle_of, registered_engines
from pxcluster.launchers._launcher import JobState, JobStatus, Launcher, LaunchHandle
from pxcluster.launchers._processes import ProcessRef
from pxcluster.profile import ProfilePaths, read_client_connection

#: Called with (engines registered, engines expected).
Progress = Callable[[int, int], None]
#: Called with a line saying what the launcher's jobs are doing, when that changes.
StatusReport = Callable[[str], None]


def summarize(handles: Sequence[LaunchHandle], statuses: Sequence[JobStatus]) -> str:
    """One line for a group of handles: ``slurm job 12: 2 running, 2 pending (Resources)``."""
    jobs = sorted({h.job_id for h in handles if h.job_id})
    counts = collections.Counter(s.describe() for s in statuses)
    what = f"{handles[0].launcher} job {', '.join(jobs)}" if jobs else f"{len(handles)} processes"
    return f"{what}: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


def failure(launcher: Launcher, handle: LaunchHandle, status: JobStatus, what: str) -> str:
    """The message for a process that ended while we waited for it: who, why, its output."""
    files = ", ".join(str(p) for p in launcher.output_files(handle)) or "(none)"
    return (
        f"{what} {handle.describe()} {status.describe()} before it was ready; "
        f"output files: {files}\n{launcher.read_output(handle, 15)}"
    )


class _Poller:
    """Polls a launcher no faster than its ``poll_interval`` and reports state changes."""

    def __init__(self, launcher: Launcher, status: StatusReport | None) -> None:
        self.launcher = launcher
        self.status = status
        self._next = 0.0
        self._said = ""
        self.last: list[JobStatus] = []

    def poll(self, handles: Sequence[LaunchHandle], what: str) -> None:
        """Poll if due; raise ``LaunchFailed`` for a handle whose process ended."""
        now = time.monotonic()
        if now < self._next or not handles:
            return
        self._next = now + self.launcher.poll_interval
        self.last = self.launcher.poll(handles)
        for handle, state in zip(handles, self.last, strict=False):
            if state.state.ended:
                raise LaunchFailed(failure(self.launcher, handle, state, what))
        line = summarize(handles, self.last)
        if self.status is not None and line != self._said and self.launcher.name != "local":
            self.status(line)
        self._said = line


def wait_for_controller(
    paths: ProfilePaths,
    launcher: Launcher,
    handle: LaunchHandle,
    deadline: float,
    timeout: float,
    status: StatusReport | None = None,
) -> LaunchHandle:
    """Wait until the controller launched as ``handle`` has written its connection file.

    Returns the handle completed with the controller's pid (a batch job's is known only
    now). Raises ``LaunchFailed`` if it ended first or was not ready by ``deadline``.
    """
    poller = _Poller(launcher, status)
    while time.monotonic() < deadline:
        poller.poll([handle], "the controller")
        with contextlib.suppress(NoClusterRunning):
            pid = read_client_connection(paths.client_file).controller_pid
            if pid and (pid == handle.pid or not handle.pid):
                if handle.pid:
                    return handle
                ref = ProcessRef.of(pid)
                return _with(handle, pid=pid, started=ref.started)
        time.sleep(0.02)
    states = ", ".join(s.describe() for s in poller.last) or "never polled"
    files = ", ".join(str(p) for p in launcher.output_files(handle))
    raise LaunchFailed(
        f"the controller ({handle.describe()}, {states}) was not ready within {timeout} s; "
        f"see {files}"
    )


def _with(handle: LaunchHandle, pid: int, started: float) -> LaunchHandle:
    return dataclasses.replace(handle, pid=pid, started=started)


def wait_for_engines(
    client: MultiEngineClient,
    expected: int,
    launcher: Launcher,
    handles: Sequence[LaunchHandle],
    deadline: float,
    timeout: float,
    progress: Progress | None = None,
    status: StatusReport | None = None,
) -> list[int]:
    """Wait until ``expected`` engines are registered; returns their ids.

    Raises:
        LaunchFailed: one of ``handles`` ended first (its reason and output in the
            message), or ``deadline`` passed (the message lists the handles' states).
    """
    poller = _Poller(launcher, status)
    while True:
        try:
            ids = client.wait_for_engines(expected, timeout=0.1)
        except PxclusterTimeoutError:
            if progress is not None:
                progress(len(client.get_ids()), expected)
        else:
            if progress is not None:
                progress(len(ids), expected)
            return ids
        poller.poll(handles, "engine")
        if time.monotonic() > deadline:
            got = len(client.get_ids())
            raise LaunchFailed(missing_report(launcher, handles, got, expected, timeout))


def missing_report(
    launcher: Launcher,
    handles: Sequence[LaunchHandle],
    got: int,
    expected: int,
    timeout: float,
) -> str:
    """Why a start gave up: how many registered, and which launched processes did not,
    each with its state and output files (and the last output of one that runs)."""
    lines = [f"only {got} of {expected} engines registered within {timeout} s"]
    try:
        engines = registered_engines(launcher.paths, timeout=2.0)
    except PxclusterError:
        engines = []
    missing = [h for h in handles if not any(handle_of(e, [h]) for e in engines)]
    statuses = launcher.poll(missing) if missing else []
    if missing:
        lines.append(f"not registered ({len(missing)} of the {len(handles)} launched now):")
    shown_output = False
    for handle, state in list(zip(missing, statuses, strict=True))[:20]:
        files = ", ".join(str(p) for p in launcher.output_files(handle))
        said = state.describe()
        if state.state == JobState.RUNNING:
            said = "running, but not registered"
        lines.append(f"  {handle.describe()}: {said}; output: {files or '-'}")
        if state.state == JobState.RUNNING and not shown_output:
            shown_output = True
            lines.append(launcher.read_output(handle, 10))
    if len(missing) > 20:
        lines.append(f"  ... and {len(missing) - 20} more")
    return "\n".join(lines)
