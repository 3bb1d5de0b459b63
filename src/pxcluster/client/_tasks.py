"""Client layer: task descriptions (MapTask, StringTask) and their results (TaskResult).

A task is turned into a spec (header content) and pickled objects here, on the client, so
an unpicklable function or argument fails in ``run`` before anything is queued. The spec
format is the engine's (see ``engine/_tasks.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pxcluster._buffers import Buffer
from pxcluster._errors import (
    EngineDied,
    EngineError,
    TaskAborted,
    TaskError,
    TaskTimeout,
    UnmetDependency,
)
from pxcluster.client._decorators import task_predicate
from pxcluster.client._results import reply_error
from pxcluster.serialize import detach, dumps_many, loads, loads_many
from pxcluster.wire import Message, Status


@dataclasses.dataclass
class _Options:
    """What every kind of task accepts besides its work."""

    clear_before: bool = False
    clear_after: bool = False
    retries: int = 0
    recovery_task: MapTask | StringTask | None = None
    depend: Callable[[dict[str, Any]], bool] | None = None
    after: Sequence[str] = ()
    timeout: float | None = None

    def check(self) -> None:
        if type(self.retries) is not int or self.retries < 0:
            raise ValueError(f"retries must be a count >= 0, not {self.retries!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {self.timeout!r}")
        if isinstance(self.after, str) or not all(isinstance(a, str) for a in self.after):
            raise TypeError("after must be a list of task ids (as run() returns them)")
        if self.depend is not None and not callable(self.depend):
            raise TypeError("depend must be a callable taking the engine's properties")


class _Task:
    """Common encoding of MapTask and StringTask."""

    options: _Options

    def _work(self) -> tuple[dict[str, Any], list[tuple[str, object]]]:
        raise NotImplementedError

    def encode(self, nested: bool = False) -> tuple[dict[str, Any], list[Buffer]]:
        """The task's spec and frames.

        Raises:
            SerializationError: the function or an argument cannot be pickled.
        """
        opts = self.options
        spec, work = self._work()
        objects: list[tuple[str, object]] = []
        if opts.depend is not None:
            spec["depend"] = True
            objects.append(("depend", opts.depend))
        objects += work
        spec["clear_before"] = opts.clear_before
        spec["clear_after"] = opts.clear_after
        counts, frames = dumps_many(objects)
        if not nested:
            spec.update(retries=opts.retries, after=list(opts.after), timeout=opts.timeout)
            if opts.recovery_task is not None:
                recovery, recovery_frames = opts.recovery_task.encode(nested=True)
                spec["recovery"] = recovery
                counts += recovery["counts"]
                frames += recovery_frames
        spec["counts"] = counts
        return spec, detach(frames)


class MapTask(_Task):
    """A task whose result is ``func(*args, **kwargs)``, run on whichever engine is free.

    Args:
        func: the function (a lambda or closure is fine: it travels with cloudpickle).
        args, kwargs: its arguments.
        clear_before, clear_after: reset the engine's namespace before / after the task.
        retries: how many more times to run it if it fails or its engine dies.
        recovery_task: a task run on the same engine after a failure, before a retry.
        depend: ``depend(properties) -> bool`` decides on each engine whether it may run
            there; ``properties`` has ``engine_id``, ``hostname``, ``pid``, ``namespace``.
        after: ids of tasks that must succeed first.
        timeout: seconds it may run before it is interrupted and fails with TaskTimeout.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        *,
        clear_before: bool = False,
        clear_after: bool = False,
        retries: int = 0,
        recovery_task: MapTask | StringTask | None = None,
        depend: Callable[[dict[str, Any]], bool] | None = None,
        after: Sequence[str] = (),
        timeout: float | None = None,
    ) -> None:
        if not callable(func):
            raise TypeError(f"MapTask needs a callable, not {func!r}")
        if depend is None:  # @require / @depend on the function choose the engines
            depend = task_predicate(func)
        self.func = func
        self.args = tuple(args or ())
        self.kwargs = dict(kwargs or {})
        self.options = _Options(
            clear_before, clear_after, retries, recovery_task, depend, tuple(after), timeout
        )
        self.options.check()

    def _work(self) -> tuple[dict[str, Any], list[tuple[str, object]]]:
        # The function apart from its arguments: a function sent before is not pickled
        # again here nor rebuilt on the engine (serialize/_functions.py); the arguments as
        # one object, which the C pickler takes when they are plain.
        return {"kind": "map"}, [
            ("the task's function", self.func),
            ("the task's arguments", (self.args, self.kwargs)),
        ]


