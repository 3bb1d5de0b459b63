"""Client layer: the Task interface, where engines are anonymous and the controller balances.

``run`` returns a task id at once (ids are made here, so submitting costs no round trip);
the controller sends the result to this client when the task finishes, and keeps it in its
record store, where any client can fetch it by id later with ``get_task_result``.
"""

from __future__ import annotations

import concurrent.futures
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pxcluster._buffers import Buffer
from pxcluster._errors import PxclusterTimeoutError, TaskError, UnknownTask
from pxcluster.client._core import ClientCore
from pxcluster.client._decorators import task_predicate
from pxcluster.client._partition import as_sliceable
from pxcluster.client._progress import progress_bar
from pxcluster.client._results import PendingResult
from pxcluster.client._ssh import SshRoute
from pxcluster.client._tasks import MapTask, StringTask, TaskResult, chunked, task_result
from pxcluster.serialize import detach, dumps, dumps_many
from pxcluster.wire import Message, MsgType, unpack_header

if TYPE_CHECKING:
    from pxcluster.client.executors import TaskExecutor


#: A map's chunks are sent this many at a time as they are made: made all first, a
#: 10,000-task map kept the controller and the engines idle for the ~0.3 s the client took
#: to make them (7,700 tasks/s against 10,000 for the same tasks submitted one by one).
_MAP_SLICE = 256


class PendingTask(PendingResult[TaskResult]):
    """Resolves with the TaskResult of one task, whether the task succeeded or failed."""

    def __init__(
        self,
        task_id: str,
        submitted: float,
        settled: Callable[[str, TaskResult], None] | None = None,
    ) -> None:
        super().__init__("task", [(task_id, -1)], None)
        self.task_id = task_id
        self.submitted = submitted
        self._settled = settled

    @property
    def msg_ids(self) -> list[str]:
        return [self.task_id]  # one per task: no scan of keys for each of many tiny tasks

    def add_reply(self, msg: Message) -> None:
        if msg.parent != self.task_id or self.done():
            return
        try:
            value = task_result(msg, self.submitted)
        except Exception as exc:  # e.g. the result does not unpickle here
            value = TaskResult(msg.parent, msg.engine, failure=exc, submitted=self.submitted)
        try:
            self.set_result(value)
        except concurrent.futures.InvalidStateError:
            return  # resolved meanwhile (the client was closed)
        if self._settled is not None:
            self._settled(self.task_id, value)


