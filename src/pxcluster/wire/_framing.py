"""Wire layer: a message as ZeroMQ frames, and back.

Frames on the wire::

    [routing ids ...] DELIMITER  signature  header  buffer0  buffer1 ...

The header is a msgpack map with short keys (the hot path parses one per message):
``t`` type, ``i`` id, ``n`` session, ``ts`` send time, ``c`` small content, and where they
apply ``p`` parent id, ``g`` targets, ``e`` engine id, ``s`` status, and ``b`` and ``d`` the
size and SHA-256 digest of each buffer. The HMAC signature covers the header, so through the
digests it covers the buffers too, while a router can forward a 100 MB payload after
checking only the header. Buffers are opaque here: pickles and out-of-band pickle buffers
from ``serialize``, which the controller passes along without looking inside.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Sequence
from typing import Any

import msgpack

from pxcluster._buffers import Buffer
from pxcluster._errors import ContentMismatch, LocalProtocolError, RemoteProtocolError
from pxcluster.wire._schemas import content_problem
from pxcluster.wire._signing import RecentIds, ReplayGuard, Signer
from pxcluster.wire._types import MsgType, Status

DELIMITER = b"<PX|MSG>"
#: A peer may send from a second socket whose identity is its first one's plus this suffix
#: (the thread that makes a request sends it itself, without a hand-off to the I/O thread);
#: the controller answers such messages on the first socket. See ``sender_identity``.
SENDER_SUFFIX = b"/send"

_packer_options: dict[str, Any] = {"use_bin_type": True}


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """One protocol message: a header's fields and the payload buffers.

    ``header`` keeps the exact encoded header bytes of a decoded message so that a router can
    forward it without packing it again.
    """

    type: MsgType
    id: str
    content: dict[str, Any] = dataclasses.field(default_factory=dict)
    buffers: Sequence[Buffer] = ()
    parent: str = ""
    targets: list[int] | None = None
    engine: int = -1
    status: Status = Status.OK
    session: str = ""
    ts: float = 0.0
    header: bytes = dataclasses.field(default=b"", compare=False, repr=False)
    #: The buffers' SHA-256 digests from a decoded header (checked by ``check_digests``).
    digests: Sequence[object] = dataclasses.field(default=(), compare=False, repr=False)


# A decoded message is made as a ``_Decoding`` (the same fields and slots, not frozen, so
# its ``__init__`` stores each field directly) and then becomes a Message by assignment to
# ``__class__``, which Python allows between classes of the same slots: a frozen
# dataclass's own ``__init__`` sets each field through ``object.__setattr__``, 3.5x the
# instructions, and the controller makes two messages per task (its TASK and its REPLY).
_Decoding = dataclasses.make_dataclass(
    "_Decoding", [(field.name, Any) for field in dataclasses.fields(Message)], slots=True
)


def _header_dict(msg: Message) -> dict[str, Any]:
    # Every message says when it was sent: receivers refuse replays older than their window.
    head: dict[str, Any] = {"t": int(msg.type), "i": msg.id, "ts": msg.ts or time.time()}
    if msg.session:
        head["n"] = msg.session
    if msg.content:
        head["c"] = msg.content
    if msg.parent:
        head["p"] = msg.parent
    if msg.targets is not None:
        head["g"] = msg.targets
    if msg.engine >= 0:
        head["e"] = msg.engine
    if msg.status != Status.OK:
        head["s"] = int(msg.status)
    if msg.buffers:
        head["b"] = [memoryview(b).nbytes for b in msg.buffers]
        head["d"] = [hashlib.sha256(b).digest() for b in msg.buffers]
    return head


def pack_header(msg: Message) -> bytes:
    """The encoded header of ``msg`` (what ``encode`` signs and sends).

    Text that UTF-8 cannot carry (a lone surrogate, e.g. a file name that was not UTF-8,
    printed by user code) is sent with its surrogates written as ``\\udcff`` escapes,
    rather than failing the whole reply.
    """
    head = _header_dict(msg)
    try:
        return msgpack.packb(head, **_packer_options)  # type: ignore[no-any-return]
    except UnicodeEncodeError:
        try:
            return msgpack.packb(_escape_surrogates(head), **_packer_options)  # type: ignore[no-any-return]
        except (TypeError, ValueError, OverflowError) as exc:
            raise LocalProtocolError(f"cannot encode header of {msg.type.name}: {exc}") from exc
    except (TypeError, ValueError, OverflowError) as exc:
        raise LocalProtocolError(f"cannot encode header of {msg.type.name}: {exc}") from exc


def _escape_surrogates(value: Any) -> Any:
    """``value`` with every string made encodable (only on the rare failure path)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_escape_surrogates(k): _escape_surrogates(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_escape_surrogates(v) for v in value]
    return value


