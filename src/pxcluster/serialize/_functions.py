"""Serialize layer: a function sent again and again is pickled once and rebuilt once.

A function from ``__main__`` (a script's or a notebook's ``def``, a lambda, a nested
function) travels by value, and cloudpickle takes about 20 us to pickle it and the engine
about 8 us to rebuild it: more than the rest of a tiny task's payload, paid for every task.
Both ends keep what they made for as long as it is certainly the same:

* The sender (``FunctionFrames``) keeps a function's frames while nothing they were made
  from can have changed. Only functions whose pickle depends on nothing mutable qualify:
  no closure cells, no attributes, and defaults, annotations and the global names the code
  uses holding values that pickle the same while they are the same object (numbers,
  strings, modules, builtins, classes and functions that travel by reference). Those values
  are kept with the frames and compared by identity on every call, so a rebound name
  (``N = 6``), a name defined since, a new default or a new ``__code__`` is seen, and the
  function is pickled again.
* The receiver (``FunctionMemo``) keeps a function rebuilt from given bytes if calling it
  cannot leave a trace in it (the same conditions) and returns it when the same bytes
  arrive again; a function with state of its own (a closure, a mutable default) is rebuilt
  every time, as before.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import operator
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import cloudpickle

from pxcluster._buffers import Buffer

_FunctionType = types.FunctionType
_CodeType = types.CodeType
_SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes})
#: Names cloudpickle takes from a by-value function's module globals besides those it uses.
_BASE_GLOBALS = ("__package__", "__name__", "__path__", "__file__")
_ABSENT = object()
_ABSENTS = (_ABSENT,) * len(_BASE_GLOBALS)
_NO_KEYWORDS: dict[str, Any] = {}  # never changed


def _by_reference(obj: Any) -> bool:
    """Whether cloudpickle pickles ``obj`` (a class, function or module) as a name to import,
    so that its pickle stays the same whatever happens inside it."""
    name: Any
    if type(obj) is types.ModuleType:
        name = obj.__name__
        if sys.modules.get(name) is not obj:
            return False
    else:
        name = getattr(obj, "__module__", None)
        qualname = getattr(obj, "__qualname__", None)
        if not isinstance(name, str) or not isinstance(qualname, str) or name == "__main__":
            return False
        found: Any = sys.modules.get(name)
        for part in qualname.split("."):
            found = getattr(found, part, None)
        if found is not obj:
            return False  # a local function or class, or one shadowed: it goes by value
    return not any(
        name == module or name.startswith(module + ".")
        for module in cloudpickle.list_registry_pickle_by_value()
    )


def _pickles_as_itself(value: Any) -> bool:
    """Whether ``value``'s pickle can only change if the value is replaced (not mutated)."""
    kind = type(value)
    if kind in _SCALARS or kind is types.BuiltinFunctionType:
        return True
    if kind is types.ModuleType or kind is _FunctionType or isinstance(value, type):
        return _by_reference(value)
    return False


def _global_names(code: _CodeType) -> tuple[str, ...]:
    """The names ``code`` and the code nested in it may read as globals (a superset)."""
    names = list(code.co_names)
    for const in code.co_consts:
        if type(const) is _CodeType:
            names += _global_names(const)
    return tuple(dict.fromkeys(names))


def _state(func: types.FunctionType, names: tuple[str, ...]) -> tuple[Any, ...]:
    """Everything ``func``'s pickle is made from, as objects to compare by identity."""
    get = func.__globals__.get
    keywords = func.__kwdefaults__ or _NO_KEYWORDS
    annotations = func.__annotations__
    return (
        func.__code__,
        func.__defaults__,
        func.__name__,
        func.__qualname__,
        func.__module__,
        func.__doc__,
        len(keywords),  # keys and values apart: an item is a new tuple every time
        *keywords,
        *keywords.values(),
        len(annotations),
        *annotations,
        *annotations.values(),
        *map(get, _BASE_GLOBALS, _ABSENTS),
        *map(get, names, itertools.repeat(_ABSENT)),
    )


def _same(was: tuple[Any, ...], now: tuple[Any, ...]) -> bool:
    return len(was) == len(now) and all(map(operator.is_, was, now))  # no generator per call


def _stateless(func: types.FunctionType, used: Iterator[Any]) -> bool:
    """Whether ``func`` holds nothing that changes without being replaced, ``used`` being
    the values of the global names it uses."""
    if func.__closure__ is not None or func.__dict__:
        return False
    values = [
        *(func.__defaults__ or ()),
        *(func.__kwdefaults__ or {}).values(),
        *func.__annotations__.values(),
        *used,
    ]
    return all(_pickles_as_itself(v) for v in values)


class FunctionFrames:
    """The sender's cache: a function's frames, made again only when they may differ.

    Bounded (least recently used first out), and holding the functions themselves: a
    lambda made anew for every call is kept only until ``size`` others came after it.
    Threads may share it (a client used from several): at worst a function is pickled twice.
    """

    def __init__(self, size: int = 256) -> None:
        self._size = size
        #: function -> (the global names its code uses, its state, its frames)
        self._kept: collections.OrderedDict[
            types.FunctionType, tuple[tuple[str, ...], tuple[Any, ...], list[Buffer]]
        ] = collections.OrderedDict()

    def frames(
        self, func: types.FunctionType, pickle: Callable[[], list[Buffer]]
    ) -> list[Buffer]:
        """``func``'s frames: kept ones if nothing changed, else ``pickle()``'s (kept if
        ``func`` qualifies)."""
        kept = self._kept.get(func)
        if kept is not None:
            names, was, frames = kept
            if _same(was, _state(func, names)):
                with contextlib.suppress(KeyError):  # another thread's call evicted it
                    self._kept.move_to_end(func)
                return list(frames)
            self._kept.pop(func, None)
        names = _global_names(func.__code__)
        state = _state(func, names)
        frames = pickle()
        found = func.__globals__
        used = (found[name] for name in names if name in found)
        if all(type(f) is bytes for f in frames) and _stateless(func, used):
            self._kept[func] = (names, state, list(frames))
            if len(self._kept) > self._size:
                self._kept.popitem(last=False)
        return frames


class FunctionMemo:
    """The receiver's cache: functions rebuilt from bytes seen before, when reusable.

    Bounded (least recently used first out); only single-frame payloads up to ``largest``
    bytes are looked up, so data never lands here, and a task's in-band arguments (up to
    64 KiB) are not copied and hashed into a key on every task: a function sent by value
    weighs 0.5-5 KiB.
    """

    def __init__(self, size: int = 64, largest: int = 16 * 1024) -> None:
        self._size = size
        self._largest = largest
        self._kept: collections.OrderedDict[bytes, types.FunctionType] = collections.OrderedDict()

    def loads(self, frames: Sequence[Buffer], rebuild: Callable[[], Any]) -> Any:
        """The object in ``frames``: a kept function, or ``rebuild()``'s result."""
        if len(frames) != 1 or len(frames[0]) > self._largest:
            return rebuild()
        key = bytes(frames[0])
        func = self._kept.get(key)
        if func is not None:
            with contextlib.suppress(KeyError):  # evicted meanwhile by another thread
                self._kept.move_to_end(key)
            return func
        obj = rebuild()
        if type(obj) is _FunctionType:
            used = (v for k, v in obj.__globals__.items() if not k.startswith("__"))
            if _stateless(obj, used):
                self._kept[key] = obj
                if len(self._kept) > self._size:
                    self._kept.popitem(last=False)
        return obj
