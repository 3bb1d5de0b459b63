"""A decoded message is a plain, frozen Message (the wire builds it a faster way)."""

import dataclasses

import pytest

from pxcluster.wire import (
    Message,
    MsgType,
    Signer,
    decode,
    encode,
    encode_raw,
    new_key,
    pack_batch,
    pack_header,
    unbatch,
)


def test_a_decoded_message_is_a_frozen_message_equal_to_the_one_sent():
    signer = Signer(new_key())
    sent = Message(MsgType.REPLY, "e-1", {"n": 1}, [b"abc"], parent="c-1", engine=2, ts=5.0)
    got = decode(encode(sent, signer), signer)
    assert type(got) is Message
    assert got == sent
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.id = "e-2"  # type: ignore[misc]
    assert dataclasses.replace(got, id="e-3").id == "e-3"


def test_batch_entries_are_frozen_messages_too():
    signer = Signer(new_key())
    task = Message(MsgType.TASK, "c-1", {"kind": "map", "counts": [1]}, [b"x"], ts=5.0)
    header, payload = pack_batch("c-2", [(pack_header(task), task.buffers)])
    (entry,), problems = unbatch(decode(encode_raw(header, payload, signer), signer))
    assert not problems
    assert type(entry) is Message
    assert entry == task
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.parent = "x"  # type: ignore[misc]
