"""Controller layer: what the hub saw lately, for monitors (the dashboard, ``pxcluster top``).

Theory of operation
-------------------
The hub calls ``finished`` once per engine reply and ``engine_gone`` once per removed engine;
each is an append to a bounded deque and a counter increment, so the routing loop pays a few
hundred nanoseconds per reply and nothing else. Everything a monitor wants beyond that
(per-engine memory and CPU, rates, charts) is worked out in the monitor's own process from
the MONITOR reply that ``report`` builds.

Invariants:
  * ``finished_total`` counts every reply ever seen (the events deque may have dropped
    old ones): a monitor derives throughput from the difference of two totals, exactly,
    whatever the rate;
  * events carry increasing sequence numbers, so a monitor asks only for those after the
    last one it has (``since``), and learns from a gap that some were dropped.
"""

from __future__ import annotations

import collections
import time
from typing import Any

from pxcluster.wire import MsgType, Status

#: Recent finished requests kept for the live task stream.
EVENTS_KEPT = 2048
#: Most events one MONITOR reply carries (the newest ones): at 10,000 tasks a second a page
#: shows a sample of the stream, and the throughput chart stays exact.
EVENTS_PER_REPLY = 1000
#: Recent errors kept, with their tracebacks (each cut to ``TRACEBACK_CHARS``).
ERRORS_KEPT = 32
TRACEBACK_CHARS = 8000
#: Engines that died or were stopped, remembered so a monitor can show them as dead.
GONE_KEPT = 64


#: (seq, engine, type, request id, wall time done, seconds it took, status)
_Event = tuple[int, int, int, str, float, float, int]
_TYPE_NAMES = {int(t): t.name for t in MsgType}
_STATUS_NAMES = {int(s): s.name for s in Status}


class Activity:
    """Recent finished requests, errors and lost engines; see the module docstring."""

    def __init__(self) -> None:
        self.finished_total = 0
        self.errors_total = 0
        self._seq = 0
        self._events: collections.deque[_Event] = collections.deque(maxlen=EVENTS_KEPT)
        self._errors: collections.deque[dict[str, Any]] = collections.deque(maxlen=ERRORS_KEPT)
        self._gone: collections.deque[dict[str, Any]] = collections.deque(maxlen=GONE_KEPT)

    def finished(
        self,
        engine: int,
        msg_type: MsgType,
        request_id: str,
        took: float,
        status: int,
        content: dict[str, Any],
        now: float = 0.0,
    ) -> None:
        """An engine answered ``request_id`` with ``status``, ``took`` seconds after it was
        sent (or as long as the engine says it ran, where its reply says so); ``now``: the
        wall-clock time it came (0: read the clock here)."""
        self._seq += 1
        self.finished_total += 1
        now = now or time.time()
        started, completed = content.get("started"), content.get("completed")
        if type(started) is float and type(completed) is float:
            took = completed - started  # the engine's own measure: no time queued in it
        self._events.append((self._seq, engine, int(msg_type), request_id, now, took, status))
        if status == Status.ERROR:
            self.errors_total += 1
            self._errors.append(
                {
                    "seq": self._seq,
                    "engine": engine,
                    "type": msg_type.name,
                    "id": request_id,
                    "time": now,
                    "ename": str(content.get("ename", "Exception"))[:200],
                    "evalue": str(content.get("evalue", ""))[:2000],
                    "traceback": str(content.get("traceback", ""))[-TRACEBACK_CHARS:],
                }
            )

    def engine_gone(self, engine: int, hostname: str, pid: int, event: str, why: str) -> None:
        """Engine ``engine`` was removed (``event``: ``died`` or ``stopped``)."""
        self._gone.append(
            {
                "id": engine,
                "hostname": hostname,
                "pid": pid,
                "event": event,
                "why": why[:500],
                "time": time.time(),
            }
        )

    def report(self, since: int) -> dict[str, Any]:
        """Totals, the events after sequence number ``since`` (the newest
        ``EVENTS_PER_REPLY`` of them), recent errors and lost engines."""
        newer: list[_Event] = []
        for event in reversed(self._events):  # newest first: stop at the first one seen
            if event[0] <= since or len(newer) == EVENTS_PER_REPLY:
                break
            newer.append(event)
        newer.reverse()
        types, statuses = _TYPE_NAMES, _STATUS_NAMES
        return {
            "seq": self._seq,
            "finished": self.finished_total,
            "errors_total": self.errors_total,
            "events": [
                [seq, engine, types[kind], rid, done, took, statuses[status]]
                for seq, engine, kind, rid, done, took, status in newer
            ],
            "errors": list(self._errors),
            "gone": list(self._gone),
        }