def encode(msg: Message, signer: Signer) -> list[Buffer]:
    """Frames for ``msg`` (without routing ids), signed with ``signer``.

    Raises:
        LocalProtocolError: the content holds something msgpack cannot carry.
    """
    return encode_raw(pack_header(msg), msg.buffers, signer)


def encode_raw(header: bytes, buffers: Sequence[Buffer], signer: Signer) -> list[Buffer]:
    """Frames from an already-encoded header; used to forward a message under another key."""
    signature = signer.sign([header])  # the header holds each buffer's size and digest
    return [DELIMITER, signature, header, *buffers]


def sender_identity(identity: bytes) -> bytes:
    """The identity of the send-only socket that goes with the socket ``identity``."""
    return identity + SENDER_SUFFIX


def reply_identity(identity: bytes) -> bytes:
    """Where to answer a message that came from ``identity``: a sender socket's partner."""
    return identity.removesuffix(SENDER_SUFFIX)


def split_routing(frames: Sequence[Buffer]) -> tuple[list[bytes], Sequence[Buffer]]:
    """Split ``frames`` received on a ROUTER into routing ids and the message proper.

    Raises:
        RemoteProtocolError: there is no delimiter frame.
    """
    size = len(DELIMITER)
    for index, frame in enumerate(frames):
        if memoryview(frame).nbytes == size and bytes(frame) == DELIMITER:
            return [bytes(f) for f in frames[:index]], frames[index:]
    raise RemoteProtocolError("no delimiter frame")


