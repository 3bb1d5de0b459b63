"""Monitor layer: what a monitor shows, as immutable records (one ``ClusterSnapshot`` per poll).

The dashboard sends ``as_json()`` to the browser; ``pxcluster top`` renders the same record
as text. Both read nothing else, so the two views cannot disagree.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class EngineRow:
    """One engine: ``state`` is ``idle`` or ``busy`` (live), ``dead`` or ``stopped`` (gone).

    ``memory`` (resident bytes) and ``cpu`` (percent of one core) are None for engines on
    other hosts, whose processes this monitor cannot see.
    """

    id: int
    hostname: str
    pid: int
    state: str
    queue: int
    last_seen: float
    memory: int | None = None
    cpu: float | None = None
    why: str = ""
    #: the batch job it runs in, as its launcher told it ("slurm 1234_3"; "" when started
    #: by hand or locally)
    job: str = ""


@dataclasses.dataclass(frozen=True)
class TaskEvent:
    """A request an engine finished: which engine ran what, when it ended, for how long."""

    seq: int
    engine: int
    kind: str
    id: str
    done: float
    took: float
    status: str


@dataclasses.dataclass(frozen=True)
class ErrorEvent:
    """A request that raised on an engine, with the engine's traceback."""

    seq: int
    engine: int
    kind: str
    id: str
    time: float
    ename: str
    evalue: str
    traceback: str


@dataclasses.dataclass(frozen=True)
class ClientRow:
    """A connected client: its session name and the seconds since its latest request."""

    session: str
    idle: float


@dataclasses.dataclass(frozen=True)
class ClusterSnapshot:
    """The state of one cluster at wall time ``taken`` (``answering`` False: the controller
    did not answer this poll, and the rest is what the previous poll saw)."""

    taken: float
    profile: str
    controller_url: str
    answering: bool
    engines: tuple[EngineRow, ...] = ()
    clients: tuple[ClientRow, ...] = ()
    queued: int = 0
    waiting: int = 0
    assigned: int = 0
    store_records: int = 0
    store_bytes: int = 0
    store_file_bytes: int = 0
    finished: int = 0
    errors_total: int = 0
    #: (wall time, requests finished per second) over the last minutes
    throughput: tuple[tuple[float, float], ...] = ()
    #: (wall time, requests waiting: in the task queue and in engines' queues)
    backlog: tuple[tuple[float, int], ...] = ()
    #: the newest finished requests, oldest first
    events: tuple[TaskEvent, ...] = ()
    errors: tuple[ErrorEvent, ...] = ()
    problem: str = ""

    @property
    def live_engines(self) -> tuple[EngineRow, ...]:
        return tuple(e for e in self.engines if e.state in ("idle", "busy"))

    @property
    def rate(self) -> float:
        """Requests finished per second at the latest poll."""
        return self.throughput[-1][1] if self.throughput else 0.0

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict of everything (the dashboard's wire format)."""
        data = dataclasses.asdict(self)
        data["throughput"] = [list(p) for p in self.throughput]
        data["backlog"] = [list(p) for p in self.backlog]
        return data
