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

Batch engines also end when their job's walltime does. Engines register with their job's
end time, so the keeper launches a replacement ``lead`` seconds before it (twice the
controller's ``walltime_margin`` by default: the replacement has one margin to get through
the queue before the old engine stops taking tasks). Such engines are not relaunched again
when they end, and these replacements do not count against ``max_restarts``. An engine
whose job had no more than ``lead`` seconds left when first seen is not replaced ahead
(its replacements would follow each other without pause).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from pxcluster._errors import PxclusterError
from pxcluster.launchers._engines import handle_of, registered_engines
from pxcluster.launchers._launcher import LaunchHandle
from pxcluster.profile import load_config

if TYPE_CHECKING:
    from pxcluster.launchers._cluster import Cluster

log = logging.getLogger("pxcluster.launchers")


class EngineKeeper:
    """Relaunches a cluster's dead engines (bounded); see the module docstring."""

    def __init__(
        self,
        cluster: Cluster,
        max_restarts: int = 3,
        period: float = 1.0,
        lead: float | None = None,
    ) -> None:
        if max_restarts < 0:
            raise ValueError("max_restarts cannot be negative")
        self.cluster = cluster
        self.max_restarts = max_restarts
        self.period = period
        self.restarts = 0  # engines relaunched so far
        self.relaunched: list[tuple[LaunchHandle, LaunchHandle]] = []  # (dead, new)
        self.lead = lead  # None: twice the controller's walltime_margin, read at start
        #: (job id, array index) of engines already replaced ahead of their walltime, and
        #: the seconds each had left when first seen.
        self._replaced_ahead: set[tuple[str, int]] = set()
        self._first_left: dict[tuple[str, int], float] = {}
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
            if (handle.job_id, handle.array_index) in self._replaced_ahead:
                continue  # its walltime ended; its replacement runs already
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
        return done + self.replace_ending(name)

    def replace_ending(self, name: str) -> int:
        """Launch replacements for engines whose job ends within ``lead`` seconds."""
        if self.lead is None:
            self.lead = 2 * load_config(self.cluster.paths.config_file).walltime_margin
        try:
            engines = registered_engines(self.cluster.paths, timeout=5.0)
        except PxclusterError:
            return 0
        handles = [h for h in self.cluster.engine_handles if h.launcher == name and h.job_id]
        now = time.time()
        ending = []
        for engine in engines:
            end = engine.launch.get("end_time")
            handle = handle_of(engine, handles) if isinstance(end, (int, float)) else None
            if handle is None or not isinstance(end, (int, float)):
                continue
            key = (handle.job_id, handle.array_index)
            first = self._first_left.setdefault(key, end - now)
            if key not in self._replaced_ahead and first > self.lead and end - now <= self.lead:
                self._replaced_ahead.add(key)
                ending.append(handle)
        if ending and not self._stop.is_set():
            new = self.cluster.launch_engines(len(ending), name)
            log.warning(
                "%d engines' jobs end within %.0f s: launched %s in their place",
                len(ending),
                self.lead,
                ", ".join(sorted({h.describe().rsplit("[", 1)[0] for h in new})),
            )
        return len(ending)
