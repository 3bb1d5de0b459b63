"""Controller layer: the record store of finished tasks (embedded SQLite in the profile).

Every finished task is recorded with its ids, engine, times, status and its result message
(header and frames, the frames only up to ``result_cap`` bytes), so a second client, or the
same one after reconnecting, or after the controller restarted, can fetch it by id.

Writes are batched: ``add`` keeps the record in a bounded in-memory cache and a pending
list, and ``flush`` (called by the server loop a few times a second and at shutdown) writes
the pending ones in one transaction. A retention policy (a count and a byte budget) deletes
the oldest records, so a controller that runs for weeks stays bounded in memory and disk.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import sqlite3
from pathlib import Path

import msgpack

from pxcluster._buffers import Buffer

log = logging.getLogger("pxcluster.controller")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    session TEXT NOT NULL,
    engine INTEGER NOT NULL,
    submitted REAL NOT NULL,
    completed REAL NOT NULL,
    status INTEGER NOT NULL,
    header BLOB NOT NULL,
    frames BLOB,
    nbytes INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_session ON tasks (session);
"""


@dataclasses.dataclass(frozen=True)
class TaskRecord:
    """A finished task and its result message (``frames`` None: result over the cap)."""

    id: str
    session: str
    engine: int
    submitted: float
    completed: float
    status: int
    header: bytes
    frames: list[bytes] | None

    @property
    def nbytes(self) -> int:
        return len(self.header) + sum(len(f) for f in self.frames or ())


@dataclasses.dataclass(frozen=True)
class Retention:
    """How much the store keeps: records, bytes on disk, and bytes of one result."""

    max_records: int = 100_000
    max_bytes: int = 256 * 1024 * 1024
    result_cap: int = 16 * 1024 * 1024
    cache_records: int = 10_000
    cache_bytes: int = 64 * 1024 * 1024


class RecordStore:
    """Finished tasks, in SQLite with a write-behind cache; see the module docstring."""

    def __init__(self, path: Path | str, retention: Retention | None = None) -> None:
        self.retention = retention or Retention()
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        count, nbytes = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(nbytes), 0) FROM tasks"
        ).fetchone()
        self._count, self._bytes = int(count), int(nbytes)
        self._pending: list[TaskRecord] = []
        self._cache: collections.OrderedDict[str, TaskRecord] = collections.OrderedDict()
        self._cache_bytes = 0

    def make_record(
        self,
        task_id: str,
        session: str,
        engine: int,
        submitted: float,
        completed: float,
        status: int,
        header: bytes,
        buffers: list[Buffer] | tuple[Buffer, ...],
    ) -> TaskRecord:
        """A record, with the result frames copied out only when they fit under the cap."""
        size = sum(memoryview(b).nbytes for b in buffers)
        frames = [bytes(b) for b in buffers] if size <= self.retention.result_cap else None
        return TaskRecord(task_id, session, engine, submitted, completed, status, header, frames)

    def add(self, record: TaskRecord) -> None:
        """Record a finished task (written to disk at the next ``flush``)."""
        self._pending.append(record)
        self._remember(record)

    def _remember(self, record: TaskRecord) -> None:
        old = self._cache.pop(record.id, None)
        if old is not None:
            self._cache_bytes -= old.nbytes
        self._cache[record.id] = record
        self._cache_bytes += record.nbytes
        limit = self.retention
        while self._cache and (
            len(self._cache) > limit.cache_records or self._cache_bytes > limit.cache_bytes
        ):
            _, dropped = self._cache.popitem(last=False)
            self._cache_bytes -= dropped.nbytes

    def get(self, task_id: str) -> TaskRecord | None:
        """The record of a finished task, or None if it is unknown (or was pruned/cleared)."""
        record = self._cache.get(task_id)
        if record is not None:
            return record
        row = self._db.execute(
            "SELECT id, session, engine, submitted, completed, status, header, frames "
            "FROM tasks WHERE id = ?",
            (task_id,),
        ).fetchone()
        if row is None:
            return None
        frames = msgpack.unpackb(row[7]) if row[7] is not None else None
        return TaskRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6], frames)

    def flush(self) -> int:
        """Write pending records in one transaction, then apply retention; returns how many."""
        if not self._pending:
            return 0
        rows = [
            (
                r.id,
                r.session,
                r.engine,
                r.submitted,
                r.completed,
                r.status,
                r.header,
                msgpack.packb(r.frames) if r.frames is not None else None,
                r.nbytes,
            )
            for r in self._pending
        ]
        self._pending = []
        with self._db:
            self._db.execute("BEGIN")
            cur = self._db.executemany(
                "INSERT OR REPLACE INTO tasks (id, session, engine, submitted, completed, "
                "status, header, frames, nbytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        self._count += cur.rowcount if cur.rowcount > 0 else len(rows)
        self._bytes += sum(row[8] for row in rows)
        self._prune()
        return len(rows)

    def _prune(self) -> None:
        limit = self.retention
        if self._count <= limit.max_records and self._bytes <= limit.max_bytes:
            return
        excess = max(self._count - limit.max_records, 0, self._count // 10)
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "DELETE FROM tasks WHERE seq IN (SELECT seq FROM tasks ORDER BY seq LIMIT ?)",
                (excess,),
            )
        self._recount()
        log.info("record store pruned to %d records (%d bytes)", self._count, self._bytes)

    def _recount(self) -> None:
        count, nbytes = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(nbytes), 0) FROM tasks"
        ).fetchone()
        self._count, self._bytes = int(count), int(nbytes)

    def clear_session(self, session: str) -> int:
        """Forget every finished task of one client session; returns how many."""
        self.flush()
        gone = [k for k, r in self._cache.items() if r.session == session]
        for key in gone:
            self._cache_bytes -= self._cache.pop(key).nbytes
        with self._db:
            self._db.execute("BEGIN")
            cur = self._db.execute("DELETE FROM tasks WHERE session = ?", (session,))
        self._recount()
        return max(cur.rowcount, len(gone))

    def stats(self) -> dict[str, int]:
        """How much the store holds (pending writes included)."""
        return {"records": self._count + len(self._pending), "bytes": self._bytes}

    def close(self) -> None:
        """Flush and close the database."""
        self.flush()
        self._db.close()
