"""Shared-memory segment names cannot be taken over: an existing name is skipped, and a
segment that cannot be made leaves its frame on the sockets instead of failing the push."""

from __future__ import annotations

import itertools
import os

from pxcluster.serialize import _shm


def test_a_pre_created_name_is_skipped_for_another(monkeypatch):
    tokens = itertools.chain(["0" * 16], iter(lambda: os.urandom(8).hex(), None))
    monkeypatch.setattr(_shm.secrets, "token_hex", lambda n: next(tokens))
    counter = next(_shm._counter) + 1  # the counter value the next name will use
    squatted = _shm._DIR / f"{_shm._PREFIX}{os.getpid()}-{counter}-{'0' * 16}"
    squatted.write_bytes(b"attacker's")
    try:
        frame = os.urandom(_shm.SHM_THRESHOLD)
        _, indexes, names = _shm.export_frames([frame])
        assert indexes == [0]
        assert names[0] != squatted.name
        assert squatted.read_bytes() == b"attacker's"  # not written into, not truncated
        _shm.unlink(names)
    finally:
        squatted.unlink()


def test_a_segment_that_cannot_be_made_leaves_the_frame_on_the_socket(monkeypatch):
    def no_room():
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_shm, "_new_segment", no_room)
    frame = os.urandom(_shm.SHM_THRESHOLD)
    out, indexes, names = _shm.export_frames([frame])
    assert (indexes, names) == ([], [])
    assert bytes(out[0]) == frame


def test_segment_names_are_not_guessable():
    a = _shm.create_segment(10)
    b = _shm.create_segment(10)
    try:
        assert a.rsplit("-", 1)[1] != b.rsplit("-", 1)[1]
        assert len(a.rsplit("-", 1)[1]) == 16
    finally:
        _shm.unlink([a, b])
