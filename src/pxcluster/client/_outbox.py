"""Client layer: tasks that queue up in a client, sent to the controller as BATCH messages.

A task submitted while nothing else of this connection is in flight goes at once, alone, as
it always did: a lone task waits for nothing. One submitted while others are in flight
would only wait behind them in the controller anyway, so it goes into this outbox instead,
and the client's I/O thread sends what has gathered there (``take``) ``GATHER_FOR`` seconds
later, or the submitting thread does once a batch is full or when it waits for results:
several tasks per message, signed once (``wire/_batch.py``). A ``map`` puts all its chunks
in at once. Anything sent on the connection directly sends the outbox first, so messages
keep the order they were made in (a TASK_ABORT never overtakes its task, nor a task one it
runs ``after``).

Not thread-safe: ``ClientCore`` calls it under its send lock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pxcluster._buffers import Buffer
from pxcluster.wire import MAX_ENTRIES, Signer, batchable, encode_raw, pack_batch

#: Requests of the connection in flight from which a new task is batched rather than sent
#: at once (its own pending result counts as one).
BATCH_FROM = 3
#: Seconds the I/O thread lets tasks gather in the outbox before it sends them (unless a
#: batch fills first, or the caller waits for results: both send at once). Only tasks
#: submitted behind others in flight wait this long, and those wait in the controller anyway.
GATHER_FOR = 0.002


class TaskOutbox:
    """Tasks waiting to go to the controller together; see the module docstring."""

    def __init__(self, signer: Signer, new_id: Callable[[], str], session: str) -> None:
        self._signer = signer
        self._new_id = new_id
        self._session = session
        self._queued: list[tuple[bytes, Sequence[Buffer]]] = []

    def __len__(self) -> int:
        return len(self._queued)

    def add(self, header: bytes, buffers: Sequence[Buffer]) -> bool:
        """Queue one encoded task; True if the outbox was empty (the I/O thread must be told)."""
        self._queued.append((header, buffers))
        return len(self._queued) == 1

    def clear(self) -> None:
        """Drop what is queued (the connection broke: those tasks' calls have failed)."""
        self._queued = []

    def take(self) -> list[list[Buffer]]:
        """Signed messages for everything queued, in order: BATCHes of up to ``MAX_ENTRIES``
        small tasks, big ones (and a lone one) as plain TASKs. Empties the outbox."""
        queued, self._queued = self._queued, []
        out: list[list[Buffer]] = []
        run: list[tuple[bytes, Sequence[Buffer]]] = []
        for header, buffers in queued:
            if batchable(buffers):
                run.append((header, buffers))
                if len(run) == MAX_ENTRIES:
                    out.append(self._sign(run))
                    run = []
                continue
            if run:
                out.append(self._sign(run))
                run = []
            out.append(encode_raw(header, buffers, self._signer))
        if run:
            out.append(self._sign(run))
        return out

    def _sign(self, run: list[tuple[bytes, Sequence[Buffer]]]) -> list[Buffer]:
        if len(run) == 1:
            return encode_raw(run[0][0], run[0][1], self._signer)
        header, buffers = pack_batch(self._new_id(), run, self._session)
        return encode_raw(header, buffers, self._signer)
