"""Monitor layer: the one data source of the dashboard and ``pxcluster top``.

``MonitorSource`` is an ordinary client of the controller: each ``poll`` sends one MONITOR
request (answered from the hub's counters and bounded deques, never from the hot loop's
work) and turns the reply into a ``ClusterSnapshot``. What the controller does not know is
added here, in the monitor's process: memory and CPU of the engines on this host (psutil,
by pid), the record store's file size, and throughput as the difference of two finished
totals divided by the time between polls (exact at any rate, unlike counting events).
"""

from __future__ import annotations

import collections
import contextlib
import socket
import time
from pathlib import Path
from typing import Any

import psutil

from pxcluster._errors import PxclusterError
from pxcluster.client._core import ClientCore
from pxcluster.monitor._snapshot import (
    ClientRow,
    ClusterSnapshot,
    EngineRow,
    ErrorEvent,
    TaskEvent,
)
from pxcluster.profile import ProfilePaths, read_client_connection
from pxcluster.wire import MsgType

#: Throughput points kept (one per poll: five minutes at the dashboard's 1 s period).
HISTORY = 300
#: Finished requests kept for the task stream (a poll a second: up to 1,000 a second shown
#: in full; above that, the newest of each second).
EVENTS_SHOWN = 1000
#: Engines that died or stopped, shown as such.
GONE_SHOWN = 32


def _job_name(launch: object) -> str:
    """``slurm 1234_3`` from an engine's launch info (its launcher, job id, array index)."""
    if not isinstance(launch, dict) or not launch.get("job_id"):
        return ""
    index = launch.get("array_index")
    suffix = f"_{index}" if isinstance(index, int) else ""
    return f"{launch.get('launcher', '')} {launch['job_id']}{suffix}".strip()


