"""Client layer: ``concurrent.futures.Executor``s over the engines (``tc.executor()``,
``mec.executor()``), for code written against the standard library's interface.

``TaskExecutor`` submits each call as a load-balanced task: whichever engine is free runs it.
``EngineExecutor`` sends each call to the next engine of a MultiEngine client or view in
turn (round robin). Both return Futures of the call's value (``submit``), ``map`` in order,
and ``shutdown(wait=True)`` waits for what was submitted; ``cancel_futures=True`` drops the
calls that have not started (tasks are aborted).
"""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pxcluster.client._decorators import task_predicate
from pxcluster.client._tasks import MapTask, TaskResult

if TYPE_CHECKING:
    from pxcluster.client.multiengine import MultiEngineClient
    from pxcluster.client.task import TaskClient

__all__ = ["EngineExecutor", "TaskExecutor"]


class _Tracked(concurrent.futures.Executor):
    """What both executors share: the futures not done yet, and the shut-down state."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._outstanding: set[concurrent.futures.Future[Any]] = set()
        self._shut = False

    def _track(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            if self._shut:
                raise RuntimeError("cannot submit after shutdown()")
            self._outstanding.add(future)
        future.add_done_callback(self._untrack)

    def _untrack(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._outstanding.discard(future)

    def _check_open(self) -> None:
        if self._shut:
            raise RuntimeError("cannot submit after shutdown()")

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No more submissions; ``wait``: until every call submitted is done."""
        with self._lock:
            self._shut = True
            waiting = list(self._outstanding)
        if cancel_futures:
            for future in waiting:
                self._cancel(future)
        if wait:
            concurrent.futures.wait(waiting)

    def _cancel(self, future: concurrent.futures.Future[Any]) -> None:
        future.cancel()


class TaskExecutor(_Tracked):
    """Each call a load-balanced task (``tc.executor()``); ``@require``/``@depend`` on the
    function choose the engines it may run on.

    Args:
        client: the TaskClient that runs the tasks.
        retries: how many more times a failed call runs, elsewhere if its engine died.
    """

    def __init__(self, client: TaskClient, retries: int = 0) -> None:
        super().__init__()
        self._client = client
        self._retries = retries
        self._task_of: dict[int, str] = {}

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        """Run ``fn(*args, **kwargs)`` as a task; a Future of its value."""
        self._check_open()
        task = MapTask(fn, args, kwargs, retries=self._retries, depend=task_predicate(fn))
        pending = self._client._submit(task)
        task_id = pending.task_id
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        future.set_running_or_notify_cancel()
        self._task_of[id(future)] = task_id

        def settle(done: concurrent.futures.Future[TaskResult]) -> None:
            self._task_of.pop(id(future), None)
            self._client._forget(task_id)  # the Future holds the value now
            if future.done():
                return
            try:
                future.set_result(done.result().r)
            except BaseException as exc:
                future.set_exception(exc)

        pending.add_done_callback(settle)
        self._track(future)
        return future

    def _cancel(self, future: concurrent.futures.Future[Any]) -> None:
        task_id = self._task_of.get(id(future))
        if task_id is not None and not future.done():
            try:
                self._client.abort(task_id)
            except Exception:  # finished meanwhile, or the controller went away
                return


class EngineExecutor(_Tracked):
    """Each call on the next engine of a client or view in turn (``mec.executor()``)."""

    def __init__(self, client: MultiEngineClient) -> None:
        super().__init__()
        self._client = client
        self._ids = client.ids
        if not self._ids:
            raise ValueError("no engines to run on")
        self._turn = itertools.cycle(self._ids)

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        """Run ``fn(*args, **kwargs)`` on the next engine; a Future (a PendingResult) of
        its value."""
        self._check_open()
        engine = next(self._turn)
        pending: concurrent.futures.Future[Any] = self._client[engine].apply_async(
            fn, *args, **kwargs
        )
        self._track(pending)
        return pending

    def _cancel(self, future: concurrent.futures.Future[Any]) -> None:
        interrupt = getattr(future, "interrupt", None)
        if callable(interrupt):
            interrupt()
