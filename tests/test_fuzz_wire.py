"""Wire layer under hypothesis: whatever the frames, decode either returns a message whose
content fits its type or raises RemoteProtocolError; the replay guard never raises; valid
messages survive a round trip."""

from __future__ import annotations

import contextlib
import time

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from pxcluster._errors import RemoteProtocolError
from pxcluster.wire import (
    DELIMITER,
    Message,
    MsgType,
    ReplayGuard,
    Signer,
    content_problem,
    decode,
    encode,
)

KEY = b"k" * 64
SIGNER = Signer(KEY)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True), st.text(max_size=20), st.binary(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)
header_keys = st.sampled_from(["t", "i", "c", "p", "g", "e", "s", "n", "ts", "b", "d", "x"])
headers = st.dictionaries(header_keys, values, max_size=9)


def signed(header: bytes, *buffers: bytes) -> list[bytes]:
    return [DELIMITER, SIGNER.sign([header]), header, *buffers]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=6))
def test_random_frames_only_ever_raise_protocol_errors(frames):
    with contextlib.suppress(RemoteProtocolError):
        decode(frames, SIGNER)


@settings(max_examples=300, deadline=None)
@given(headers, st.lists(st.binary(max_size=10), max_size=2))
def test_signed_random_headers_decode_to_fitting_content_or_are_refused(head, buffers):
    try:
        header = msgpack.packb(head, use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        return
    try:
        msg = decode(signed(header, *buffers), SIGNER, ReplayGuard())
    except RemoteProtocolError:
        return
    assert content_problem(msg.type, msg.content) is None
    assert isinstance(msg.id, str)
    assert msg.targets is None or all(type(t) is int for t in msg.targets)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(list(MsgType)),
    st.dictionaries(st.sampled_from(["code", "names", "counts", "id", "event", "name", "text",
                                     "kind", "pid", "stream", "retries", "after"]),
                    values, max_size=4),
)
def test_every_type_with_any_content_is_checked_not_crashed(kind, content):
    try:
        frames = encode(Message(kind, "s-1", content), SIGNER)
    except Exception:
        return  # content msgpack cannot carry: the sender's error, not the receiver's
    try:
        msg = decode(frames, SIGNER)
    except RemoteProtocolError:
        assert content_problem(kind, content) is not None
        return
    assert content_problem(kind, msg.content) is None


@settings(max_examples=250, deadline=None)
@given(st.text(max_size=30), st.floats(allow_nan=True, allow_infinity=True))
def test_replay_guard_never_raises_and_never_takes_an_id_twice(msg_id, ts):
    guard = ReplayGuard()
    first = guard.check_and_add(msg_id, ts)
    assert guard.check_and_add(msg_id, ts) is False
    if first:
        assert abs(ts - time.time()) < 3600


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.text(max_size=50))
def test_output_with_any_text_round_trips_or_is_escaped(stdout, evalue):
    msg = Message(MsgType.REPLY, "s-1", {"stdout": stdout, "evalue": evalue}, parent="p-1")
    got = decode(encode(msg, SIGNER), SIGNER)
    assert got.content["stdout"] == stdout.encode("utf-8", "backslashreplace").decode()
