"""Engine layer: what each request does to the namespace; runs in the engine's main thread.

Each handler takes the request and returns ``(content, buffers)`` for the reply. A handler
that raises makes an ERROR reply carrying the exception (see ``error_reply``).
"""

from __future__ import annotations

import pickle
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from pxcluster._buffers import Buffer
from pxcluster.engine._display import DisplayCapture, flush_figures, rich_bundle
from pxcluster.engine._execute import (
    CapturedOutput,
    reset_namespace,
    run_cell,
    user_keys,
    user_traceback,
)
from pxcluster.engine._functions import bind_to_namespace
from pxcluster.engine._tasks import TaskRunner
from pxcluster.serialize import (
    SHM_THRESHOLD,
    dumps,
    dumps_many,
    export_frames,
    import_frames,
    loads_many,
    write_segment,
)
from pxcluster.wire import Message, MsgType

Reply = tuple[dict[str, Any], list[Buffer]]


class RequestHandlers:
    """The engine's namespace and the operations requests perform on it."""

    def __init__(self, namespace: dict[str, Any], engine_id: Callable[[], int]) -> None:
        self.namespace = namespace
        self.execution_count = 0
        self._engine_id = engine_id
        self._table: dict[MsgType, Callable[[Message], Reply]] = {
            MsgType.EXECUTE: self.execute,
            MsgType.PUSH: self.push,
            MsgType.PULL: self.pull,
            MsgType.APPLY: self.apply,
            MsgType.RESET: self.reset,
            MsgType.KEYS: self.keys,
            MsgType.TASK: self.task,
        }
        self.tasks = TaskRunner(namespace, engine_id)
        self.output: CapturedOutput | None = None
        self.displays: DisplayCapture | None = None
        #: Values a request replaced, kept until its reply is sent (``release_retired``).
        self.retired: list[Any] = []

    def handle(self, msg: Message, on_write: Callable[[str, str], None] | None) -> Reply:
        """Run ``msg``; its stdout/stderr are captured (and passed to ``on_write``)."""
        handler = self._table.get(msg.type)
        if handler is None:
            raise ValueError(f"engine cannot handle {msg.type.name}")
        self.output = CapturedOutput(on_write)
        self.displays = DisplayCapture(on_write)
        with self.output, self.displays:
            return handler(msg)

    def release_retired(self) -> None:
        """Drop the values the last request replaced (call once its reply is sent).

        They are dropped in a background thread: unmapping a 100 MB array's pages takes
        ~15 ms, which the next request (often a pull) need not wait for either.
        """
        if self.retired:
            _reaper().put(self.retired)
            self.retired = []

    def execute(self, msg: Message) -> Reply:
        code = msg.content.get("code")
        if not isinstance(code, str):
            raise TypeError("execute needs code as a string")
        self.execution_count += 1
        filename = f"<engine {self._engine_id()} In [{self.execution_count}]>"
        try:
            display = run_cell(code, self.namespace, filename)
        finally:
            figures = flush_figures()  # as a notebook shows the figures a cell left open
        value = self.namespace.get("_")  # run_cell's final value, when display is not None
        shown = any(value is figure for figure in figures)
        rich = None if display is None or shown else rich_bundle(value, display)
        return {**self.captured(), "display": display, "execute_result": rich}, []

    def captured(self) -> dict[str, Any]:
        """Counter and output so far: part of every EXECUTE reply, errors included."""
        out = self.output
        return {
            "n": self.execution_count,
            "stdout": out.stdout.getvalue() if out else "",
            "stderr": out.stderr.getvalue() if out else "",
            "display_data": self.displays.bundles if self.displays else [],
        }

    def reply_extra(self, msg: Message) -> dict[str, Any]:
        """What a reply to ``msg`` carries besides the result, failures included."""
        kind = msg.type
        if kind is MsgType.TASK:  # the most frequent first
            out = self.output
            return {
                "started": self.tasks.started,
                "completed": time.time(),
                "stdout": out.stdout.getvalue() if out else "",
                "stderr": out.stderr.getvalue() if out else "",
            }
        if kind is MsgType.EXECUTE:
            return self.captured()
        if kind is MsgType.APPLY:
            return self.written()
        return {}

    def task(self, msg: Message) -> Reply:
        content, frames = self.tasks.run(msg.content, msg.buffers)
        return {**content, **self.reply_extra(msg)}, frames

    def push(self, msg: Message) -> Reply:
        names = msg.content["names"]
        frames = list(msg.buffers)
        if msg.content.get("shm"):  # big buffers came as shared-memory segments
            frames = import_frames(frames, msg.content["shm"], unlink_after=False)
        values = loads_many(msg.content["counts"], frames)
        namespace = self.namespace
        # push_function: a function from the client's __main__ lives in our namespace.
        values = [bind_to_namespace(value, namespace) for value in values]
        # What the push replaces is freed after the reply is sent, not before: freeing a
        # 100 MB array takes ~15 ms that the caller need not wait for.
        self.retired += [namespace[name] for name in names if name in namespace]
        namespace.update(zip(names, values, strict=True))
        return {}, []

    def pull(self, msg: Message) -> Reply:
        names: list[str] = msg.content["names"]
        missing = [n for n in names if n not in self.namespace]
        if missing:
            raise NameError(f"name {missing[0]!r} is not defined")
        if len(names) == 1 and msg.content.get("gather"):  # a gather's part, see gather()
            layout = big_array_layout(self.namespace[names[0]])
            if layout is not None:
                return {"layout": layout}, []
        into = msg.content.get("into")
        if len(names) == 1 and isinstance(into, dict):
            return self._pull_into(self.namespace[names[0]], into)
        counts, frames = dumps_many((n, self.namespace[n]) for n in names)
        if msg.content.get("shm_ok"):  # the client shares this host: big buffers by segment
            frames, indexes, _ = export_frames(frames)
            if indexes:
                return {"counts": counts, "shm": indexes}, frames
        return {"counts": counts}, frames

    def _pull_into(self, value: Any, into: dict[str, Any]) -> Reply:
        """Write an array's bytes into the client's segment, where its gather put them."""
        layout = big_array_layout(value)
        if layout is None or layout["nbytes"] != into.get("nbytes"):
            raise ValueError("the array changed while it was being gathered; gather again")
        import numpy  # a big_array_layout means numpy is loaded

        data: Any = numpy.ascontiguousarray(value)
        written = write_segment(str(into.get("segment")), int(into.get("offset", -1)), data)
        return {"written": written}, []

    def apply(self, msg: Message) -> Reply:
        source = msg.content.get("source")
        counts: list[int] = msg.content["counts"]
        # A function sent again is rebuilt once (``serialize/_functions.py``), as a task's is
        objects = loads_many(counts, msg.buffers, self.tasks.functions)
        if source is not None:
            func = eval(source, self.namespace)
        else:
            func = bind_to_namespace(objects.pop(0), self.namespace)  # __main__'s see ours
        args, kwargs = objects
        if msg.content.get("mode") == "map":
            result: Any = list(map(func, *args))
        else:
            result = func(*args, **kwargs)
        return self.written(), dumps(result, name="the result")

    def written(self) -> dict[str, Any]:
        """What the request printed, only where it printed something (an apply's reply
        then carries it for ``display_outputs()``; most print nothing and stay small)."""
        out = self.output
        if out is None:
            return {}
        text, errors = out.stdout.getvalue(), out.stderr.getvalue()
        if not text and not errors:
            return {}
        return {"stdout": text, "stderr": errors}

    def reset(self, msg: Message) -> Reply:
        reset_namespace(self.namespace)
        return {}, []

    def keys(self, msg: Message) -> Reply:
        return {"keys": user_keys(self.namespace)}, []