class StringTask(_Task):
    """A task that pushes names, runs ``code`` and pulls names back (``TaskResult.ns``).

    Args:
        code: Python code to run in the engine's namespace.
        pull: a name or names whose values come back in the result's ``ns``.
        push: names and values set before the code runs. The seeds' order is
            ``StringTask(code, pull, push)``; a dict given second is taken as ``push``
            (``StringTask(code, {'x': 3}, 'y')``), so either order works.
        Other arguments: as for MapTask.
    """

    def __init__(
        self,
        code: str,
        pull: str | Sequence[str] | Mapping[str, Any] | None = None,
        push: Mapping[str, Any] | str | Sequence[str] | None = None,
        *,
        clear_before: bool = False,
        clear_after: bool = False,
        retries: int = 0,
        recovery_task: MapTask | StringTask | None = None,
        depend: Callable[[dict[str, Any]], bool] | None = None,
        after: Sequence[str] = (),
        timeout: float | None = None,
    ) -> None:
        if not isinstance(code, str):
            raise TypeError(f"StringTask needs code as a str, not {type(code).__name__}")
        if isinstance(pull, Mapping) and not isinstance(push, Mapping):
            pull, push = push, pull  # StringTask(code, {'x': 3}, 'y'): the names tell
        if push is not None and not isinstance(push, Mapping):
            raise TypeError(f"push takes a dict of names to values, not {push!r}")
        self.code = code
        self.push = dict(push or {})
        self.pull = [pull] if isinstance(pull, str) else list(pull or [])
        if not all(isinstance(k, str) for k in [*self.push, *self.pull]):
            raise TypeError("push and pull take names as str")
        self.options = _Options(
            clear_before, clear_after, retries, recovery_task, depend, tuple(after), timeout
        )
        self.options.check()

    def _work(self) -> tuple[dict[str, Any], list[tuple[str, object]]]:
        spec = {"kind": "string", "code": self.code, "push": list(self.push), "pull": self.pull}
        return spec, [(repr(k), v) for k, v in self.push.items()]


class Namespace(dict[str, Any]):
    """Names pulled by a StringTask; by key (``ns['y']``) or attribute (``ns.y``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"the task pulled no name {name!r}") from None


@dataclasses.dataclass
class TaskResult:
    """What became of one task: its value or its failure, where and when it ran."""

    taskid: str
    engineid: int
    result: Any = None
    ns: Namespace = dataclasses.field(default_factory=Namespace)
    failure: Exception | None = None
    submitted: float = 0.0
    started: float = 0.0
    completed: float = 0.0
    stdout: str = ""
    stderr: str = ""

    @property
    def results(self) -> Namespace:
        """IPython 0.10's name of ``ns``: the names a StringTask pulled."""
        return self.ns

    @property
    def duration(self) -> float:
        """Seconds the task ran on its engine (0 if it never ran)."""
        return max(0.0, self.completed - self.started) if self.started else 0.0

    @property
    def r(self) -> Any:
        """The value (a MapTask's return value, a StringTask's ``ns``), or the failure raised."""
        if self.failure is not None:
            self.raise_exception()
        return self.result

    def raise_exception(self) -> None:
        """Raise the task's failure (the engine's original exception where it travelled)."""
        failure = self.failure
        if failure is None:
            return None
        original = getattr(failure, "original", None)
        if isinstance(original, BaseException):
            raise original from failure
        raise failure

    def __repr__(self) -> str:
        state = "failed" if self.failure is not None else "ok"
        return (
            f"<TaskResult {self.taskid} {state} on engine {self.engineid} in {self.duration:.3f} s>"
        )


def task_failure(msg: Message) -> Exception | None:
    """The failure a task's reply stands for (None for success)."""
    if msg.status == Status.OK:
        return None
    content = msg.content
    text = str(content.get("error", "task failed"))
    kind = content.get("kind")
    if msg.status == Status.ABORTED or kind == "aborted":
        return TaskAborted(text)
    if kind == "unmet":
        return UnmetDependency(text)
    if kind in ("duplicate", "invalid"):
        return TaskError(text)
    if kind == "died":
        return EngineDied(text, msg.engine)
    if msg.status == Status.ENGINE_ERROR:
        return EngineError(text, msg.engine)
    if content.get("timed_out") is not None:
        timeout = TaskTimeout(
            f"task ran past its timeout of {content['timed_out']} s "
            f"on engine {msg.engine} and was interrupted"
        )
        timeout.__cause__ = reply_error(msg)
        return timeout
    return reply_error(msg)


def task_result(msg: Message, submitted: float = 0.0) -> TaskResult:
    """Build the TaskResult of a task's final reply."""
    content = msg.content
    result = TaskResult(
        taskid=msg.parent,
        engineid=msg.engine,
        failure=task_failure(msg),
        submitted=float(content.get("submitted", submitted)),
        started=float(content.get("started", 0.0)),
        completed=float(content.get("completed", msg.ts or 0.0)),
        stdout=str(content.get("stdout", "")),
        stderr=str(content.get("stderr", "")),
    )
    if result.failure is None:
        if "names" in content:
            values = loads_many(content["counts"], list(msg.buffers))
            result.ns = Namespace(zip(content["names"], values, strict=True))
            result.result = result.ns
        elif msg.buffers:
            result.result = loads(list(msg.buffers), name="the task's result")
    return result


def chunked(sequences: Iterable[Sequence[Any]], chunksize: int) -> list[list[Sequence[Any]]]:
    """Split parallel sequences into chunks of ``chunksize`` items each (the last shorter)."""
    seqs = list(sequences)
    length = min(len(s) for s in seqs)
    return [[s[i : i + chunksize] for s in seqs] for i in range(0, length, chunksize)]