def _field(head: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = head.get(key, default)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise RemoteProtocolError(f"header field {key!r} is missing or has the wrong type")
    return value


# Enum lookups by value without the Enum constructor's cost (per message, on the hot path).
_TYPES: dict[int, MsgType] = {int(t): t for t in MsgType}
_STATUSES: dict[int, Status] = {int(s): s for s in Status}


def unpack_header(header: bytes, buffers: Sequence[Buffer], check_sizes: bool = True) -> Message:
    """A Message from an encoded header that was already authenticated (nested in a verified
    message, e.g. a stored task result), checked like ``decode`` checks it.

    Raises:
        RemoteProtocolError: the header does not parse or its fields are wrong.
    """
    try:
        head = msgpack.unpackb(header, raw=False)
    except Exception as exc:  # msgpack raises several types on malformed input
        raise RemoteProtocolError(f"header does not parse: {exc}") from exc
    msg = _message_from(head, header, buffers, check_sizes)
    _check_content(msg)
    return msg


def _check_content(msg: Message) -> None:
    """Raise ContentMismatch if ``msg``'s content does not fit its type (``_schemas``)."""
    problem = content_problem(msg.type, msg.content)
    if problem is not None:
        raise ContentMismatch(problem, msg.id, msg.parent)


_ABSENT: Any = object()


def _message_from(
    head: object, header: bytes, buffers: Sequence[Buffer], check_sizes: bool = True
) -> Message:
    """Build a Message from a parsed header, checking the type of every field it reads.

    The common case (every field present has exactly its type) takes one pass of ``get``
    and ``type() is`` checks; anything else goes the field-by-field way, which names the
    field that is wrong.
    """
    if type(head) is dict:
        get = head.get
        kind, msg_id, content, parent = get("t"), get("i"), get("c", _ABSENT), get("p", "")
        targets, engine, status = get("g", _ABSENT), get("e", -1), get("s", 0)
        session, ts, sizes, digests = get("n", ""), get("ts", 0.0), get("b", ()), get("d", ())
        msg_type = _TYPES.get(kind) if type(kind) is int else None
        state = _STATUSES.get(status) if type(status) is int else None
        if (
            msg_type is not None
            and state is not None
            and type(msg_id) is str
            and (content is _ABSENT or type(content) is dict)
            and type(parent) is str
            and (targets is _ABSENT or (type(targets) is list and _all_ints(targets)))
            and type(engine) is int
            and type(session) is str
            and type(ts) in (float, int)
            and type(sizes) in (list, tuple)
            and type(digests) in (list, tuple)
            and (not check_sizes or (len(sizes) == len(buffers) and _sizes_match(buffers, sizes)))
        ):
            msg = _Decoding(
                msg_type,
                msg_id,
                {} if content is _ABSENT else content,
                buffers,
                parent,
                None if targets is _ABSENT else targets,
                engine,
                state,
                session,
                ts,
                header,
                digests,
            )
            msg.__class__ = Message  # see ``_Decoding``
            return msg  # type: ignore[no-any-return]
    return _message_from_checked(head, header, buffers, check_sizes)


def _all_ints(values: list[Any]) -> bool:
    return set(map(type, values)) <= {int}  # exactly int: a bool is no engine id


def _sizes_match(buffers: Sequence[Buffer], sizes: Sequence[Any]) -> bool:
    for buffer, size in zip(buffers, sizes, strict=True):
        if type(size) is not int:
            return False
        if (len(buffer) if type(buffer) is bytes else memoryview(buffer).nbytes) != size:
            return False
    return True


def _message_from_checked(
    head: object, header: bytes, buffers: Sequence[Buffer], check_sizes: bool
) -> Message:
    """``_message_from`` one field at a time: raises naming what is wrong."""
    if not isinstance(head, dict):
        raise RemoteProtocolError("header is not a map")
    targets = _field(head, "g", (list, type(None)), None)
    if targets is not None and not all(type(t) is int for t in targets):
        raise RemoteProtocolError("header targets are not engine ids")
    sizes = _field(head, "b", list, [])
    if check_sizes and (
        len(sizes) != len(buffers)
        or any(
            type(n) is not int or memoryview(b).nbytes != n
            for b, n in zip(buffers, sizes, strict=True)
        )
    ):
        raise RemoteProtocolError("buffer count or sizes do not match the header")
    msg_type = _TYPES.get(_field(head, "t", int, None))
    status = _STATUSES.get(_field(head, "s", int, 0))
    if msg_type is None or status is None:
        raise RemoteProtocolError(
            f"header names an unknown type or status: {head.get('t')!r}, {head.get('s')!r}"
        )
    return Message(
        type=msg_type,
        id=_field(head, "i", str, None),
        content=_field(head, "c", dict, {}),
        buffers=buffers,
        parent=_field(head, "p", str, ""),
        targets=targets,
        engine=_field(head, "e", int, -1),
        status=status,
        session=_field(head, "n", str, ""),
        ts=_field(head, "ts", (int, float), 0.0),
        header=header,
        digests=_field(head, "d", list, []),
    )


def check_digests(msg: Message) -> None:
    """Check ``msg``'s buffers against the digests in its (authenticated) header.

    Raises:
        RemoteProtocolError: a buffer differs from what the sender signed.
    """
    if not msg.buffers or msg.type == MsgType.BATCH:
        return  # a batch carries no digests of its own: each entry is checked alone
    digests = msg.digests  # read from the header when it was decoded: not unpacked again
    if len(digests) != len(msg.buffers) or any(
        not isinstance(d, bytes) or hashlib.sha256(b).digest() != d
        for b, d in zip(msg.buffers, digests, strict=True)
    ):
        raise RemoteProtocolError("a buffer does not match its digest in the header")


def decode(
    frames: Sequence[Buffer],
    signer: Signer,
    guard: ReplayGuard | RecentIds | None = None,
    check_buffers: bool = True,
) -> Message:
    """Verify and parse ``frames`` (starting at the delimiter) into a Message.

    The signature covers the header, and the header holds each buffer's size and SHA-256
    digest. ``check_buffers`` then checks the buffers against those digests: the final
    receiver (who unpickles them) must; a router that only forwards them need not, which
    saves it a pass over every payload while integrity still holds end to end.

    Every message's content is checked against its type's schema (``wire._schemas``), so
    no handler sees a field of the wrong type.

    Raises:
        RemoteProtocolError: bad signature, unparsable header, replayed id or wrong buffers.
        ContentMismatch: the message is authentic but its content does not fit its type.
    """
    if (
        len(frames) < 3
        or memoryview(frames[0]).nbytes != len(DELIMITER)
        or bytes(frames[0]) != DELIMITER
    ):
        raise RemoteProtocolError("too few frames or no delimiter")
    signature, header_buf, *buffers = frames[1:]
    if not signer.verify(signature, [header_buf]):
        raise RemoteProtocolError("signature does not verify")
    header = bytes(header_buf)
    try:
        head = msgpack.unpackb(header, raw=False)
    except Exception as exc:  # msgpack raises several types on malformed input
        raise RemoteProtocolError(f"header does not parse: {exc}") from exc
    msg = _message_from(head, header, buffers)
    if check_buffers:
        check_digests(msg)
    if guard is not None and not guard.check_and_add(msg.id, msg.ts):
        raise RemoteProtocolError(f"message id {msg.id} was already seen, or is too old")
    _check_content(msg)  # after the replay check: a replay is never answered
    return msg