def big_array_layout(value: object) -> dict[str, Any] | None:
    """dtype, shape and size of a numpy array big enough for shared memory, else None."""
    if type(value).__name__ != "ndarray" or type(value).__module__ != "numpy":
        return None
    array: Any = value
    if array.dtype.hasobject or array.ndim < 1 or array.nbytes < SHM_THRESHOLD:
        return None
    return {"dtype": array.dtype.str, "shape": list(array.shape), "nbytes": int(array.nbytes)}


def error_reply(exc: BaseException, extra: dict[str, Any]) -> Reply:
    """Content and buffers describing ``exc`` for the client to rebuild as a RemoteError."""
    content = {
        **extra,
        "ename": type(exc).__name__,
        "evalue": str(exc),
        "traceback": user_traceback(exc),
    }
    try:
        buffers: list[Buffer] = dumps(exc, name="the exception")
        pickle.loads(buffers[0], buffers=buffers[1:])  # must also load on the other side
    except Exception:
        buffers = []
    return content, buffers


_reaper_queue: queue.SimpleQueue[list[Any]] | None = None


def _reaper() -> queue.SimpleQueue[list[Any]]:
    """The queue of a daemon thread that drops the values put on it (started once)."""
    global _reaper_queue
    if _reaper_queue is None:
        _reaper_queue = queue.SimpleQueue()
        thread = threading.Thread(
            target=_drop_forever, args=(_reaper_queue,), name="pxengine-free", daemon=True
        )
        thread.start()
    return _reaper_queue


def _drop_forever(values: queue.SimpleQueue[list[Any]]) -> None:
    while True:
        batch = values.get()
        batch.clear()  # the last references: big buffers are unmapped here (GIL released)
        del batch
