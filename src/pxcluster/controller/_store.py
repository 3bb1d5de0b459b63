"""Controller layer: the record store of finished tasks (embedded SQLite in the profile).

Every finished task is recorded with its ids, engine, times, status and its result message
(header and frames, the frames only up to ``result_cap`` bytes), so a second client, or the
same one after reconnecting, or after the controller restarted, can fetch it by id.

Writes are batched: ``add`` keeps the record in a bounded in-memory cache and a pending
list, and ``flush`` (called by the server loop a few times a second and at shutdown) writes
the pending ones in one transaction. A retention policy (a count and a byte budget) deletes
the oldest records, so a controller that runs for weeks stays bounded in memory and disk.

Failures of the disk (full, the file locked by another process, unwritable, gone) never
raise out of the store: computing goes on. A failed write keeps its records pending (and
readable from memory) and is tried again with a growing pause (``_RETRY_FIRST`` to
``_RETRY_MAX`` seconds); the failure is in ``stats()`` as ``store_error``, which clients and
``pxcluster list`` show. Only when the pending records outgrow ``pending_bytes`` /
``pending_records`` are the oldest given up: their ids are kept (``lost``), and a client
asking for one is told its result could not be kept. A database that cannot be opened at
all is replaced by one in memory, with the error reported the same way.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import msgpack

from pxcluster._buffers import Buffer

log = logging.getLogger("pxcluster.controller")

#: Pause after a failed write, doubled at each failure up to the maximum (seconds).
_RETRY_FIRST = 0.5
_RETRY_MAX = 30.0
#: Ids of given-up records remembered at most (~100 bytes each).
_LOST_IDS = 1_000_000


#: ``seq`` orders records by when they were written (retention deletes the oldest first).
#: Without AUTOINCREMENT, SQLite gives a new row the highest seq + 1, which keeps that
#: order among the rows that exist, and spares a write to its sqlite_sequence table per
#: insert (a tenth of a record's cost). Files made with AUTOINCREMENT work as before.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY,
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


class TaskRecord(NamedTuple):
    """A finished task and its result message (``frames`` None: result over the cap).

    A named tuple (one is made per task on the hot path: cheaper than a frozen dataclass,
    as immutable); ``nbytes`` is counted once, when the record is made.
    """

    id: str
    session: str
    engine: int
    submitted: float
    completed: float
    status: int
    header: bytes
    frames: list[bytes] | None
    nbytes: int  # header and kept frames: what the record weighs in the cache and on disk


@dataclasses.dataclass(frozen=True)
class Retention:
    """How much the store keeps: records, bytes on disk, and bytes of one result."""

    max_records: int = 100_000
    max_bytes: int = 256 * 1024 * 1024
    result_cap: int = 16 * 1024 * 1024
    cache_records: int = 10_000
    cache_bytes: int = 64 * 1024 * 1024
    #: Records waiting for a disk that fails, at most (then the oldest are given up).
    pending_records: int = 200_000
    pending_bytes: int = 256 * 1024 * 1024


class RecordStore:
    """Finished tasks, in SQLite with a write-behind cache; see the module docstring."""

    def __init__(
        self,
        path: Path | str,
        retention: Retention | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.retention = retention or Retention()
        self._clock = clock
        self.error = ""  # the latest failure of the disk, "" while writes succeed
        self._lasting_error = ""  # the database could not be opened: memory only, for good
        self._retry_at = 0.0
        self._retry_pause = _RETRY_FIRST
        self._pending: list[TaskRecord] = []
        self._pending_bytes = 0
        self._cache: collections.OrderedDict[str, TaskRecord] = collections.OrderedDict()
        self._cache_bytes = 0
        #: Ids of records given up before they were written (the disk failed too long).
        self.lost: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._count, self._bytes = 0, 0
        try:
            self._db = self._open(str(path))
        except sqlite3.Error as exc:
            self._failed("open", exc)
            log.error("results are kept in memory only, not in %s", path)
            self._lasting_error = self.error
            self._db = self._open(":memory:")
        self._recount()

    @staticmethod
    def _open(path: str) -> sqlite3.Connection:
        # timeout 0: a database locked by another process fails a write at once (it is
        # tried again later) instead of stalling the controller's loop for seconds
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
        except sqlite3.Error:
            db.close()
            raise
        return db

    def _failed(self, what: str, exc: BaseException) -> None:
        text = f"record store {what} failed: {exc}"
        if text != self.error:
            log.error("%s; computing goes on, results are kept in memory meanwhile", text)
        self.error = text
        self._retry_at = self._clock() + self._retry_pause
        self._retry_pause = min(self._retry_pause * 2, _RETRY_MAX)

    def make_record(
        self,
        task_id: str,
        session: str,
        engine: int,
        submitted: float,
        completed: float,
        status: int,
        header: bytes,
        buffers: Sequence[Buffer],
    ) -> TaskRecord:
        """A record, with the result frames copied out only when they fit under the cap."""
        size = 0
        for b in buffers:
            size += len(b) if type(b) is bytes else memoryview(b).nbytes
        kept = size <= self.retention.result_cap
        frames = [bytes(b) for b in buffers] if kept else None
        nbytes = len(header) + (size if kept else 0)
        return TaskRecord(
            task_id, session, engine, submitted, completed, status, header, frames, nbytes
        )

    def add(self, record: TaskRecord) -> None:
        """Record a finished task (written to disk at the next ``flush``)."""
        self._pending.append(record)
        self._pending_bytes += record.nbytes
        # and into the cache, which serves reads of recent records without the disk
        cache = self._cache
        if record.id in cache:  # written again (rare): its old size leaves the count
            self._cache_bytes -= cache.pop(record.id).nbytes
        cache[record.id] = record
        self._cache_bytes += record.nbytes
        limit = self.retention
        while cache and (len(cache) > limit.cache_records or self._cache_bytes > limit.cache_bytes):
            _, dropped = cache.popitem(last=False)
            self._cache_bytes -= dropped.nbytes

    def get(self, task_id: str) -> TaskRecord | None:
        """The record of a finished task, or None if it is unknown (or was pruned/cleared)."""
        record = self._cache.get(task_id)
        if record is not None:
            return record
        if self.error and self._pending:  # an unwritten record that left the cache
            for pending in reversed(self._pending):
                if pending.id == task_id:
                    return pending
        try:
            row = self._db.execute(
                "SELECT id, session, engine, submitted, completed, status, header, frames, "
                "nbytes FROM tasks WHERE id = ?",
                (task_id,),
            ).fetchone()
        except sqlite3.Error as exc:
            self._failed("read", exc)
            return None
        if row is None:
            return None
        frames = msgpack.unpackb(row[7]) if row[7] is not None else None
        return TaskRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6], frames, row[8])

    def flush(self, force: bool = False) -> int:
        """Write pending records in one transaction, then apply retention; returns how many.

        Never raises: a failed write keeps the records pending until a later try (after a
        pause, unless ``force``), see the module docstring.
        """
        if not self._pending:
            return 0
        if self.error and not force and self._clock() < self._retry_at:
            self._bound_pending()
            return 0
        packb = msgpack.Packer().pack  # one packer for the lot (packb makes one per call)
        rows = [
            (
                r.id,
                r.session,
                r.engine,
                r.submitted,
                r.completed,
                r.status,
                r.header,
                None if r.frames is None else packb(r.frames),
                r.nbytes,
            )
            for r in self._pending
        ]
        try:
            with self._db:
                self._db.execute("BEGIN")
                cur = self._db.executemany(
                    "INSERT OR REPLACE INTO tasks (id, session, engine, submitted, completed, "
                    "status, header, frames, nbytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
        except sqlite3.Error as exc:
            self._failed("write", exc)
            self._bound_pending()
            return 0
        if self.error != self._lasting_error:
            log.warning("record store writes again (%d records were waiting)", len(rows))
            self.error, self._retry_pause = self._lasting_error, _RETRY_FIRST
        self._count += cur.rowcount if cur.rowcount > 0 else len(rows)
        self._bytes += self._pending_bytes  # the sum of the written records' nbytes
        self._pending, self._pending_bytes = [], 0
        try:
            self._prune()
        except sqlite3.Error as exc:
            self._failed("prune", exc)
        return len(rows)

    def _bound_pending(self) -> None:
        """Give up the oldest unwritten records beyond the pending budget (the disk has
        failed for long): remember their ids, so clients asking for them are told."""
        limit = self.retention
        drop = 0
        while drop < len(self._pending) and (
            len(self._pending) - drop > limit.pending_records
            or self._pending_bytes > limit.pending_bytes
        ):
            self._pending_bytes -= self._pending[drop].nbytes
            drop += 1
        if not drop:
            return
        for record in self._pending[:drop]:
            self.lost[record.id] = None
            if len(self.lost) > _LOST_IDS:
                self.lost.popitem(last=False)
        del self._pending[:drop]
        log.error("record store: gave up %d unwritten records (%s)", drop, self.error)

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
        self.flush(force=True)
        gone = [k for k, r in self._cache.items() if r.session == session]
        for key in gone:
            self._cache_bytes -= self._cache.pop(key).nbytes
        kept = [r for r in self._pending if r.session != session]
        self._pending_bytes -= sum(r.nbytes for r in self._pending if r.session == session)
        self._pending[:] = kept
        try:
            with self._db:
                self._db.execute("BEGIN")
                cur = self._db.execute("DELETE FROM tasks WHERE session = ?", (session,))
            self._recount()
        except sqlite3.Error as exc:
            self._failed("delete", exc)
            return len(gone)
        return max(cur.rowcount, len(gone))

    def stats(self) -> dict[str, int | str]:
        """How much the store holds (pending writes included), and its failure if it fails."""
        out: dict[str, int | str] = {
            "records": self._count + len(self._pending),
            "bytes": self._bytes,
        }
        if self.error:
            out["store_error"] = self.error
            out["unwritten"] = len(self._pending)
        if self.lost:
            out["not_stored"] = len(self.lost)
        return out

    def close(self) -> None:
        """Flush (one last try) and close the database; never raises."""
        self.flush(force=True)
        if self._pending:
            log.error(
                "record store: %d finished tasks could not be written (%s)",
                len(self._pending),
                self.error,
            )
        try:
            self._db.close()
        except sqlite3.Error as exc:
            log.error("record store close failed: %s", exc)
