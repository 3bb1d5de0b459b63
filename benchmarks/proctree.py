"""Benchmarks: watching the processes a run starts, so that none is left behind.

Every system starts its engines in its own way (subprocesses in new sessions, multiprocessing,
nannies); what they have in common is that they descend from the process that started
them. ``Tracker`` notes every descendant it sees while it polls, so that one whose parent
died (and which was moved under init) is still known, and kills whatever is left at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time

import psutil


@dataclasses.dataclass(frozen=True)
class Seen:
    pid: int
    started: float
    cmdline: str

    def process(self) -> psutil.Process | None:
        """The live process, unless it exited, is a zombie or its pid was reused."""
        try:
            proc = psutil.Process(self.pid)
            if proc.create_time() != self.started or proc.status() == psutil.STATUS_ZOMBIE:
                return None
        except psutil.Error:
            return None
        return proc


class Tracker:
    """Notes the descendants of ``root_pid`` every ``period`` seconds on a thread."""

    def __init__(self, root_pid: int, period: float = 0.25) -> None:
        self.root_pid = root_pid
        self.period = period
        self.seen: dict[tuple[int, float], Seen] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="bench-tracker", daemon=True)

    def __enter__(self) -> Tracker:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while True:
            self.snapshot()
            if self._stop.wait(self.period):
                return

    def snapshot(self) -> None:
        try:
            children = psutil.Process(self.root_pid).children(recursive=True)
        except psutil.Error:
            return
        for child in children:
            with contextlib.suppress(psutil.Error):
                key = (child.pid, child.create_time())
                if key not in self.seen:
                    self.seen[key] = Seen(child.pid, key[1], " ".join(child.cmdline())[:200])

    def alive(self) -> list[Seen]:
        """Descendants seen so far that still run."""
        return [s for s in self.seen.values() if s.process() is not None]

    def wait_gone(self, timeout: float, poll: float = 0.02) -> list[Seen]:
        """Wait up to ``timeout`` s for every descendant seen to exit; returns those still there."""
        deadline = time.monotonic() + timeout
        self.snapshot()
        left = self.alive()
        while left and time.monotonic() < deadline:
            time.sleep(poll)
            self.snapshot()
            left = self.alive()
        return left

    def kill_leftovers(self) -> list[str]:
        """Kill every descendant seen that still runs; returns their descriptions."""
        left = self.alive()
        kill_all([p for p in (s.process() for s in left) if p is not None])
        return [f"{s.pid} {s.cmdline}" for s in left]


def kill_all(procs: list[psutil.Process], grace: float = 3.0) -> None:
    """SIGTERM ``procs``, then SIGKILL those still there after ``grace`` seconds."""
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=grace)


def kill_tree(pid: int) -> None:
    """Kill ``pid`` and all its descendants."""
    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.Error:
        return
    kill_all(procs)
