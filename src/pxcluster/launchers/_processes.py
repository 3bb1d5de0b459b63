"""Launchers layer: starting pxcluster processes and making sure they stop.

Children start in their own session, so Ctrl-C in the terminal that ran ``pxcluster`` does
not hit the engines (the client interrupts them on purpose instead), and a process group can
be signalled as a whole. A process is identified by pid *and* start time, so a recycled pid
is never mistaken for one of ours.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil


@dataclasses.dataclass(frozen=True)
class ProcessRef:
    """A process we started: pid plus its start time (to tell a recycled pid apart)."""

    pid: int
    started: float

    @classmethod
    def of(cls, pid: int) -> ProcessRef:
        try:
            return cls(pid, psutil.Process(pid).create_time())
        except psutil.Error:
            return cls(pid, 0.0)

    def alive(self) -> bool:
        try:
            proc = psutil.Process(self.pid)
            return bool(
                proc.create_time() == self.started and proc.status() != psutil.STATUS_ZOMBIE
            )
        except psutil.Error:
            return False

    def signal(self, signum: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)


def spawn(
    module: str, args: Sequence[str], log_file: Path | None = None
) -> subprocess.Popen[bytes]:
    """Run ``python -m module args`` detached from our terminal, output to ``log_file``."""
    return spawn_argv([sys.executable, "-m", module, *args], log_file)


def spawn_argv(
    argv: Sequence[str], log_file: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Run ``argv`` detached from our terminal (its own session), output to ``log_file``."""
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=dict(env) if env is not None else None,
        )
    finally:
        if log_file:
            out.close()  # type: ignore[union-attr]


def wait_gone(refs: Sequence[ProcessRef], timeout: float) -> list[ProcessRef]:
    """Wait up to ``timeout`` s for ``refs`` to exit; returns those still alive."""
    deadline = time.monotonic() + timeout
    alive = [r for r in refs if r.alive()]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [r for r in alive if r.alive()]
    return alive


def terminate(refs: Sequence[ProcessRef], grace: float = 3.0) -> None:
    """SIGTERM what is still alive, then SIGKILL what survives ``grace`` seconds."""
    alive = [r for r in refs if r.alive()]
    for ref in alive:
        ref.signal(signal.SIGTERM)
    for ref in wait_gone(alive, grace):
        ref.signal(signal.SIGKILL)
    wait_gone(alive, grace)


def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` of a log file, for an error message."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])