class TaskClient:
    """Runs tasks on whichever engine is free (load balancing in the controller).

    Args:
        connection_file: a client connection file; default: the profile's.
        profile: the profile whose running cluster to use.
        profile_dir: the profile folder, if not under ``~/.pxcluster``.
        timeout: seconds to wait for the controller to answer the first time.
        ssh: ``[user@]host[:port]`` to reach the controller through an SSH tunnel from
            (the connection file is read there when there is none here).
        sshkey: the private key for that login (default: ssh's own choice).
        ssh_options: more ssh arguments, e.g. ``["-o", "StrictHostKeyChecking=no"]``.
    """

    def __init__(
        self,
        connection_file: str | Path | None = None,
        *,
        profile: str = "default",
        profile_dir: str | Path | None = None,
        timeout: float = 10.0,
        ssh: str | None = None,
        sshkey: str | None = None,
        ssh_options: Sequence[str] = (),
    ) -> None:
        route = SshRoute.of(ssh, sshkey, ssh_options)
        self._core = ClientCore.open_for(
            self, connection_file, profile, profile_dir, timeout, route
        )
        #: This client's tasks not finished yet, and the results of those finished (kept
        #: apart: a finished task keeps its TaskResult alone, not its Future, its lock and
        #: its bookkeeping; with 100,000 results kept, the garbage collector's full passes
        #: over them were a quarter of the client's CPU per tiny task). A task moves from
        #: one to the other in the I/O thread, result first: look in ``_tasks`` first.
        self._tasks: dict[str, PendingTask] = {}
        self._results: dict[str, TaskResult] = {}

    # -- submitting --------------------------------------------------------------------------

    def run(
        self, task: MapTask | StringTask, block: bool = False, timeout: float | None = None
    ) -> Any:
        """Queue ``task``; returns its id (or, with ``block``, its TaskResult).

        Raises:
            SerializationError: the task's function or data cannot be pickled; nothing queued.
        """
        if not isinstance(task, MapTask | StringTask):
            raise TypeError(f"run needs a MapTask or a StringTask, not {type(task).__name__}")
        task_id = self._submit(task).task_id
        if block:
            return self.get_task_result(task_id, block=True, timeout=timeout)
        return task_id

    def _submit(self, task: MapTask | StringTask) -> PendingTask:
        spec, frames = task.encode()
        return self._send_many([(spec, frames)])[0]

    def _send_many(
        self, tasks: Sequence[tuple[dict[str, Any], Sequence[Buffer]]]
    ) -> list[PendingTask]:
        """Submit tasks (spec and frames each). Tasks submitted while others are in flight
        travel to the controller several to a message (a lone one goes at once, as it is):
        see ``client/_outbox.py``."""
        now = time.time()
        session = self._core.session
        msgs: list[Message] = []
        pendings: list[PendingTask] = []
        for spec, frames in tasks:
            task_id = self._core.new_id()
            msgs.append(Message(MsgType.TASK, task_id, spec, frames, session=session, ts=now))
            pendings.append(PendingTask(task_id, now, self._settled))
        for pending in pendings:  # before they go: a reply may come back at once
            self._tasks[pending.task_id] = pending
        try:
            self._core.submit_tasks(msgs, pendings)
        except BaseException:
            for pending in pendings:
                self._tasks.pop(pending.task_id, None)
            raise
        return pendings

    def _settled(self, task_id: str, result: TaskResult) -> None:
        """A task of this client finished (I/O thread): keep its result, not its Future."""
        self._results[task_id] = result
        self._tasks.pop(task_id, None)

    def _forget(self, task_id: str) -> None:
        self._tasks.pop(task_id, None)
        self._results.pop(task_id, None)

    # -- results -----------------------------------------------------------------------------

    def get_task_result(
        self, taskid: str, block: bool = False, timeout: float | None = None
    ) -> TaskResult | None:
        """The TaskResult of a task (of any client), or None if not finished and not ``block``.

        Raises:
            UnknownTask: the controller knows no task with that id.
            PxclusterTimeoutError: ``block`` and not finished within ``timeout``.
        """
        pending = self._tasks.get(taskid)
        if pending is not None:
            self._core.flush_tasks()  # it may still wait in the outbox
            if not block and not pending.done():
                return None
            return pending.get_result(timeout=timeout)
        result = self._results.get(taskid)
        if result is not None:
            return result
        return self._fetch(taskid, block, timeout)

    def _fetch(self, taskid: str, block: bool, timeout: float | None) -> TaskResult | None:
        """Ask the controller's record store for a task this client did not submit."""
        if not isinstance(taskid, str):
            raise UnknownTask(f"task ids are str (as run() returns them), not {taskid!r}")
        reply = self._core.call_controller(
            MsgType.TASK_RESULT, {"id": taskid, "block": block}, "get_task_result", timeout
        )
        state = reply.content.get("state")
        if state == "unknown" and reply.content.get("not_stored"):
            raise UnknownTask(
                f"task {taskid!r} finished but the controller could not keep its result: "
                f"{reply.content.get('store_error')}"
            )
        if state == "unknown":
            raise UnknownTask(f"no task with id {taskid!r} is known (never run, or cleared)")
        if state != "done":
            return None
        inner = unpack_header(
            bytes(reply.buffers[0]),
            list(reply.buffers[1:]),
            check_sizes=not reply.content.get("dropped"),
        )
        result = task_result(inner)
        if reply.content.get("dropped") and result.failure is None:
            result.failure = TaskError(
                f"task {taskid}'s result was bigger than the controller's result_cap and was "
                "not kept; fetch it with the client that ran it"
            )
        return result

    def barrier(
        self, taskids: Iterable[str], timeout: float | None = None, progress: bool = False
    ) -> None:
        """Wait until every task in ``taskids`` has finished (failed ones included).

        Raises:
            PxclusterTimeoutError: some were still running after ``timeout`` seconds.
            UnknownTask: an id is not known.
        """
        ids = list(taskids)
        deadline = None if timeout is None else time.monotonic() + timeout
        mine = [p for p in map(self._tasks.get, ids) if p is not None]
        finished = sum(1 for t in ids if t in self._results)
        self._core.flush_tasks()
        _wait_all(mine, timeout, progress, finished)
        for taskid in ids:
            if taskid not in self._tasks and taskid not in self._results:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                self._fetch(taskid, block=True, timeout=left)

    # -- control -----------------------------------------------------------------------------

    def abort(self, taskid: str, timeout: float | None = 10.0) -> None:
        """Drop a queued task, or interrupt it where it runs; it then fails with TaskAborted.

        A task that already finished keeps its result.

        Raises:
            UnknownTask: the controller knows no task with that id.
        """
        reply = self._core.call_controller(MsgType.TASK_ABORT, {"id": taskid}, "abort", timeout)
        if reply.content.get("state") == "unknown":
            raise UnknownTask(f"no task with id {taskid!r} is known (never run, or cleared)")

    def queue_status(self, verbose: bool = False, timeout: float | None = 10.0) -> dict[str, Any]:
        """Counts of tasks in the controller: ``queued`` (no engine yet), ``waiting`` (on
        ``after``), ``assigned`` (sent to an engine: running there or next in its line),
        ``running`` (of those, the ones at the head of their engine's queue, which engines
        run in order), and the records kept.

        ``verbose=True`` adds the ids of this client's tasks by state: ``pending`` (not
        finished), ``succeeded`` and ``failed``.
        """
        reply = self._core.call_controller(MsgType.TASK_STATUS, {}, "queue_status", timeout)
        status: dict[str, Any] = dict(reply.content)
        if verbose:
            mine: dict[str, list[str]] = {"pending": [], "succeeded": [], "failed": []}
            running = list(self._tasks.items())  # list(): one step, while tasks move
            finished = dict(self._results)
            for taskid, pending in running:
                if taskid in finished:
                    continue
                if not pending.done():
                    mine["pending"].append(taskid)
                elif pending.exception() is None and pending.result().failure is None:
                    mine["succeeded"].append(taskid)  # moving to _results right now
                else:
                    mine["failed"].append(taskid)
            for taskid, result in finished.items():
                mine["succeeded" if result.failure is None else "failed"].append(taskid)
            status.update(mine)
        return status

    def clear(self, timeout: float | None = 10.0) -> int:
        """Forget the finished results of this client's tasks, here and in the controller."""
        reply = self._core.call_controller(
            MsgType.TASK_CLEAR, {"session": self._core.session}, "clear", timeout
        )
        for taskid in [t for t, p in list(self._tasks.items()) if p.done()]:
            self._tasks.pop(taskid, None)
        self._results.clear()
        return int(reply.content.get("cleared", 0))

    # -- map ---------------------------------------------------------------------------------

    def map(
        self,
        func: Callable[..., Any],
        *sequences: Iterable[Any],
        chunksize: int | None = None,
        timeout: float | None = None,
    ) -> list[Any]:
        """``list(map(func, *sequences))``, load-balanced in chunks of ``chunksize`` items."""
        return list(self.imap(func, *sequences, chunksize=chunksize, timeout=timeout))

    def imap(
        self,
        func: Callable[..., Any],
        *sequences: Iterable[Any],
        chunksize: int | None = None,
        timeout: float | None = None,
    ) -> Iterator[Any]:
        """Like ``map``, but yields results in order as they arrive (all tasks are queued now).

        Raises (while iterating):
            RemoteError or another task failure: the first chunk that failed.
        """
        if not sequences:
            raise TypeError("map() needs at least one sequence")
        if not callable(func):
            raise TypeError(f"map needs a callable, not {func!r}")
        seqs = [as_sliceable(s) for s in sequences]
        length = min(len(s) for s in seqs)
        if chunksize is None:
            chunksize = max(1, math.ceil(length / (4 * max(1, len(self._core.engines)))))
        head = detach(dumps(func, name="the function"))
        predicate = task_predicate(func)  # @require / @depend: only engines that meet it
        depend_frames = detach(dumps(predicate, name="the condition")) if predicate else []
        depend_counts = [len(depend_frames)] if depend_frames else []
        ids: list[str] = []
        tasks: list[tuple[dict[str, Any], Sequence[Buffer]]] = []
        for chunk in chunked(seqs, chunksize):
            if len(tasks) == _MAP_SLICE:  # these go while the next are made
                ids += [p.task_id for p in self._send_many(tasks)]
                tasks = []
            counts, frames = dumps_many([("args", chunk), ("kwargs", {})])
            frames = detach(frames)  # chunks are views of the caller's arrays
            spec = {
                "kind": "map",
                "chunk": True,
                "counts": [*depend_counts, len(head), *counts],
                "retries": 0,
                "after": [],
            }
            if depend_frames:
                spec["depend"] = True
            tasks.append((spec, [*depend_frames, *head, *frames]))
        ids += [p.task_id for p in self._send_many(tasks)]
        return self._ordered_results(ids, timeout)

    def _ordered_results(self, ids: list[str], timeout: float | None) -> Iterator[Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        for taskid in ids:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            result = self.get_task_result(taskid, block=True, timeout=left)
            assert result is not None
            self._forget(taskid)
            yield from result.r

    def parallel(
        self, chunksize: int | None = None
    ) -> Callable[[Callable[..., Any]], LoadBalancedFunction]:
        """Decorator: calling the function on sequences maps it over them as tasks."""

        def decorate(func: Callable[..., Any]) -> LoadBalancedFunction:
            return LoadBalancedFunction(self, func, chunksize)

        return decorate

    def executor(self, retries: int = 0) -> TaskExecutor:
        """A ``concurrent.futures.Executor`` whose calls run as load-balanced tasks."""
        from pxcluster.client.executors import TaskExecutor

        return TaskExecutor(self, retries)

    def register_joblib_backend(self, name: str = "pxcluster", make_default: bool = False) -> None:
        """Register a joblib backend (``name``) that runs joblib's batches on this client.

        Raises:
            ImportError: joblib is not installed.
        """
        from pxcluster.client._joblib import register_joblib_backend

        register_joblib_backend(name, make_default, client=self)

    # -- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        """Disconnect from the controller; queued tasks still run and their results are kept."""
        self._core.close()

    def __enter__(self) -> TaskClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<TaskClient {self._core.connection.url}: {len(self._core.engines)} engines>"


class LoadBalancedFunction:
    """A function whose call on sequences maps it over them as tasks (``parallel()``)."""

    def __init__(self, client: TaskClient, func: Callable[..., Any], chunksize: int | None) -> None:
        self.client = client
        self.func = func
        self.chunksize = chunksize

    def __call__(self, *sequences: Iterable[Any]) -> list[Any]:
        return self.client.map(self.func, *sequences, chunksize=self.chunksize)


def _wait_all(
    pending: list[PendingTask], timeout: float | None, progress: bool, finished: int = 0
) -> None:
    """Wait for every future, with a tqdm bar when asked and tqdm is installed (counting
    ``finished`` tasks as done already)."""
    bar = None
    if progress:
        try:  # the same bar as the MultiEngine calls' (a widget in Jupyter)
            bar = progress_bar(len(pending) + finished, "tasks", "task")
            if finished:
                bar.update(finished)
        except ImportError:  # pragma: no cover - tqdm is a dependency
            bar = None
    try:
        if bar is None:  # woken once, when the last is done: not once per task
            _, left = concurrent.futures.wait(pending, timeout)
            if left:
                raise concurrent.futures.TimeoutError
        else:
            for _ in concurrent.futures.as_completed(pending, timeout):
                bar.update(1)
    except concurrent.futures.TimeoutError:
        still = sum(1 for p in pending if not p.done())
        raise PxclusterTimeoutError(
            f"{still} of {len(pending)} tasks not finished after {timeout} s"
        ) from None
    finally:
        if bar is not None:
            bar.close()