class MonitorSource:
    """Polls one cluster's controller for snapshots; see the module docstring.

    Args:
        profile: the profile name (folder ``~/.pxcluster/profile_NAME``).
        profile_dir: the profile's folder, instead of the name's.
        timeout: seconds to wait for the controller when connecting.

    Raises:
        NoClusterRunning: the profile has no connection file.
        PxclusterTimeoutError: no controller answered within ``timeout``.
    """

    def __init__(
        self,
        profile: str = "default",
        profile_dir: str | Path | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.paths = ProfilePaths.for_profile(profile, profile_dir)
        connection = read_client_connection(self.paths.client_file)
        self._core = ClientCore(connection, timeout)
        self._url = connection.url
        self._hostname = socket.gethostname()
        self._processes: dict[int, psutil.Process] = {}
        self._since = 0
        self._events: collections.deque[TaskEvent] = collections.deque(maxlen=EVENTS_SHOWN)
        self._throughput: collections.deque[tuple[float, float]] = collections.deque(maxlen=HISTORY)
        self._backlog: collections.deque[tuple[float, int]] = collections.deque(maxlen=HISTORY)
        self._last_total: tuple[float, int] | None = None  # (monotonic time, finished)
        self._last: ClusterSnapshot | None = None

    def poll(self, timeout: float = 5.0) -> ClusterSnapshot:
        """Ask the controller now; on no answer, the previous snapshot marked not answering."""
        try:
            reply = self._core.call_controller(
                MsgType.MONITOR, {"since": self._since}, "monitor", timeout
            )
        except PxclusterError as exc:
            return self._not_answering(f"the controller did not answer: {exc}")
        snapshot = self._snapshot(reply.content, time.monotonic())
        self._last = snapshot
        return snapshot

    def _not_answering(self, why: str) -> ClusterSnapshot:
        last = self._last or ClusterSnapshot(0.0, self.paths.name, self._url, False)
        return ClusterSnapshot(
            **{**last.__dict__, "taken": time.time(), "answering": False, "problem": why}
        )

    def _snapshot(self, content: dict[str, Any], now: float) -> ClusterSnapshot:
        finished = int(content.get("finished", 0))
        wall = time.time()  # one time stamp for every series of this poll
        if self._last_total is not None and now > self._last_total[0]:
            then, before = self._last_total
            # a smaller total means a restarted controller: count from zero again
            done = finished - before if finished >= before else finished
            self._throughput.append((wall, done / (now - then)))
        self._last_total = (now, finished)
        for raw in content.get("events", ()):
            self._events.append(TaskEvent(*raw))
        seq = int(content.get("seq", self._since))
        # a smaller sequence number means a restarted controller: ask for all it has
        self._since = seq if seq >= self._since else 0
        tasks = content.get("tasks", {})
        store = content.get("store", {})
        engines = self._engine_rows(content)
        waiting = int(tasks.get("queued", 0)) + int(tasks.get("waiting", 0))
        self._backlog.append((wall, waiting + sum(e.queue for e in engines)))
        return ClusterSnapshot(
            taken=wall,
            profile=self.paths.name,
            controller_url=self._url,
            answering=True,
            engines=engines,
            clients=tuple(ClientRow(str(s), float(idle)) for s, idle in content.get("clients", ())),
            queued=int(tasks.get("queued", 0)),
            waiting=int(tasks.get("waiting", 0)),
            assigned=int(tasks.get("assigned", 0)),
            store_records=int(store.get("records", 0)),
            store_bytes=int(store.get("bytes", 0)),
            store_file_bytes=self._store_file_bytes(),
            finished=finished,
            errors_total=int(content.get("errors_total", 0)),
            throughput=tuple(self._throughput),
            backlog=tuple(self._backlog),
            events=tuple(self._events),
            errors=tuple(
                ErrorEvent(
                    e["seq"],
                    e["engine"],
                    e["type"],
                    e["id"],
                    e["time"],
                    e["ename"],
                    e["evalue"],
                    e["traceback"],
                )
                for e in content.get("errors", ())
            ),
        )

    def _engine_rows(self, content: dict[str, Any]) -> tuple[EngineRow, ...]:
        rows: list[EngineRow] = []
        live: set[int] = set()
        jobs = {pair[0]: _job_name(pair[1]) for pair in content.get("launch", ())}
        for engine_id, hostname, pid, queue, last_seen in content.get("engine_rows", ()):
            live.add(engine_id)
            memory, cpu = self._process_stats(hostname, pid)
            state = "busy" if queue else "idle"
            rows.append(
                EngineRow(
                    engine_id,
                    hostname,
                    pid,
                    state,
                    queue,
                    last_seen,
                    memory,
                    cpu,
                    job=jobs.get(engine_id, ""),
                )
            )
        gone = [g for g in content.get("gone", ()) if g["id"] not in live]
        shown: set[int] = set()
        for g in reversed(gone[-GONE_SHOWN:]):  # the latest word on each engine id
            if g["id"] in shown:
                continue
            shown.add(g["id"])
            self._processes.pop(g["pid"], None)
            state = "dead" if g["event"] == "died" else "stopped"
            rows.append(
                EngineRow(
                    g["id"],
                    g["hostname"],
                    g["pid"],
                    state,
                    0,
                    time.time() - g["time"],
                    why=g["why"],
                )
            )
        return tuple(sorted(rows, key=lambda r: (r.state in ("dead", "stopped"), r.id)))

    def _process_stats(self, hostname: str, pid: int) -> tuple[int | None, float | None]:
        """Resident memory and CPU percent of an engine process on this host."""
        if hostname != self._hostname or pid <= 0:
            return None, None
        process = self._processes.get(pid)
        try:
            if process is None or not process.is_running():
                process = self._processes[pid] = psutil.Process(pid)
                process.cpu_percent()  # the first call only starts the measurement
            with process.oneshot():
                return int(process.memory_info().rss), float(process.cpu_percent())
        except (psutil.Error, OSError):
            self._processes.pop(pid, None)
            return None, None

    def _store_file_bytes(self) -> int:
        total = 0
        for name in ("db.sqlite3", "db.sqlite3-wal"):
            with contextlib.suppress(OSError):  # not written yet, or being replaced
                total += (self.paths.dir / name).stat().st_size
        return total

    def close(self) -> None:
        """Disconnect from the controller."""
        self._core.close()

    def __enter__(self) -> MonitorSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
