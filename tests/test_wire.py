"""Wire layer: framing, signatures and the replay guard, without sockets."""

import time

import msgpack
import pytest

from pxcluster._errors import ContentMismatch, RemoteProtocolError
from pxcluster.wire import (
    DELIMITER,
    Message,
    MsgType,
    RecentIds,
    ReplayGuard,
    Signer,
    Status,
    content_problem,
    decode,
    encode,
    new_key,
    unpack_header,
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
    content = {"names": ["a"], "counts": [1]}
    frames = encode(Message(MsgType.PUSH, "x-1", content, [b"payload"]), signer)
    frames[-1] = b"paYload"
    # a router forwards without hashing payloads; the receiver that unpickles them checks
    assert decode(frames, signer, check_buffers=False).id == "x-1"
    with pytest.raises(RemoteProtocolError, match="digest"):
        decode(frames, signer)


def test_replayed_id_is_rejected(signer):
    guard = ReplayGuard()
    frames = encode(Message(MsgType.EXECUTE, "x-1", {"code": "1"}), signer)
    decode(frames, signer, guard)
    with pytest.raises(RemoteProtocolError, match="already seen"):
        decode(frames, signer, guard)


def test_recent_ids_forget_beyond_capacity():
    guard = RecentIds(capacity=2)
    assert all(guard.check_and_add(i) for i in ("a", "b", "c"))
    assert guard.check_and_add("a")  # fell out of the window
    assert not guard.check_and_add("c")


def test_replay_window_catches_old_replays_and_allows_reordering():
    now = time.time()
    guard = ReplayGuard(window=64)
    assert all(guard.check_and_add(f"s-{i}", now) for i in (1, 3, 2, 10, 5))  # late but new
    assert not guard.check_and_add("s-3", now)
    assert guard.check_and_add("t-3", now)  # another session
    for i in range(11, 10_000):
        if i != 9990:  # one id never arrives
            assert guard.check_and_add(f"s-{i}", now)
    assert not guard.check_and_add("s-10", now)  # long ago: refused, not forgotten
    assert not guard.check_and_add("s-9998", now)
    assert guard.check_and_add("s-9990", now)  # never seen, within the window
    assert not guard.check_and_add("retry-7~1", now)  # not a session-counter id: refused


def test_replay_guard_refuses_unicode_digits_without_raising():
    guard = ReplayGuard()
    for tail in ("\u00b2", "\u0663", "\uff11", "1\u00b9"):  # str.isdigit() is true for all
        assert not guard.check_and_add(f"s-{tail}", time.time())


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_replay_guard_never_forgets_a_session_it_let_go():
    clock = FakeClock()
    guard = ReplayGuard(max_age=60.0, max_sessions=10, clock=clock)
    sent_at = clock.now
    assert guard.check_and_add("old-1", sent_at)
    for n in range(50):  # many other sessions, long after: "old" is forgotten
        clock.now += 10.0
        assert guard.check_and_add(f"s{n}-1", clock.now)
    assert len(guard) <= 10
    assert not guard.check_and_add("old-1", sent_at)  # its replay is refused by its age
    assert not guard.check_and_add("old-2", sent_at)
    assert not guard.check_and_add("new-1", clock.now + 3600)  # from the far future: refused
    assert not guard.check_and_add("new-2", 0.0)  # no send time: refused


def test_replay_guard_bounded_while_sessions_are_young():
    clock = FakeClock()
    guard = ReplayGuard(max_age=60.0, max_sessions=5, clock=clock)
    assert all(guard.check_and_add(f"s{n}-1", clock.now) for n in range(5))
    assert not guard.check_and_add("s9-1", clock.now)  # full of live sessions: refused
    assert guard.check_and_add("s0-2", clock.now)  # known sessions go on
    clock.now += 61.0
    assert guard.check_and_add("s9-1", clock.now)  # the old ones aged out


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


@pytest.mark.parametrize(
    ("kind", "content", "problem"),
    [
        (MsgType.EXECUTE, {}, "lacks code"),
        (MsgType.EXECUTE, {"code": b"1"}, "'code' is a bytes"),
        (MsgType.EXECUTE, {"code": "1", "stream": 1}, "'stream' is a int"),
        (MsgType.PUSH, {"names": ["a", 1], "counts": [1]}, "'names' holds a int"),
        (MsgType.REGISTER, {"pid": True}, "'pid' is a bool"),
        (MsgType.TASK, {"kind": "map", "counts": [], "retries": 1.5}, "'retries' is a float"),
        (MsgType.TASK_RESULT, {"id": 3}, "'id' is a int"),
        (MsgType.INTERRUPT, {"request": None}, "'request' is a NoneType"),
        (MsgType.STREAM, {"name": "stdout"}, "lacks text"),
    ],
)
def test_content_that_does_not_fit_its_type_is_named(signer, kind, content, problem):
    assert problem in content_problem(kind, content)
    frames = encode(Message(kind, "x-1", content), signer)
    with pytest.raises(ContentMismatch, match=problem) as caught:
        decode(frames, signer)
    assert caught.value.request_id == "x-1"  # authentic: the receiver may answer it


@pytest.mark.parametrize(
    ("kind", "content"),
    [
        (MsgType.TASK, {"kind": "map", "counts": [1], "timeout": None, "after": ["a-1"]}),
        (MsgType.TASK, {"kind": "map", "counts": [1], "timeout": 2}),  # an int is a float
        (MsgType.REGISTER, {"hostname": "h", "pid": 3, "rank": 0, "launcher": {"job": "1"}}),
        (MsgType.REPLY, {"id": 3}),
        (MsgType.REPLY, {"id": "t-1", "display": None, "display_data": [{"a": 1}]}),
        (MsgType.CONNECT, {}),
    ],
)
def test_content_that_fits_passes_and_unknown_fields_are_ignored(signer, kind, content):
    assert content_problem(kind, content) is None
    assert decode(encode(Message(kind, "x-1", content), signer), signer).content == content


def test_lone_surrogates_are_escaped_not_fatal(signer):
    text = "file \udcff.txt"
    msg = Message(MsgType.REPLY, "x-1", {"stdout": text, "evalue": text}, parent="p-1")
    got = decode(encode(msg, signer), signer)
    assert got.content["stdout"] == "file \\udcff.txt"


def test_nested_header_is_checked_too():
    header = msgpack.packb({"t": int(MsgType.STREAM), "i": "x-1", "c": {"name": 1, "text": ""}})
    with pytest.raises(ContentMismatch):
        unpack_header(header, [])
