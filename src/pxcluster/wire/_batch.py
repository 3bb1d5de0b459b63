"""Wire layer: several TASK (or REPLY) messages carried as one BATCH message.

A BATCH is framed like any message, with one payload frame at most::

    DELIMITER  signature  batch header  [the entries' buffers, one after another]

and its header's content is ``{"entries": [header of entry 0, header of entry 1, ...]}``:
each entry's own encoded header, the exact bytes a lone message of it would carry. Each
entry header lists the sizes (``b``) and SHA-256 digests (``d``) of its buffers; the one
payload frame holds all of them back to back, and a receiver cuts it into views (no copy).
One frame, not one per buffer: ZeroMQ's cost is per frame as much as per message.

The one signature covers the batch header, which holds every entry's header, which holds
its buffers' digests: one HMAC authenticates the lot, and every entry keeps its exact header
bytes, so a router forwards an entry (alone or in another batch) and the record store keeps
it as if it had come alone. The batch header gives only the payload frame's size: the
receiver that unpickles an entry checks that entry's digests (``check_digests`` on it), as
for a lone message.

Freshness: the batch id goes through the receiver's replay guard like any message id; its
entries cannot be replayed on their own (an entry header is not signed by itself), and a
replayed batch is refused by its id, so entry ids are not checked again.

Only TASK and REPLY travel in batches (``BATCHABLE``), and only small ones (``batchable``):
senders batch what queued up at once (``MAX_ENTRIES`` at most) and send a lone message as
it is, so a lone task pays nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import msgpack

from pxcluster._buffers import Buffer
from pxcluster._errors import ContentMismatch, RemoteProtocolError
from pxcluster.wire._framing import Message, _check_content, _message_from
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
    """The header and payload frame of a BATCH of ``entries`` (each: its encoded header and
    its buffers), to be signed and sent with ``encode_raw``."""
    headers: list[bytes] = []
    buffers: list[Buffer] = []
    for header, frames in entries:
        headers.append(header)
        buffers.extend(frames)
    head: dict[str, object] = {
        "t": int(MsgType.BATCH),
        "i": msg_id,
        "ts": time.time(),
        "c": {"entries": headers},
    }
    if session:
        head["n"] = session
    payload: list[Buffer] = []
    if buffers:
        joined = b"".join(buffers)
        head["b"] = [len(joined)]
        payload = [joined]
    return msgpack.packb(head, use_bin_type=True), payload


def unbatch(batch: Message) -> tuple[list[Message], list[RemoteProtocolError]]:
    """The entries of a verified BATCH, each checked as ``decode`` checks a message (header
    fields, buffer sizes, content schema), and what was wrong with those that were not fit.

    A bad entry does not spoil the others: the receiver acts on the good ones and answers
    or logs the bad ones (a ``ContentMismatch`` names the entry's id and parent). An entry
    that does not parse, or whose buffer sizes overrun the payload, ends the batch there
    (where the buffers of what follows begin is unknown).

    Raises:
        RemoteProtocolError: the batch's own layout is wrong (more than one payload frame,
            or bytes left over).
    """
    if len(batch.buffers) > 1:
        raise RemoteProtocolError("a batch has more than one payload frame")
    payload = memoryview(batch.buffers[0]) if batch.buffers else memoryview(b"")
    entries: list[Message] = []
    problems: list[RemoteProtocolError] = []
    at, end = 0, len(payload)
    headers = batch.content["entries"]  # list[bytes]: the schema checked it
    unpackb = msgpack.unpackb
    for index, header in enumerate(headers):
        try:
            head = unpackb(header, raw=False)
        except Exception:  # msgpack raises several types on malformed input
            head = None
        sizes = head.get("b", []) if type(head) is dict else None
        frames: list[Buffer] = []
        fits = type(sizes) is list
        if fits:  # cut its buffers from the payload, each size checked on the way
            for size in sizes:  # type: ignore[union-attr]  # a list: checked above
                if type(size) is not int or size < 0 or at + size > end:
                    fits = False
                    break
                frames.append(payload[at : at + size])
                at += size
        if not fits:
            # where its buffers end is unknown, so no entry after it can be placed
            problems.append(
                RemoteProtocolError(
                    f"entry {index} of a batch does not parse or its buffers do not fit; "
                    f"dropped it and the {len(headers) - index - 1} after it"
                )
            )
            break
        try:
            entry = _message_from(head, header, frames, check_sizes=False)  # cut to size
            _check_content(entry)
        except RemoteProtocolError as exc:
            problems.append(exc)
            continue
        if entry.type not in BATCHABLE:
            problems.append(
                ContentMismatch(f"{entry.type.name} cannot travel in a batch", entry.id)
            )
            continue
        entries.append(entry)
    else:
        if at != len(payload):
            raise RemoteProtocolError("a batch's payload is longer than its entries' buffers")
    return entries, problems


def batchable(buffers: Sequence[Buffer]) -> bool:
    """True if a message with these payload frames is small enough to go in a batch."""
    size = 0
    for b in buffers:
        size += len(b) if type(b) is bytes else memoryview(b).nbytes
    return size <= SMALL_ENTRY
