"""Wire layer: several TASK (or REPLY) messages carried as one BATCH message.

A BATCH is framed like any message::

    DELIMITER  signature  batch header  payload frames of entry 0, of entry 1, ...

and its header's content is ``{"entries": [header of entry 0, ...], "parts": [n0, ...]}``:
each entry's own encoded header (the exact bytes a lone message of it would carry), and how
many of the payload frames are its. The one signature covers the batch header, which holds
every entry's header, which holds the size and SHA-256 digest of each of that entry's
buffers: one HMAC authenticates the lot, and every entry keeps its exact header bytes, so a
router forwards an entry (alone or in another batch) and the record store keeps it as if it
had come alone. The batch header lists every payload frame's size (``b``, the framing's own
check) but no digests: the receiver that unpickles an entry checks that entry's
(``check_digests`` on it), as for a lone message.

Freshness: the batch id goes through the receiver's replay guard like any message id; its
entries cannot be replayed on their own (an entry header is not signed by itself), and a
replayed batch is refused by its id, so entry ids are not checked again.

Only TASK and REPLY travel in batches (``BATCHABLE``): senders batch what queued up at once
(``MAX_ENTRIES`` at most) and send a lone message as it is, so a lone task pays nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import msgpack

from pxcluster._buffers import Buffer
from pxcluster._errors import ContentMismatch, RemoteProtocolError
from pxcluster.wire._framing import Message, unpack_header
from pxcluster.wire._types import MsgType

#: Message types a BATCH may carry.
BATCHABLE = frozenset({MsgType.TASK, MsgType.REPLY})
#: Entries in one batch at most (senders split bigger runs): bounds the work one message
#: makes a receiver do before its loop turns again.
MAX_ENTRIES = 64
#: Payload bytes of one entry at most for it to be batched (a big one goes alone: batching
#: saves per-message costs, which do not matter next to a big payload's).
SMALL_ENTRY = 64 * 1024


def pack_batch(
    msg_id: str, entries: Sequence[tuple[bytes, Sequence[Buffer]]], session: str = ""
) -> tuple[bytes, list[Buffer]]:
    """The header and payload frames of a BATCH of ``entries`` (each: its encoded header and
    its buffers), to be signed and sent with ``encode_raw``."""
    headers: list[bytes] = []
    parts: list[int] = []
    buffers: list[Buffer] = []
    for header, frames in entries:
        headers.append(header)
        parts.append(len(frames))
        buffers.extend(frames)
    head: dict[str, object] = {
        "t": int(MsgType.BATCH),
        "i": msg_id,
        "ts": time.time(),
        "c": {"entries": headers, "parts": parts},
    }
    if session:
        head["n"] = session
    if buffers:
        head["b"] = [len(b) if type(b) is bytes else memoryview(b).nbytes for b in buffers]
    return msgpack.packb(head, use_bin_type=True), buffers


def unbatch(batch: Message) -> tuple[list[Message], list[RemoteProtocolError]]:
    """The entries of a verified BATCH, each checked as ``decode`` checks a message (header
    fields, buffer sizes, content schema), and what was wrong with those that were not fit.

    A bad entry does not spoil the others: the receiver acts on the good ones and answers
    or logs the bad ones (a ``ContentMismatch`` names the entry's id and parent).

    Raises:
        RemoteProtocolError: the batch's own layout is wrong (counts that do not add up).
    """
    headers = batch.content["entries"]  # types checked by the schema: list[bytes]
    parts = batch.content["parts"]  # list[int]
    if len(headers) != len(parts) or any(n < 0 for n in parts):
        raise RemoteProtocolError("a batch's entries and parts do not match")
    if sum(parts) != len(batch.buffers):
        raise RemoteProtocolError("a batch's parts do not add up to its payload frames")
    entries: list[Message] = []
    problems: list[RemoteProtocolError] = []
    at = 0
    for header, count in zip(headers, parts, strict=True):
        frames = batch.buffers[at : at + count]
        at += count
        try:
            entry = unpack_header(header, frames)
        except RemoteProtocolError as exc:
            problems.append(exc)
            continue
        if entry.type not in BATCHABLE:
            problems.append(
                ContentMismatch(f"{entry.type.name} cannot travel in a batch", entry.id)
            )
            continue
        entries.append(entry)
    return entries, problems


def batchable(buffers: Sequence[Buffer]) -> bool:
    """True if a message with these payload frames is small enough to go in a batch."""
    size = 0
    for b in buffers:
        size += len(b) if type(b) is bytes else memoryview(b).nbytes
    return size <= SMALL_ENTRY
