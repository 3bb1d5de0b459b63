"""Wire layer: BATCH messages (several TASKs or REPLYs signed once), and the two senders'
policies around them: the client's task outbox and the engine's held replies."""

import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pxcluster._errors import ContentMismatch, RemoteProtocolError
from pxcluster.client._outbox import TaskOutbox
from pxcluster.engine._tasks import HOLD_AT_MOST, HOLD_FOR, HeldReplies
from pxcluster.wire import (
    MAX_ENTRIES,
    Message,
    MsgType,
    RecentIds,
    ReplayGuard,
    Signer,
    Status,
    check_digests,
    content_problem,
    decode,
    encode_raw,
    pack_batch,
    pack_header,
    unbatch,
)

SIGNER = Signer(b"k" * 64)


def task(task_id, payload=b"payload", **spec):
    msg = Message(MsgType.TASK, task_id, {"kind": "map", "counts": [1], **spec}, [payload])
    return pack_header(msg), [payload]


def received(header, buffers, guard=None):
    """What a receiver's ``decode`` makes of a signed BATCH."""
    return decode(encode_raw(header, buffers, SIGNER), SIGNER, guard, check_buffers=False)


def test_a_batch_round_trips_every_entry_with_its_exact_header_and_buffers():
    entries = [task(f"c-{i}", bytes([i]) * (i + 1)) for i in range(5)]
    entries.append(task("c-empty", b""))
    header, buffers = pack_batch("c-7", entries, "c")
    assert len(buffers) == 1  # one payload frame, however many entries
    batch = received(header, buffers, ReplayGuard())
    assert batch.type == MsgType.BATCH
    check_digests(batch)  # a batch has no digests of its own: nothing to check, no error
    got, problems = unbatch(batch)
    assert problems == []
    assert [m.header for m in got] == [h for h, _ in entries]
    for msg, (_, frames) in zip(got, entries, strict=True):
        assert [bytes(b) for b in msg.buffers] == frames
        check_digests(msg)  # each entry's own digests hold


def test_a_changed_entry_fails_the_batchs_signature():
    header, buffers = pack_batch("c-b", [task("c-1"), task("c-2")])
    head = msgpack.unpackb(header)
    head["c"]["entries"][1] = task("c-2", b"other")[0]
    forged = msgpack.packb(head, use_bin_type=True)
    frames = encode_raw(header, buffers, SIGNER)
    frames[2] = forged
    with pytest.raises(RemoteProtocolError, match="signature"):
        decode(frames, SIGNER)


def test_a_changed_payload_fails_that_entrys_digest_only():
    header, (payload,) = pack_batch("c-b", [task("c-1", b"aaaa"), task("c-2", b"bbbb")])
    batch = received(header, [b"aaaX" + payload[4:]])
    first, second = unbatch(batch)[0]
    with pytest.raises(RemoteProtocolError, match="digest"):
        check_digests(first)
    check_digests(second)


def test_a_replayed_batch_is_refused_by_its_id():
    guard = RecentIds()
    header, buffers = pack_batch("c-9", [task("c-1"), task("c-2")])
    received(header, buffers, guard)
    with pytest.raises(RemoteProtocolError, match="already seen"):
        received(header, buffers, guard)


def test_bad_entries_are_reported_and_the_good_ones_kept():
    bad_content = pack_header(Message(MsgType.TASK, "c-bad", {"kind": 1, "counts": [0]}))
    not_batchable = pack_header(Message(MsgType.EXECUTE, "c-ex", {"code": "1"}))
    header, buffers = pack_batch(
        "c-b", [task("c-1"), (bad_content, []), (not_batchable, []), task("c-2")]
    )
    got, problems = unbatch(received(header, buffers))
    assert [m.id for m in got] == ["c-1", "c-2"]
    assert [type(p) for p in problems] == [ContentMismatch, ContentMismatch]
    assert [p.request_id for p in problems] == ["c-bad", "c-ex"]


def test_an_entry_that_cannot_be_placed_ends_the_batch():
    header, buffers = pack_batch("c-b", [task("c-1"), (b"\xc1 not msgpack", []), task("c-2")])
    got, (problem,) = unbatch(received(header, buffers))
    assert [m.id for m in got] == ["c-1"]
    assert "the 1 after it" in str(problem)


def test_a_batch_whose_payload_does_not_add_up_is_refused():
    header, (payload,) = pack_batch("c-b", [task("c-1"), task("c-2")])
    head = msgpack.unpackb(header)
    head["b"] = [len(payload) + 3]
    longer = msgpack.packb(head, use_bin_type=True)
    with pytest.raises(RemoteProtocolError, match="longer"):
        unbatch(received(longer, [payload + b"xyz"]))
    head["b"] = [1, 1]
    with pytest.raises(RemoteProtocolError, match="more than one"):
        unbatch(received(msgpack.packb(head, use_bin_type=True), [b"a", b"b"]))


