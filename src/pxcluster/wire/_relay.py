"""Wire layer: the frames between a controller and a per-host relay (``pxrelay``).

A relay sits between the engines of one host and the controller: the engines connect to it
locally, and it holds one connection per socket kind to the controller. It forwards the
engines' signed messages as they are, so the controller sees one more routing frame::

    engine -> relay -> controller:   [relay, engine, DELIMITER, signature, header, ...]
    controller -> relay -> engine:   [relay, engine, DELIMITER, ...]  (relay strips ``relay``)

Two more shapes exist only between the controller and a relay:

* a **fan-out**, one message for several engines behind one relay, sent once over the
  network: ``[relay, FAN, identities, DELIMITER, ...]`` (``identities`` a msgpack list);
  the relay sends ``[engine, DELIMITER, ...]`` to each, sharing the frames (no copy);
* a **relay note** about the relay itself: ``[relay, NOTE, body]`` (``body`` a msgpack map
  with a ``kind``). These are not signed: the relay has no key (engines verify every
  message end to end). A note can only speak of the engines whose traffic comes through
  that relay's own connection, which the relay carries anyway, so it can do nothing a
  relay could not already do by dropping their messages.

The controller keeps relayed engines under one ``bytes`` identity made by
``relayed_identity``: a zero byte, the relay identity's length, the relay identity, the
engine's. ZeroMQ refuses identities that peers choose starting with a zero byte, and those
it makes itself are 5 bytes long, so no directly connected peer can have such a name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import msgpack

from pxcluster._buffers import Buffer
from pxcluster._errors import RemoteProtocolError

#: First frame (after the relay's routing id) of a message for several engines.
FAN = b"<PX|FAN>"
#: First frame of a note between the controller and a relay.
NOTE = b"<PX|RLY>"
#: Identities listed in one fan-out at most (a relay refuses longer lists).
FAN_MAX = 100_000

NoteKind = Literal["hello", "welcome", "gone", "signal", "bye"]
_KINDS = frozenset({"hello", "welcome", "gone", "signal", "bye"})
#: Fields each note kind must carry, and their exact types.
_FIELDS: dict[str, dict[str, type]] = {
    # relay -> controller at each (re)connection, with the engines it serves (a controller
    # that took a gone one's place asks them to register)
    "hello": {"pid": int, "hostname": str, "engines": list},
    "welcome": {"heartbeat_period": float, "heartbeat_timeout": float},  # the answer
    "gone": {"engines": list, "why": str},  # relay -> controller: engines it lost
    "signal": {"engine": bytes, "signum": int},  # controller -> relay: signal an engine
    "bye": {},  # controller -> relay: the controller stops (the relay may stop too)
}
#: Bytes a note may have (a "gone" list of many engines' identities at most).
NOTE_MAX = 1 << 22


def relayed_identity(relay: bytes, engine: bytes) -> bytes:
    """The controller's name for ``engine`` behind ``relay`` (see the module docstring)."""
    return b"\x00" + bytes((len(relay),)) + relay + engine


def split_relayed(identity: bytes) -> tuple[bytes, bytes] | None:
    """``(relay, engine)`` of a name made by ``relayed_identity``; None for a direct peer."""
    if len(identity) <= 5 or identity[0] != 0:
        return None
    end = 2 + identity[1]
    return identity[2:end], identity[end:]


def fan_frames(engines: Sequence[bytes], message: Sequence[Buffer]) -> list[Buffer]:
    """The frames after the relay's routing id of ``message`` for each of ``engines``."""
    return [FAN, msgpack.packb(list(engines), use_bin_type=True), *message]


def fan_targets(frame: Buffer) -> list[bytes]:
    """The engine identities of a fan-out's list frame.

    Raises:
        RemoteProtocolError: the frame is not a list of identities.
    """
    try:
        targets = msgpack.unpackb(bytes(frame), raw=False)
    except Exception as exc:
        raise RemoteProtocolError(f"fan-out list does not parse: {exc}") from None
    if (
        type(targets) is not list
        or len(targets) > FAN_MAX
        or not all(type(t) is bytes and 0 < len(t) <= 255 for t in targets)
    ):
        raise RemoteProtocolError("fan-out list is not a list of engine identities")
    return targets


def pack_note(kind: NoteKind, **fields: Any) -> list[bytes]:
    """The frames of a note (after the relay's routing id)."""
    return [NOTE, msgpack.packb({"kind": kind, **fields}, use_bin_type=True)]


def unpack_note(frame: Buffer) -> dict[str, Any]:
    """A note's body, checked: its ``kind`` is known and its fields have their types.

    Raises:
        RemoteProtocolError: the note is too big, does not parse, or does not match.
    """
    if memoryview(frame).nbytes > NOTE_MAX:
        raise RemoteProtocolError("relay note too big")
    try:
        body = msgpack.unpackb(bytes(frame), raw=False)
    except Exception as exc:
        raise RemoteProtocolError(f"relay note does not parse: {exc}") from None
    if type(body) is not dict or body.get("kind") not in _KINDS:
        raise RemoteProtocolError("relay note without a known kind")
    for name, kind in _FIELDS[body["kind"]].items():
        value = body.get(name)
        if not (type(value) is kind or (kind is float and type(value) is int)):
            raise RemoteProtocolError(f"relay note {body['kind']!r}: field {name!r} is wrong")
    if "engines" in _FIELDS[body["kind"]] and not all(
        type(e) is bytes and 0 < len(e) <= 255 for e in body["engines"]
    ):
        raise RemoteProtocolError(f"relay note {body['kind']!r}: engines are not identities")
    return body
