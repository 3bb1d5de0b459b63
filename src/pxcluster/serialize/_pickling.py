"""Serialize layer: pickle 5 with out-of-band buffers, cloudpickle for code."""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Sequence
from typing import Any, cast

import cloudpickle

from pxcluster._buffers import Buffer
from pxcluster._errors import SerializationError

# Buffers smaller than this stay in the pickle: a frame of its own costs more than a copy.
OUT_OF_BAND_THRESHOLD = 64 * 1024


# Objects of these types pickle the same with the C pickler as with cloudpickle, which
# costs ~5 us more per call (its reducer hook runs for every object): small plain values,
# and short flat containers of them, take the C pickler.
_PLAIN_TYPES = frozenset({type(None), bool, int, float, complex, str, bytes})
_PLAIN_CONTAINER_LEN = 16


def _is_plain(obj: object) -> bool:
    kind = type(obj)
    if kind in _PLAIN_TYPES:
        return True
    if kind is tuple or kind is list:
        items = cast("Sequence[object]", obj)
        return len(items) <= _PLAIN_CONTAINER_LEN and all(
            type(item) in _PLAIN_TYPES for item in items
        )
    if kind is dict:
        mapping = cast("dict[object, object]", obj)
        return len(mapping) <= _PLAIN_CONTAINER_LEN and all(
            type(k) in _PLAIN_TYPES and type(v) in _PLAIN_TYPES for k, v in mapping.items()
        )
    return False


def dumps(obj: object, *, name: str = "object") -> list[Buffer]:
    """Frames for one object: the pickle stream first, then its out-of-band buffers.

    Raises:
        SerializationError: ``obj`` cannot be pickled; the message names ``name``.
    """
    if _is_plain(obj):
        return [pickle.dumps(obj, protocol=5)]
    buffers: list[Buffer] = []

    def keep_large(pb: pickle.PickleBuffer) -> bool:
        raw = pb.raw()
        if raw.nbytes < OUT_OF_BAND_THRESHOLD:
            return True  # true: serialize in band
        buffers.append(raw)
        return False

    try:
        stream = cloudpickle.dumps(obj, protocol=5, buffer_callback=keep_large)
    except Exception as exc:
        raise SerializationError(f"cannot send {name!s}: {type(exc).__name__}: {exc}") from exc
    return [stream, *buffers]


def detach(frames: Sequence[Buffer]) -> list[Buffer]:
    """Copies of the frames that are views of the caller's memory (out-of-band buffers).

    Frames are sent without copying; a call that returns before they are sent copies them
    first, so the caller may change its arrays at once without corrupting the message.
    """
    return [bytes(f) if isinstance(f, memoryview) else f for f in frames]


def loads(frames: Sequence[Buffer], *, name: str = "object") -> Any:
    """The object encoded by ``dumps``.

    Raises:
        SerializationError: the payload is malformed or refers to code missing here.
    """
    if not frames:
        raise SerializationError(f"no payload for {name}")
    try:
        return pickle.loads(frames[0], buffers=frames[1:])
    except Exception as exc:
        raise SerializationError(f"cannot unpickle {name}: {type(exc).__name__}: {exc}") from exc


def dumps_many(items: Iterable[tuple[str, object]]) -> tuple[list[int], list[Buffer]]:
    """Serialize named objects; returns the frame count of each and all frames in order."""
    counts: list[int] = []
    frames: list[Buffer] = []
    for name, obj in items:
        encoded = dumps(obj, name=repr(name))
        counts.append(len(encoded))
        frames.extend(encoded)
    return counts, frames


def loads_many(counts: Sequence[int], frames: Sequence[Buffer]) -> list[Any]:
    """Inverse of ``dumps_many``.

    Raises:
        SerializationError: the counts do not match the frames, or a payload is bad.
    """
    if sum(counts) != len(frames) or any(c < 1 for c in counts):
        raise SerializationError("frame counts do not match the payload")
    out: list[Any] = []
    start = 0
    for count in counts:
        out.append(loads(frames[start : start + count]))
        start += count
    return out