def test_the_schema_checks_a_batchs_content():
    assert content_problem(MsgType.BATCH, {"entries": [b"h"]}) is None
    assert "lacks entries" in content_problem(MsgType.BATCH, {})
    assert "holds a str" in content_problem(MsgType.BATCH, {"entries": ["h"]})


entry_headers = st.one_of(
    st.binary(max_size=40),
    st.dictionaries(
        st.sampled_from(["t", "i", "c", "p", "b", "d", "e", "s", "ts"]),
        st.one_of(st.integers(-3, 50), st.text(max_size=5), st.lists(st.integers(-2, 9),
                                                                      max_size=3)),
        max_size=7,
    ).map(lambda d: msgpack.packb(d, use_bin_type=True)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(entry_headers, max_size=6), st.binary(max_size=30))
def test_signed_batches_of_hostile_entries_only_yield_fitting_messages(headers, payload):
    head = {"t": int(MsgType.BATCH), "i": "c-1", "ts": 1e9, "c": {"entries": headers}}
    if payload:
        head["b"] = [len(payload)]
    batch = received(msgpack.packb(head, use_bin_type=True), [payload] if payload else [])
    with contextlib.suppress(RemoteProtocolError):
        entries, problems = unbatch(batch)
        for entry in entries:
            assert entry.type in (MsgType.TASK, MsgType.REPLY)
            assert content_problem(entry.type, entry.content) is None
        assert all(isinstance(p, RemoteProtocolError) for p in problems)


# -- the client's outbox --------------------------------------------------------------------


def test_the_outbox_sends_small_tasks_in_batches_and_big_ones_alone_in_order():
    ids = iter(range(1000))
    outbox = TaskOutbox(SIGNER, lambda: f"c-b{next(ids)}", "c")
    assert outbox.add(*task("c-0"))  # the first one: the I/O thread must be told
    assert not outbox.add(*task("c-1"))
    outbox.add(*task("c-big", b"x" * 100_000))
    for i in range(2, 2 + MAX_ENTRIES + 1):
        outbox.add(*task(f"c-{i}"))
    sent = [decode(frames, SIGNER) for frames in outbox.take()]
    assert len(outbox) == 0
    assert [m.type for m in sent] == [MsgType.BATCH, MsgType.TASK, MsgType.BATCH, MsgType.TASK]
    order = []
    for msg in sent:
        order += [e.id for e in unbatch(msg)[0]] if msg.type == MsgType.BATCH else [msg.id]
    assert order == ["c-0", "c-1", "c-big", *[f"c-{i}" for i in range(2, 2 + MAX_ENTRIES + 1)]]


# -- the engine's held replies ---------------------------------------------------------------


class Clock:
    now = 50.0

    def __call__(self):
        return self.now


def reply(parent):
    msg = Message(MsgType.REPLY, f"e-{parent}", {}, [b"r"], parent=parent, status=Status.OK)
    return pack_header(msg), [b"r"]


def test_a_reply_is_held_only_while_another_task_waits_behind_it():
    held = HeldReplies(lambda: "e-b", Clock())
    assert not held.hold(*reply("t-1"), more_waiting=False)  # a lone task: sent at once
    assert held.hold(*reply("t-1"), more_waiting=True)
    assert held.hold(*reply("t-2"), more_waiting=True)
    (batch,) = held.take(reply("t-3"))  # the next reply not held takes them along
    got = unbatch(unpack(batch))[0]
    assert [m.parent for m in got] == ["t-1", "t-2", "t-3"]
    assert len(held) == 0
    assert held.take() == []


def test_held_replies_are_bounded_in_number_and_in_time():
    clock = Clock()
    held = HeldReplies(lambda: "e-b", clock)
    for i in range(HOLD_AT_MOST - 1):
        assert held.hold(*reply(f"t-{i}"), more_waiting=True)
    assert not held.hold(*reply("t-last"), more_waiting=True)  # full: this one takes them
    assert not held.due()
    clock.now += HOLD_FOR  # the task after them runs long: the I/O thread sends them
    assert held.due()
    (batch,) = held.take()
    assert len(unbatch(unpack(batch))[0]) == HOLD_AT_MOST - 1
    big = Message(MsgType.REPLY, "e-big", {}, [b"x" * 100_000], parent="t-big")
    assert not held.hold(pack_header(big), big.buffers, more_waiting=True)  # big: alone
    assert held.hold(*reply("t-small"), more_waiting=True)
    small, alone = held.take((pack_header(big), big.buffers))  # not copied into a batch
    assert unpack(small).parent == "t-small"
    assert unpack(alone).parent == "t-big"


def unpack(entry):
    header, buffers = entry
    return received(header, list(buffers))
