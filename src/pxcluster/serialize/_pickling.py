"""Serialize layer: pickle 5 with out-of-band buffers, cloudpickle for code.

Code objects sent by value (lambdas, functions from ``__main__``, notebooks and modules the
engines cannot import) travel with their own filename and with the source lines they span,
taken from this process's ``linecache``; the receiver registers those lines in its
``linecache`` where it has no such file. A remote traceback then shows the user's own lines
whatever the pickler does to ``co_filename`` (cloudpickle 3.1.3 sets it to
``<dynamic-code>``) and wherever the engine runs (a notebook cell's source exists only in
the client's process).
"""

from __future__ import annotations

import functools
import io
import linecache
import marshal
import os
import pickle
import types
from collections.abc import Iterable, Sequence
from typing import Any, cast

import cloudpickle

from pxcluster._buffers import Buffer
from pxcluster._errors import SerializationError
from pxcluster.serialize._functions import FunctionFrames, FunctionMemo

# Buffers smaller than this stay in the pickle: a frame of its own costs more than a copy.
OUT_OF_BAND_THRESHOLD = 64 * 1024


#: Frames of functions sent before (this process's own; see ``_functions.py``).
_FUNCTIONS = FunctionFrames()

# Objects of these types pickle the same with the C pickler as with cloudpickle, which
# costs ~5 us more per call (its reducer hook runs for every object): small plain values,
# and short flat containers of them, take the C pickler.
_PLAIN_TYPES = frozenset({type(None), bool, int, float, complex, str, bytes})
_PLAIN_CONTAINER_LEN = 16


def _is_plain(obj: object, nested: bool = True) -> bool:
    """Whether ``obj`` is a plain value, or a short container of them, or (``nested``) a
    short container of those: a task's ``(args, kwargs)``. Loops, not ``all()`` over a
    generator: this runs for every object sent (1.9 -> 0.9 us for a task's arguments)."""
    kind = type(obj)
    if kind in _PLAIN_TYPES:
        return True
    if kind is tuple or kind is list:
        items = cast("Sequence[object]", obj)
        if len(items) > _PLAIN_CONTAINER_LEN:
            return False
        for item in items:
            if type(item) not in _PLAIN_TYPES and not (nested and _is_plain(item, False)):
                return False
        return True
    if kind is dict:
        mapping = cast("dict[object, object]", obj)
        if len(mapping) > _PLAIN_CONTAINER_LEN:
            return False
        for key, value in mapping.items():
            if type(key) not in _PLAIN_TYPES:
                return False
            if type(value) not in _PLAIN_TYPES and not (nested and _is_plain(value, False)):
                return False
        return True
    return False


def _last_line(code: types.CodeType) -> int:
    """The last source line of ``code`` and of the code objects nested in it."""
    last = code.co_firstlineno
    for _start, _end, line in code.co_lines():
        if line is not None and line > last:
            last = line
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            last = max(last, _last_line(const))
    return last


def _source_span(code: types.CodeType) -> tuple[int, list[str]]:
    """The first line number of ``code`` and its source lines, as far as ``linecache`` knows."""
    lines = linecache.getlines(code.co_filename)
    first = code.co_firstlineno
    if not lines or first < 1:
        return 0, []
    return first, lines[first - 1 : _last_line(code)]


#: Files of code received that exist here (``linecache`` reads those itself): one ``stat``
#: per file, not one per function received.
_ON_DISK: set[str] = set()


def _remember_source(filename: str, first: int, lines: list[str]) -> None:
    """Put ``lines`` (starting at line ``first``) in ``linecache`` under ``filename``.

    A file that exists here is left to ``linecache`` itself. An entry made here before (or by
    an interactive shell: no modification time) is extended, so functions from one notebook
    cell or module sent one by one add up.

    Runs once per function unpickled (every task and apply): a function sent again finds
    its lines in place, and a file found here once is not looked up on disk again.
    """
    if filename in _ON_DISK:
        return
    entry = linecache.cache.get(filename)
    end = first - 1 + len(lines)
    if entry is not None and len(entry) == 4 and entry[2][first - 1 : end] == lines:
        return  # the same lines are there already (the same function, sent again)
    if os.path.isfile(filename):
        _ON_DISK.add(filename)
        return
    known: list[str] = list(entry[2]) if entry is not None and len(entry) == 4 else []
    if len(known) < end:
        known.extend("\n" for _ in range(end - len(known)))
    known[first - 1 : end] = lines
    linecache.cache[filename] = (sum(map(len, known)), None, known, filename)


def _restore_code(marshalled: bytes, filename: str, first: int, lines: list[str]) -> types.CodeType:
    """Unpickling half of ``_SourcePickler``: the code object, its source lines remembered."""
    code = marshal.loads(marshalled)
    if not isinstance(code, types.CodeType):
        raise pickle.UnpicklingError("a code object's payload holds no code")
    if lines:
        _remember_source(filename, first, lines)
    return code


class _SourcePickler(cloudpickle.Pickler):  # type: ignore[misc]  # cloudpickle is untyped
    """cloudpickle, except that code objects keep their filename and carry their source.

    ``marshal`` keeps every attribute of a code object, nested ones included; like
    cloudpickle's own reduction it needs the same Python minor version on both sides.
    """

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is types.CodeType:
            first, lines = _source_span(obj)
            return _restore_code, (marshal.dumps(obj), obj.co_filename, first, lines)
        return super().reducer_override(obj)


def dumps(obj: object, *, name: str = "object") -> list[Buffer]:
    """Frames for one object: the pickle stream first, then its out-of-band buffers. A
    function sent before and unchanged since is not pickled again (``_functions.py``).

    Raises:
        SerializationError: ``obj`` cannot be pickled; the message names ``name``.
    """
    if type(obj) is types.FunctionType:
        func = obj
        return _FUNCTIONS.frames(func, lambda: _pickled(func, name))
    if _is_plain(obj):
        return [pickle.dumps(obj, protocol=5)]
    return _pickled(obj, name)


def _pickled(obj: object, name: str) -> list[Buffer]:
    buffers: list[Buffer] = []

    def keep_large(pb: pickle.PickleBuffer) -> bool:
        raw = pb.raw()
        if raw.nbytes < OUT_OF_BAND_THRESHOLD:
            return True  # true: serialize in band
        buffers.append(raw)
        return False

    try:
        with io.BytesIO() as file:
            _SourcePickler(file, protocol=5, buffer_callback=keep_large).dump(obj)
            stream = file.getvalue()
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


def loads_many(
    counts: Sequence[int], frames: Sequence[Buffer], memo: FunctionMemo | None = None
) -> list[Any]:
    """Inverse of ``dumps_many``; with ``memo``, functions received before come from it
    rather than being rebuilt (``_functions.py``).

    Raises:
        SerializationError: the counts do not match the frames, or a payload is bad.
    """
    if sum(counts) != len(frames) or any(c < 1 for c in counts):
        raise SerializationError("frame counts do not match the payload")
    out: list[Any] = []
    start = 0
    for count in counts:
        part = frames[start : start + count]
        out.append(
            loads(part) if memo is None else memo.loads(part, functools.partial(loads, part))
        )
        start += count
    return out
