"""Engine layer: running one load-balanced task (MapTask or StringTask) in the namespace.

A task's header content is its spec::

    kind          "map" (call a function) or "string" (push, run code, pull)
    counts        frame counts of the pickled objects that follow, in order:
                  [depend predicate] then, for "map": (func, args, kwargs) as one object,
                  or func, args, kwargs apart (``chunk``: args are sequences to zip and
                  call func on item by item); for "string": the
                  pushed values; then the recovery task's objects
    depend        the first object is a predicate called with the engine's properties; a
                  false answer refuses the task here (the scheduler tries another engine)
    clear_before / clear_after   reset the namespace around the task
    code, push, pull             the StringTask's code and names
    recovery      a nested spec run on this engine when the task fails
    timeout       seconds the task may run (enforced by the engine's I/O thread)
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import types
from collections.abc import Callable, Sequence
from typing import Any

from pxcluster._buffers import Buffer
from pxcluster.engine._execute import reset_namespace, run_cell
from pxcluster.engine._functions import bind_to_namespace
from pxcluster.serialize import FunctionMemo, dumps, dumps_many, loads_many
from pxcluster.wire import MAX_ENTRIES, batchable, pack_batch

Reply = tuple[dict[str, Any], list[Buffer]]


class TaskRefused(Exception):
    """The task's ``depend`` predicate refused this engine."""


class TaskRunner:
    """Runs task specs against a namespace."""

    def __init__(self, namespace: dict[str, Any], engine_id: Callable[[], int]) -> None:
        self.namespace = namespace
        self._engine_id = engine_id
        self.started = 0.0
        #: Functions of recent tasks (and applies), rebuilt once each
        #: (``serialize/_functions.py``).
        self.functions = FunctionMemo()

    def properties(self) -> dict[str, Any]:
        """What a ``depend`` predicate sees: who this engine is and what it holds."""
        return {
            "engine_id": self._engine_id(),
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "namespace": types.MappingProxyType(self.namespace),
        }

    def run(self, spec: dict[str, Any], buffers: Sequence[Buffer]) -> Reply:
        """Run the task in ``spec``; on failure run its recovery task, then re-raise."""
        self.started = time.time()
        objects = loads_many(spec["counts"], buffers, self.functions)
        recovery = spec.get("recovery")
        cut = len(objects) - (len(recovery["counts"]) if recovery else 0)
        try:
            return self._run_one(spec, objects[:cut] if recovery else objects)
        except TaskRefused:
            raise
        except BaseException:
            if recovery:
                # The task's own error is what the user needs to see, not the recovery's.
                with contextlib.suppress(Exception):
                    self._run_one(recovery, objects[cut:])
            raise

    def _run_one(self, spec: dict[str, Any], objects: list[Any]) -> Reply:
        if spec.get("depend"):
            predicate = objects.pop(0)
            if not predicate(self.properties()):
                raise TaskRefused
        if spec.get("clear_before"):
            reset_namespace(self.namespace)
        try:
            if spec["kind"] == "map":
                return self._map_task(spec, objects)
            return self._string_task(spec, objects)
        finally:
            if spec.get("clear_after"):
                reset_namespace(self.namespace)

    def _map_task(self, spec: dict[str, Any], objects: list[Any]) -> Reply:
        # A MapTask sends its function, then (args, kwargs); a map chunk sends the function
        # (pickled once for every chunk), then args and kwargs; (func, args, kwargs) as one
        # object is what clients before 2026-12 sent.
        if len(objects) == 2:
            func, (args, kwargs) = objects
        else:
            func, args, kwargs = objects[0] if len(objects) == 1 else objects
        func = bind_to_namespace(func, self.namespace)  # __main__'s functions see our names
        if spec.get("chunk"):
            result: Any = [func(*items) for items in zip(*args, strict=False)]
        else:
            result = func(*args, **kwargs)
        return {}, dumps(result, name="the task's result")

    def _string_task(self, spec: dict[str, Any], objects: list[Any]) -> Reply:
        self.namespace.update(zip(spec.get("push", []), objects, strict=True))
        run_cell(spec["code"], self.namespace, f"<engine {self._engine_id()} task>")
        names: list[str] = spec.get("pull", [])
        missing = [n for n in names if n not in self.namespace]
        if missing:
            raise NameError(f"name {missing[0]!r} is not defined")
        counts, frames = dumps_many((n, self.namespace[n]) for n in names)
        return {"counts": counts, "names": names}, frames


#: Seconds a held task reply waits at most: past it the I/O thread sends it (the task after
#: it runs long), so holding delays a result by a few milliseconds at most.
HOLD_FOR = 0.002
#: Task replies held at most before they go: the controller refills the engine's queue
#: while it runs what is left, rather than after it ran dry (it keeps up to 32 tiny tasks
#: on an engine: ``task_prefetch_short``). 16 rather than 8: half the reply messages, whose
#: sending, signing and (in the controller) reading cost as much as a task's own work.
HOLD_AT_MOST = 16

Entry = tuple[bytes, Sequence[Buffer]]


class HeldReplies:
    """Replies to finished tasks held back while more tasks wait, then sent as one BATCH.

    The main thread holds a task's reply only when another task waits right behind it in
    the engine's queue (a lone task's reply is never held), at most ``HOLD_AT_MOST`` of
    them; the next reply that is not held takes them along (``take``). The I/O thread sends
    them when they have waited ``HOLD_FOR`` seconds (``due``): the task after them runs
    long, or was withdrawn. Not thread-safe: the engine calls it under its send lock.
    """

    def __init__(
        self, new_id: Callable[[], str], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._new_id = new_id
        self._clock = clock
        self._held: list[Entry] = []
        self._since = 0.0

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, header: bytes, buffers: Sequence[Buffer], more_waiting: bool) -> bool:
        """Hold this task reply if more tasks wait and there is room; True if held."""
        if not more_waiting or len(self._held) >= HOLD_AT_MOST - 1 or not batchable(buffers):
            return False
        if not self._held:
            self._since = self._clock()
        self._held.append((header, buffers))
        return True

    def due(self) -> bool:
        """True when replies have been held ``HOLD_FOR`` seconds: send them now."""
        return bool(self._held) and self._clock() - self._since >= HOLD_FOR

    def take(self, last: Entry | None = None) -> list[Entry]:
        """The held replies (and ``last``, a task reply, after them) as messages to sign and
        send: one BATCH, or a lone reply; nothing is held afterwards."""
        entries = self._held
        alone = last is not None and not batchable(last[1])  # a big one: not copied into one
        if last is not None and not alone:
            entries.append(last)
        self._held = []
        out: list[Entry] = []
        for start in range(0, len(entries), MAX_ENTRIES):
            group = entries[start : start + MAX_ENTRIES]
            out.append(group[0] if len(group) == 1 else pack_batch(self._new_id(), group))
        if alone and last is not None:
            out.append(last)
        return out
