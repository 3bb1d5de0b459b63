"""Launchers layer: keep a cluster's engine count by relaunching engines that die.

A long interactive session must not dwindle because an engine was OOM-killed or crashed.
``EngineKeeper`` polls the cluster's engine handles through their launcher every
``period`` seconds; an engine whose process (or job) ended without being stopped is
forgotten and a new one launched in its place, at most ``max_restarts`` times in all, so
an engine that dies at start-up cannot loop forever. The new engine registers under a new
id (the controller never reuses one): its namespace starts empty, and the clients hear of
it as they hear of any engine that registers.

Where a launcher cannot say whether a process ended (``JobState.UNKNOWN``), nothing is
relaunched.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from pxcluster.launchers._launcher import LaunchHandle

if TYPE_CHECKING:
    from pxcluster.launchers._cluster import Cluster

log = logging.getLogger("pxcluster.launchers")


class EngineKeeper:
    """Relaunches a cluster's dead engines (bounded); see the module docstring."""

    def __init__(self, cluster: Cluster, max_restarts: int = 3, period: float = 1.0) -> None:
        if max_restarts < 0:
            raise ValueError("max_restarts cannot be negative")
        self.cluster = cluster
        self.max_restarts = max_restarts
        self.period = period
        self.restarts = 0  # engines relaunched so far
        self.relaunched: list[tuple[LaunchHandle, LaunchHandle]] = []  # (dead, new)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> EngineKeeper:
        """Watch in a daemon thread until ``stop``."""
        self._thread = threading.Thread(target=self._run, name="pxcluster-keeper", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (before the cluster stops, so nothing is relaunched meanwhile)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.check_once()
            except Exception:  # a launcher's hiccup must not end the watch
                log.exception("could not check the engines; trying again")

    def check_once(self) -> int:
        """Relaunch engines whose process ended; returns how many were relaunched."""
        name = self.cluster.engine_launcher
        launcher = self.cluster.launcher(name)
        handles = [h for h in self.cluster.engine_handles if h.launcher == name]
        if not handles:
            return 0
        statuses = launcher.poll(handles)
        dead = [h for h, status in zip(handles, statuses, strict=True) if status.state.ended]
        done = 0
        for handle in dead:
            if self._stop.is_set():
                break
            self.cluster.forget_engines([handle])
            if self.restarts >= self.max_restarts:
                log.warning(
                    "engine %s ended; not relaunched (%d restarts used of %d)",
                    handle.describe(),
                    self.restarts,
                    self.max_restarts,
                )
                continue
            (new,) = self.cluster.launch_engines(1, name)
            self.restarts += 1
            self.relaunched.append((handle, new))
            done += 1
            log.warning(
                "engine %s ended: launched %s in its place (restart %d of %d)",
                handle.describe(),
                new.describe(),
                self.restarts,
                self.max_restarts,
            )
        return done
