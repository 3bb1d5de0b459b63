"""Wire layer: framing, signatures and the replay guard, without sockets."""

import msgpack
import pytest

from pxcluster._errors import RemoteProtocolError
from pxcluster.wire import (
    DELIMITER,
    Message,
    MsgType,
    RecentIds,
    ReplayGuard,
    Signer,
    Status,
    decode,
    encode,
    new_key,
)


@pytest.fixture
def signer():
    return Signer(new_key())


def test_roundtrip_keeps_every_field(signer):
    msg = Message(MsgType.REPLY, "s-1", {"n": 3, "text": "é"}, [b"abc", memoryview(b"de")],
                  parent="s-0", targets=[0, 2], engine=2, status=Status.ERROR, session="s")
    got = decode(encode(msg, signer), signer)
    assert (got.type, got.id, got.content, got.parent, got.targets, got.engine, got.status) == (
        MsgType.REPLY, "s-1", {"n": 3, "text": "é"}, "s-0", [0, 2], 2, Status.ERROR)
    assert [bytes(b) for b in got.buffers] == [b"abc", b"de"]


def test_wrong_key_is_rejected(signer):
    frames = encode(Message(MsgType.EXECUTE, "x-1", {"code": "1"}), Signer(new_key()))
    with pytest.raises(RemoteProtocolError, match="signature"):
        decode(frames, signer)


def test_tampered_buffer_is_rejected_where_it_is_used(signer):
    frames = encode(Message(MsgType.PUSH, "x-1", {}, [b"payload"]), signer)
    frames[-1] = b"paYload"
    # a router forwards without hashing payloads; the receiver that unpickles them checks
    assert decode(frames, signer, check_buffers=False).id == "x-1"
    with pytest.raises(RemoteProtocolError, match="digest"):
        decode(frames, signer)


def test_replayed_id_is_rejected(signer):
    guard = ReplayGuard()
    frames = encode(Message(MsgType.EXECUTE, "x-1"), signer)
    decode(frames, signer, guard)
    with pytest.raises(RemoteProtocolError, match="already seen"):
        decode(frames, signer, guard)


def test_recent_ids_forget_beyond_capacity():
    guard = RecentIds(capacity=2)
    assert all(guard.check_and_add(i) for i in ("a", "b", "c"))
    assert guard.check_and_add("a")  # fell out of the window
    assert not guard.check_and_add("c")


def test_replay_window_catches_old_replays_and_allows_reordering():
    guard = ReplayGuard(window=64)
    assert all(guard.check_and_add(f"s-{i}") for i in (1, 3, 2, 10, 5))  # late but new
    assert not guard.check_and_add("s-3")
    assert guard.check_and_add("t-3")  # another session
    for i in range(11, 10_000):
        if i != 9990:  # one id never arrives
            assert guard.check_and_add(f"s-{i}")
    assert not guard.check_and_add("s-10")  # long ago: refused, not forgotten
    assert not guard.check_and_add("s-9998")
    assert guard.check_and_add("s-9990")  # never seen, within the window
    assert guard.check_and_add("retry-7~1")  # another form of id: the bounded set
    assert not guard.check_and_add("retry-7~1")


@pytest.mark.parametrize(
    "header",
    [b"\xc1", msgpack.packb({"t": 999, "i": "x"}), msgpack.packb({"i": "x"}),
     msgpack.packb([1, 2]), msgpack.packb({"t": 10, "i": "x", "c": [1]})],
)
def test_signed_garbage_header_is_rejected(signer, header):
    frames = [DELIMITER, signer.sign([header]), header]
    with pytest.raises(RemoteProtocolError):
        decode(frames, signer)


def test_buffer_sizes_must_match_header(signer):
    frames = encode(Message(MsgType.PUSH, "x-1", {}, [b"ab"]), signer)
    frames = frames[:-1]
    frames[1] = signer.sign(frames[2:])
    with pytest.raises(RemoteProtocolError, match="buffer"):
        decode(frames, signer)


def test_too_few_frames(signer):
    with pytest.raises(RemoteProtocolError):
        decode([DELIMITER], signer)


@pytest.mark.parametrize(
    "fields",
    [{"b": 3}, {"b": ["x"]}, {"g": "all"}, {"g": [0, "1"]}, {"e": "0"}, {"c": "code"},
     {"i": 5}, {"p": 1}, {"ts": "now"}, {"s": 99}, {"t": True}],
)
def test_signed_header_with_wrongly_typed_field_is_rejected(signer, fields):
    header = msgpack.packb({"t": 10, "i": "x-1", **fields})
    with pytest.raises(RemoteProtocolError):
        decode([DELIMITER, signer.sign([header]), header], signer)
