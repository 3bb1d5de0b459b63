"""Launchers layer: keep a cluster's engine count by relaunching engines that die.

A long interactive session must not dwindle because an engine was OOM-killed or crashed.
``EngineKeeper`` runs in the keeper process (``_watcher.py``: one per cluster, started by
``Cluster(restart=N)`` / ``pxcluster start --restart N``), so it keeps watching after the
command or script that started the cluster has returned. Each ``check_once``:

1. re-reads the cluster's engine handles from ``pid/cluster.json`` (``pxcluster add`` and
   ``restart`` change them from other processes);
2. asks the controller (MONITOR) which engines are registered, and which it removed lately
   and why: ``died`` (it stopped heartbeating) or ``stopped`` (a client killed it:
   ``mec.kill()``, an idle engine retired before its walltime);
3. asks the launchers about the handles whose engine is not registered now (a pending job,
   an engine starting, or one gone): nothing is polled while every engine is registered, so
   ssh logins and scheduler queries happen only when something changed;
4. an ended handle is relaunched unless it was ended on purpose: its engine ``stopped``, or
   the user signalled it through its launcher (``released.json``), or it was already
   replaced ahead of its walltime. An ended handle whose engine the controller still lists
   waits for the controller's verdict (within its heartbeat timeout).

Nothing is relaunched while the controller does not answer (it may be taking over after a
crash: the engines come back with their ids), and the keeper never relaunches after it was
told to stop (``pxcluster stop`` ends it before anything else). At most ``max_restarts``
engines are relaunched in all, so an engine that dies at start-up cannot loop forever. A
replacement registers under a new id (the controller never reuses one) with an empty
namespace; the clients hear of it as of any engine that registers.

MPI: the ranks of one ``mpiexec`` are one MPI world, which cannot take a new member, and
Open MPI ends the whole job when one rank dies. The keeper therefore waits until no rank of
a job is registered and relaunches the job's ended ranks together, as one new ``mpiexec``
(a new world of that size), never one rank into the old world.

Batch engines also end when their job's walltime does. Engines register with their job's
end time, so the keeper launches a replacement ``lead`` seconds before it (twice the
controller's ``walltime_margin`` by default: the replacement has one margin to get through
the queue before the old engine stops taking tasks). Such engines are not relaunched again
when they end, and these replacements do not count against ``max_restarts``. An engine
whose job had no more than ``lead`` seconds left when first seen is not replaced ahead
(its replacements would follow each other without pause).
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from pxcluster._errors import PxclusterError
from pxcluster.launchers._keeper_files import handle_key, released_keys
from pxcluster.launchers._launcher import LaunchHandle, match_handle
from pxcluster.profile import load_config

if TYPE_CHECKING:
    from pxcluster.launchers._cluster import Cluster

log = logging.getLogger("pxcluster.keeper")


class ControllerLink(Protocol):
    """What the keeper asks of the controller (``_watcher.ControllerMonitor``)."""

    def __call__(self) -> Mapping[str, Any] | None:
        """The MONITOR reply, or None when the controller does not answer."""

    def launcher_ended(self, engines: list[int], how: str) -> None:
        """Tell the controller that these engines were killed through their launcher."""


#: Seconds before the keeper sends an engine the same wanted signal again.
_SIGNAL_AGAIN = 10.0
#: Seconds between launcher polls while the controller does not answer.
_AWAY_POLL = 5.0
#: Seconds after the controller answers again before anything is relaunched: the engines
#: that outlived its restart re-register first and get their old ids back, not a newcomer.
REJOIN_GRACE = 3.0


class EngineKeeper:
    """Relaunches a cluster's dead engines (bounded); see the module docstring.

    Args:
        cluster: the cluster (attached to its record).
        monitor: returns the controller's MONITOR reply, None if it does not answer.
        max_restarts: engines relaunched at most, in all.
        lead: seconds before a job's walltime ends that a replacement is launched (None:
            twice the controller's ``walltime_margin``).
    """

    def __init__(
        self,
        cluster: Cluster,
        monitor: ControllerLink,
        max_restarts: int = 3,
        lead: float | None = None,
    ) -> None:
        if max_restarts < 0:
            raise ValueError("max_restarts cannot be negative")
        self.cluster = cluster
        self.monitor = monitor
        self.max_restarts = max_restarts
        self.restarts = 0  # engines relaunched so far
        self.given_up = 0  # engines that ended once the budget was spent
        self.relaunched: list[tuple[LaunchHandle, LaunchHandle]] = []  # (dead, new)
        self.lead = lead
        #: Set (from a signal handler) when the keeper must stop: nothing more is launched.
        self.stopping = False
        self._ids: dict[str, int] = {}  # handle key -> the engine id it registered as
        self._polled_at: dict[str, float] = {}  # launcher name -> when last polled
        self._replaced_ahead: set[str] = set()
        self._first_left: dict[str, float] = {}
        self._back_at = 0.0  # when the controller answered again after being away
        self._away = False
        self._signalled: dict[tuple[int, int], float] = {}  # (engine, signum) -> when sent
        self._killed_for_controller: set[str] = set()  # handle keys: never relaunched

    # -- one look ----------------------------------------------------------------------------

    def check_once(self) -> bool:
        """Look once and relaunch what died; False when there is no cluster left to keep."""
        if not self.cluster.reload():
            log.info("the cluster's record is gone or is another cluster's: done")
            return False
        handles = self.cluster.engine_handles
        report = self.monitor()
        if report is None:
            self._away = True
            return self._controller_away(handles)
        if self._away:
            self._away, self._back_at = False, time.monotonic()
            log.info("the controller answers again; relaunching waits %.0f s", REJOIN_GRACE)
        if time.monotonic() - self._back_at < REJOIN_GRACE:
            return True
        gone = {int(g["id"]): g for g in report.get("gone", []) if isinstance(g, dict)}
        live = self._note_ids(report, handles, gone)
        if report.get("signal_wanted"):
            self._send_wanted_signals(report, handles)
        suspects = [h for h in handles if handle_key(h) not in live]
        ended = self._ended(suspects, wait=lambda name: self.cluster.launcher(name).poll_interval)
        # MPI: a job's ranks are relaunched together, once none of them is registered
        busy_jobs = {h.job_id for h in handles if h.launcher == "mpi" and handle_key(h) in live}
        ended = [h for h in ended if not (h.launcher == "mpi" and h.job_id in busy_jobs)]
        if ended:
            self._settle(ended, gone)
        self._replace_ending(report, self.cluster.engine_handles)
        return True

    def _note_ids(
        self, report: Mapping[str, Any], handles: Sequence[LaunchHandle], gone: Mapping[int, Any]
    ) -> set[str]:
        """Remember which engine id each handle registered as; the keys of those registered."""
        launch = {int(eid): dict(info) for eid, info in report.get("launch", [])}
        live = set()
        for row in report.get("engine_rows", []):
            eid, hostname, pid = int(row[0]), str(row[1]), int(row[2])
            handle = match_handle(handles, launch.get(eid, {}), pid, hostname)
            if handle is not None:
                self._ids[handle_key(handle)] = eid
                live.add(handle_key(handle))
        for eid, entry in gone.items():  # removed before this keeper saw it registered
            handle = match_handle(handles, {}, int(entry.get("pid", 0)), str(entry["hostname"]))
            if handle is not None:
                self._ids.setdefault(handle_key(handle), eid)
        return live

    def _send_wanted_signals(
        self, report: Mapping[str, Any], handles: Sequence[LaunchHandle]
    ) -> None:
        """Signal, through their launchers, the engines the controller could not signal
        itself (on another host, no relay): a kill or an interrupt they did not answer
        (C code holding the GIL). Kills are reported back, so the client's kill succeeds."""
        launch = {int(eid): dict(info) for eid, info in report.get("launch", [])}
        rows = {int(row[0]): row for row in report.get("engine_rows", [])}
        now = time.monotonic()
        self._signalled = {k: t for k, t in self._signalled.items() if now - t < _SIGNAL_AGAIN}
        killed: list[int] = []
        for eid, signum in report.get("signal_wanted", []):
            row = rows.get(eid)
            if row is None or now - self._signalled.get((eid, signum), -1e9) < _SIGNAL_AGAIN:
                continue
            handle = match_handle(handles, launch.get(eid, {}), int(row[2]), str(row[1]))
            if handle is None:
                continue  # not launched by this cluster: nobody here can reach it
            self._signalled[(eid, signum)] = now
            target = (
                handle
                if handle.pid
                else dataclasses.replace(handle, host=str(row[1]), pid=int(row[2]))
            )
            try:
                self.cluster.launcher(handle.launcher).signal(target, signum)
            except (PxclusterError, OSError) as exc:
                log.warning("could not signal engine %d (%s): %s", eid, handle.describe(), exc)
                continue
            log.warning(
                "engine %d (%s) did not answer the controller, which could not reach it: "
                "sent %s through its launcher",
                eid,
                handle.describe(),
                signal.Signals(signum).name,
            )
            if signum == signal.SIGKILL:
                self._killed_for_controller.add(handle_key(handle))
                killed.append(eid)
        if killed:
            self.monitor.launcher_ended(killed, "killed by its launcher (it did not answer)")

    def _ended(self, handles: Sequence[LaunchHandle], wait: Callable[[str], float]) -> list[Any]:
        """Those of ``handles`` whose process or job ended, asking each launcher no more
        often than its ``poll_interval`` (1 s for batch systems, 2 s for ssh)."""
        by_launcher: dict[str, list[LaunchHandle]] = {}
        for handle in handles:
            by_launcher.setdefault(handle.launcher, []).append(handle)
        ended = []
        now = time.monotonic()
        for name, group in by_launcher.items():
            if now - self._polled_at.get(name, -1e9) < wait(name):
                continue
            self._polled_at[name] = now
            statuses = self.cluster.launcher(name).poll(group)
            ended += [h for h, s in zip(group, statuses, strict=True) if s.state.ended]
        return ended

    def _settle(self, ended: Sequence[LaunchHandle], gone: Mapping[int, Any]) -> None:
        """Forget the ended handles; relaunch those that were not ended on purpose."""
        released = released_keys(self.cluster.paths)
        dead: list[LaunchHandle] = []
        for handle in ended:
            key = handle_key(handle)
            eid = self._ids.get(key)
            event = gone.get(eid, {}).get("event") if eid is not None else None
            if key in released or key in self._killed_for_controller:
                log.info("engine %s was ended on request: not relaunched", handle.describe())
            elif event == "stopped":
                log.info("engine %s was stopped on purpose: not relaunched", handle.describe())
            elif key in self._replaced_ahead:
                pass  # its walltime ended; its replacement runs already
            else:
                dead.append(handle)
        self.cluster.forget_engines(ended)
        by_launcher: dict[str, list[LaunchHandle]] = {}
        for handle in dead:
            by_launcher.setdefault(handle.launcher, []).append(handle)
        for name, group in by_launcher.items():
            self._relaunch(name, group)

    def _relaunch(self, name: str, dead: Sequence[LaunchHandle]) -> None:
        if not self.max_restarts:  # a keeper for signals only (engines on other hosts)
            for handle in dead:
                log.info("engine %s ended (no --restart: not relaunched)", handle.describe())
            return
        left = max(0, self.max_restarts - self.restarts)
        chosen, refused = list(dead[:left]), list(dead[left:])
        for handle in refused:
            self.given_up += 1
            log.warning(
                "engine %s ended; not relaunched (%d restarts used of %d)",
                handle.describe(),
                self.restarts,
                self.max_restarts,
            )
        if not chosen or self.stopping:
            return
        new = self.cluster.launch_engines(len(chosen), name)
        self.restarts += len(chosen)
        for old, replacement in zip(chosen, new, strict=False):
            self.relaunched.append((old, replacement))
            log.warning(
                "engine %s ended: launched %s in its place (restart %d of %d)",
                old.describe(),
                replacement.describe(),
                self.restarts,
                self.max_restarts,
            )

    def _controller_away(self, handles: Sequence[LaunchHandle]) -> bool:
        """The controller does not answer: relaunch nothing (a takeover brings the engines
        back); keep watching while any engine or job of the cluster is alive."""
        ended = self._ended(handles, wait=lambda name: _AWAY_POLL)
        if not handles or (len(ended) == len(handles) and not self.cluster.controller_running()):
            log.info("no controller and no engine left: done")
            return False
        return True

    # -- walltime ---------------------------------------------------------------------------

    def _replace_ending(self, report: Mapping[str, Any], handles: Sequence[LaunchHandle]) -> None:
        """Launch replacements for engines whose job ends within ``lead`` seconds."""
        if self.lead is None:
            self.lead = 2 * load_config(self.cluster.paths.config_file).walltime_margin
        launch = {int(eid): dict(info) for eid, info in report.get("launch", [])}
        now = time.time()
        ending: dict[str, list[LaunchHandle]] = {}
        for row in report.get("engine_rows", []):
            info = launch.get(int(row[0]), {})
            end = info.get("end_time")
            if not isinstance(end, (int, float)):
                continue
            handle = match_handle(handles, info, int(row[2]), str(row[1]))
            if handle is None or not handle.job_id:
                continue
            key = handle_key(handle)
            first = self._first_left.setdefault(key, end - now)
            if key not in self._replaced_ahead and first > self.lead and end - now <= self.lead:
                self._replaced_ahead.add(key)
                ending.setdefault(handle.launcher, []).append(handle)
        for name, group in ending.items():
            if self.stopping:
                return
            new = self.cluster.launch_engines(len(group), name)
            log.warning(
                "%d engines' jobs end within %.0f s: launched %s in their place",
                len(group),
                self.lead,
                ", ".join(sorted({h.describe().rsplit("[", 1)[0] for h in new})),
            )
