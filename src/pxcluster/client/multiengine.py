"""Client layer: the MultiEngine interface, where every engine is addressed by its id.

Each method sends one request (fanned out by the controller to its targets) or one request
per target (scatter, map), and returns the value, or a PendingResult when not blocking.
``block`` and ``targets`` given as keyword arguments override the instance attributes.
"""

from __future__ import annotations

import concurrent.futures
import operator
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from pxcluster._buffers import Buffer
from pxcluster._errors import EngineError, PxclusterError, PxclusterTimeoutError
from pxcluster.client._active import clear_active, load_extension_in_running_ipython, set_active
from pxcluster.client._core import ClientCore
from pxcluster.client._partition import as_sliceable, concatenate, partition, split_bounds
from pxcluster.client._progress import show_progress
from pxcluster.client._results import PendingResult, ResultList, after_all
from pxcluster.client._streams import OutputHandler, router_of
from pxcluster.serialize import (
    detach,
    dumps,
    dumps_many,
    export_frames,
    loads,
    loads_many,
    unlink_segments,
)
from pxcluster.wire import Message, MsgType

TargetSpec = int | Sequence[int] | Literal["all"]
T = TypeVar("T")
Finish = Callable[[list[Message]], Any]

#: With ``map(progress=True)`` the sequence is cut into up to this many chunks per engine,
#: so the bar moves while engines work, not only when each finishes its whole part.
_PROGRESS_CHUNKS_PER_ENGINE = 8
#: Seconds tab completion may wait for the engines' names before offering none.
_COMPLETION_TIMEOUT = 1.0


class MultiEngineClient:
    """Drives a set of engines, each by its id, from a script, IPython or a notebook.

    Args:
        connection_file: a client connection file; default: the profile's.
        profile: the profile whose running cluster to use.
        profile_dir: the profile folder, if not under ``~/.pxcluster``.
        timeout: seconds to wait for the controller to answer the first time.
        targets: the default engines: ``'all'``, an id, or a list of ids.
        block: wait for results (True) or return PendingResults (False) by default.

    Raises:
        NoClusterRunning: there is no connection file.
        PxclusterTimeoutError: no controller answered within ``timeout``.
    """

    _scalar = False

    def __init__(
        self,
        connection_file: str | Path | None = None,
        *,
        profile: str = "default",
        profile_dir: str | Path | None = None,
        timeout: float = 10.0,
        targets: TargetSpec = "all",
        block: bool = True,
    ) -> None:
        self._core = ClientCore.open_for(self, connection_file, profile, profile_dir, timeout)
        self._owns_core = True
        router_of(self._core)  # installed now, before any request can stream output
        # The last execute sent to each engine, for get_result() and %result.
        self._last_execute: dict[int, PendingResult[Any]] = {}
        self.targets: TargetSpec = targets
        self.block = block

    # -- plumbing --------------------------------------------------------------------------

    def _resolve(self, targets: TargetSpec | None) -> list[int]:
        spec = self.targets if targets is None else targets
        if isinstance(spec, str) and spec == "all":
            ids = self._core.engines
            if not ids:
                raise EngineError("no engines are registered with the controller")
            return ids
        return normalize_targets(spec)

    def _blocking(self, block: bool | None) -> bool:
        return self.block if block is None else block

    def _deliver(
        self, pending: PendingResult[Any], block: bool | None, timeout: float | None
    ) -> Any:
        if self._blocking(block):
            return pending.get_result(timeout=timeout)
        return pending

    def _per_engine(self, values: list[Any]) -> Any:
        """A list with one value per engine; a view of one engine returns the value itself."""
        return values[0] if self._scalar else values

    def _request(
        self,
        method: str,
        msg_type: MsgType,
        targets: TargetSpec | None,
        finish: Finish,
        block: bool | None,
        timeout: float | None,
        content: dict[str, Any] | None = None,
        buffers: Sequence[Buffer] = (),
    ) -> Any:
        pending = self._send(
            method, msg_type, targets, finish, content, buffers, copy=not self._blocking(block)
        )
        return self._deliver(pending, block, timeout)

    def _send(
        self,
        method: str,
        msg_type: MsgType,
        targets: TargetSpec | None,
        finish: Finish,
        content: dict[str, Any] | None = None,
        buffers: Sequence[Buffer] = (),
        on_output: OutputHandler | None = None,
        copy: bool = False,
    ) -> PendingResult[Any]:
        """Send one request to the targets; ``on_output`` gets what they stream meanwhile.

        ``copy``: the call returns before the frames are sent, so frames that view the
        caller's memory are copied (the caller may change its arrays at once).
        """
        ids = self._resolve(targets)
        content = dict(content or {})
        if on_output is not None:
            content["stream"] = True
        buffers, segments = self._share(msg_type, ids, content, buffers, copy)
        msg = Message(msg_type, self._core.new_id(), content, buffers, targets=ids)
        pending = PendingResult(
            method,
            [(msg.id, t) for t in ids],
            finish,
            on_interrupt=lambda: self._interrupt_nowait(ids),
        )
        if on_output is not None:
            self._listen(pending, on_output)
        self._release_when_done(pending, segments)
        self._core.submit(msg, pending)
        return pending

    def _share(
        self,
        msg_type: MsgType,
        ids: list[int],
        content: dict[str, Any],
        buffers: Sequence[Buffer],
        copy: bool,
    ) -> tuple[Sequence[Buffer], list[str]]:
        """Big buffers of a push to engines on this host go by shared memory (one copy
        instead of two socket hops); a pull from them asks for its answer the same way."""
        local = self._core.same_host(ids)
        if msg_type == MsgType.PULL and local:
            content["shm_ok"] = True
        segments: list[str] = []
        if msg_type == MsgType.PUSH and local and buffers:
            buffers, indexes, segments = export_frames(buffers)
            if indexes:
                content["shm"] = indexes
        if copy:
            buffers = detach(buffers)
        return buffers, segments

    @staticmethod
    def _release_when_done(pending: PendingResult[Any], segments: list[str]) -> None:
        """Unlink the segments once every target answered (each mapped them by then)."""
        if segments:
            pending.add_done_callback(lambda _: unlink_segments(segments))

    def _listen(self, pending: PendingResult[Any], on_output: OutputHandler) -> None:
        router = router_of(self._core)
        ids = pending.msg_ids
        router.register(ids, on_output)
        pending.add_done_callback(lambda _: router.forget(ids))

    def _request_each(
        self,
        method: str,
        msg_type: MsgType,
        parts: list[tuple[int, dict[str, Any], list[Buffer]]],
        finish: Finish,
        block: bool | None,
        timeout: float | None,
    ) -> Any:
        """One request per target, each with its own payload, resolved as one result."""
        return self._deliver(
            self._send_each(method, msg_type, parts, finish, copy=not self._blocking(block)),
            block,
            timeout,
        )

    def _send_each(
        self,
        method: str,
        msg_type: MsgType,
        parts: list[tuple[int, dict[str, Any], list[Buffer]]],
        finish: Finish,
        weights: Sequence[int] | None = None,
        copy: bool = False,
    ) -> PendingResult[Any]:
        msgs = []
        segments: list[str] = []
        for target, content, buffers in parts:
            content = dict(content)
            frames, made = self._share(msg_type, [target], content, buffers, copy)
            segments += made
            msgs.append(Message(msg_type, self._core.new_id(), content, frames, targets=[target]))
        ids = [t for t, _, _ in parts]
        pending = PendingResult(
            method,
            [(m.id, t) for m, t in zip(msgs, ids, strict=True)],
            finish,
            on_interrupt=lambda: self._interrupt_nowait(sorted(set(ids))),
            weights=weights,
        )
        self._release_when_done(pending, segments)
        self._core.submit_many(msgs, pending)
        return pending

    def _stop_messages(self, ids: list[int], clear_queue: bool = True) -> list[Message]:
        """CLEAR_QUEUE then INTERRUPT for ``ids``: in that order, so that once the running
        code stops, nothing queued behind it starts."""
        types = [MsgType.CLEAR_QUEUE, MsgType.INTERRUPT] if clear_queue else [MsgType.INTERRUPT]
        return [Message(t, self._core.new_id(), targets=ids) for t in types]

    def _interrupt_nowait(self, ids: list[int]) -> None:
        """Ctrl-C while waiting: stop what those engines run and drop what is queued there
        (nobody waits for the acknowledgements)."""
        msgs = self._stop_messages(ids)
        keys = [(m.id, t) for m in msgs for t in ids]
        self._core.submit_many(msgs, PendingResult("interrupt", keys, list))

    def _none_each(self, replies: list[Message]) -> Any:
        return self._per_engine([None] * len(replies))

    # -- engines and the queue -------------------------------------------------------------

    def get_ids(self, timeout: float | None = 10.0) -> list[int]:
        """Ids of the engines registered now, asked of the controller."""
        return self._core.refresh_engines(timeout)

    def wait_for_engines(self, count: int, timeout: float | None = 60.0) -> list[int]:
        """Wait until at least ``count`` engines are registered; returns their ids."""
        return self._core.wait_for_engines(count, timeout)

    def queue_status(self, timeout: float | None = 10.0) -> list[tuple[int, dict[str, int]]]:
        """For each engine, how many requests are queued or running on it."""
        reply = self._core.call_controller(MsgType.QUEUE_STATUS, {}, "queue_status", timeout)
        return [(eid, {"queue": n}) for eid, n in reply.content["queues"]]

    def clear_queue(
        self,
        targets: TargetSpec | None = None,
        block: bool | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Drop requests queued on the targets that have not started (they fail as aborted)."""
        return self._request(
            "clear_queue", MsgType.CLEAR_QUEUE, targets, self._none_each, block, timeout
        )

    def interrupt(
        self,
        targets: TargetSpec | None = None,
        block: bool | None = None,
        timeout: float | None = None,
        clear_queue: bool = True,
    ) -> Any:
        """Stop the targets: drop the requests queued on them (as ``clear_queue()``) and
        raise KeyboardInterrupt in the code they run now, as Ctrl-C during a blocking call
        does. ``clear_queue=False`` only interrupts; what is queued then runs."""
        ids = self._resolve(targets)
        msgs = self._stop_messages(ids, clear_queue)
        pending = PendingResult(
            "interrupt",
            [(m.id, t) for m in msgs for t in ids],
            lambda rs: self._per_engine([None] * len(ids)),
        )
        self._core.submit_many(msgs, pending)
        return self._deliver(pending, block, timeout)

    def barrier(
        self, pending_results: Iterable[PendingResult[Any]], timeout: float | None = None
    ) -> None:
        """Wait until every PendingResult given is done (failed ones included).

        Raises:
            PxclusterTimeoutError: some were not done after ``timeout`` seconds.
        """
        waiting = list(pending_results)
        _, not_done = concurrent.futures.wait(waiting, timeout)
        if not_done:
            raise PxclusterTimeoutError(
                f"{len(not_done)} of {len(waiting)} results not done after {timeout} s"
            )

    def kill(
        self,
        targets: TargetSpec | None = None,
        controller: bool = False,
        block: bool | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Stop the target engines (``controller=True``: the controller and every engine)."""
        if controller:
            self._core.call_controller(MsgType.SHUTDOWN, {}, "kill", timeout)
            return None
        return self._request("kill", MsgType.SHUTDOWN, targets, self._none_each, block, timeout)

    # -- code ------------------------------------------------------------------------------

    def execute(
        self,
        lines: str,
        targets: TargetSpec | None = None,
        block: bool | None = None,
        timeout: float | None = None,
        *,
        on_output: OutputHandler | None = None,
    ) -> Any:
        """Run ``lines`` of Python on the targets; returns a ResultList of their output.

        Args:
            on_output: called (in the client's I/O thread) with each piece of output the
                engines write or display while the code runs; the magics print it live.

        Raises:
            CompositeError: the code raised on one or more engines.
        """
        if not isinstance(lines, str):
            raise TypeError(f"execute needs code as a str, not {type(lines).__name__}")

        def finish(replies: list[Message]) -> ResultList:
            return ResultList(
                {
                    "id": r.engine,
                    "number": r.content["n"],
                    "input": {"raw": lines, "translated": lines},
                    "stdout": r.content["stdout"],
                    "stderr": r.content["stderr"],
                    "display": r.content["display"],
                    "display_data": r.content.get("display_data") or [],
                    "execute_result": r.content.get("execute_result"),
                }
                for r in replies
            )

        pending = self._send(
            "execute", MsgType.EXECUTE, targets, finish, {"code": lines}, on_output=on_output
        )
        self._last_execute.update(dict.fromkeys((k[1] for k in pending.keys), pending))
        return self._deliver(pending, block, timeout)

    def get_result(
        self,
        targets: TargetSpec | None = None,
        block: bool | None = None,
        timeout: float | None = None,
    ) -> Any:
        """The result of the last ``execute`` this client sent to each target, as one
        ResultList (what ``%result`` shows); engines it never ran code on are left out.

        Raises:
            CompositeError: that last execute failed on one or more of the targets.
        """
        ids = self._resolve(targets)
        chosen = {e: self._last_execute[e] for e in ids if e in self._last_execute}

        def collect(_: Any) -> ResultList:
            return ResultList(
                entry
                for engine, pending in chosen.items()
                for entry in pending.result()
                if entry["id"] == engine
            )

        return self._deliver(
            after_all("get_result", list(chosen.values()), collect), block, timeout
        )

    def run(
        self,
        filename: str | Path,
        targets: TargetSpec | None = None,
        block: bool | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Run the Python file ``filename`` (read here) on the targets."""
        return self.execute(Path(filename).read_text(), targets, block, timeout)

    def reset(
        self,
        targets: TargetSpec | None = None,
        block: bool | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Clear the targets' namespaces."""
        return self._request("reset", MsgType.RESET, targets, self._none_each, block, timeout)

    def keys(
        self,
        targets: TargetSpec | None = None,
        block: bool | None = None,
        timeout: float | None = None,
    ) -> Any:
        """The names defined in each target's namespace."""
        return self._request(
            "keys",
            MsgType.KEYS,
            targets,
            lambda rs: self._per_engine([r.content["keys"] for r in rs]),
            block,
            timeout,
        )

    # -- data ------------------------------------------------------------------------------

    def push(
        self,
        namespace: dict[str, Any],
        targets: TargetSpec | None = None,
        block: bool | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Set each name of ``namespace`` to its value on the targets.

        Raises:
            SerializationError: a value cannot be pickled; nothing was sent.
        """
        if not isinstance(namespace, dict) or not all(isinstance(k, str) for k in namespace):
            raise TypeError("push needs a dict of names (str) to values")
        for name in namespace:
            if not name.isidentifier() or (name.startswith("__") and name.endswith("__")):
                raise ValueError(
                    f"cannot push {name!r}: names must be identifiers, and dunder names "
                    "belong to the engine's namespace itself"
                )
        counts, frames = dumps_many(namespace.items())
        content = {"names": list(namespace), "counts": counts}
        return self._request(
            "push", MsgType.PUSH, targets, self._none_each, block, timeout, content, frames
        )

    push_function = push

    def pull(
        self,
        keys: str | Sequence[str],
        targets: TargetSpec | None = None,
        block: bool | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Values of ``keys`` on each target: one value per engine for a name, a list of
        values per engine for a tuple of names.

        Raises:
            CompositeError: a name is not defined on some engine (wrapping NameError).
        """
        single = isinstance(keys, str)
        names = [keys] if isinstance(keys, str) else list(keys)
        if not all(isinstance(n, str) for n in names):
            raise TypeError("pull needs a name or a sequence of names")

        def finish(replies: list[Message]) -> Any:
            values = [loads_many(r.content["counts"], r.buffers) for r in replies]
            return self._per_engine([v[0] for v in values] if single else values)

        return self._request(
            "pull", MsgType.PULL, targets, finish, block, timeout, {"names": names}
        )

    pull_function = pull

    def zip_pull(
        self,
        keys: Sequence[str],
        targets: TargetSpec | None = None,
        block: bool | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Like ``pull`` of several names, regrouped: one tuple per name across engines."""
        names = list(keys)
        if not all(isinstance(n, str) for n in names):
            raise TypeError("zip_pull needs a sequence of names")

        def finish(replies: list[Message]) -> Any:
            per_engine = [loads_many(r.content["counts"], r.buffers) for r in replies]
            return list(zip(*per_engine, strict=True))

        return self._request(
            "zip_pull", MsgType.PULL, targets, finish, block, timeout, {"names": names}
        )

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return self.pull(key)
        return EngineView(self, normalize_targets(key)[0])

    def __setitem__(self, key: str, value: Any) -> None:
        self.push({key: value})

    # -- scatter, gather, map --------------------------------------------------------------

    def scatter(
        self,
        key: str,
        seq: Iterable[Any],
        targets: TargetSpec | None = None,
        flatten: bool = False,
        block: bool | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Split ``seq`` into contiguous parts, one per target, pushed as ``key``."""
        ids = self._resolve(targets)
        parts = []
        for target, piece in zip(ids, partition(seq, len(ids), flatten), strict=True):
            counts, frames = dumps_many([(key, piece)])
            parts.append((target, {"names": [key], "counts": counts}, frames))
        return self._request_each("scatter", MsgType.PUSH, parts, self._none_each, block, timeout)

    def gather(
        self,
        key: str,
        targets: TargetSpec | None = None,
        block: bool | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Pull ``key`` from each target and join the parts in target order."""
        pending = self.pull(key, targets, block=False)
        if self._scalar:
            return self._deliver(pending, block, timeout)
        return self._deliver(_chain(pending, concatenate), block, timeout)

    def map(
        self,
        func: Callable[..., Any] | str,
        *sequences: Iterable[Any],
        targets: TargetSpec | None = None,
        block: bool | None = None,
        timeout: float | None = None,
        progress: bool = False,
    ) -> Any:
        """Parallel ``map``: the same list as ``list(map(func, *sequences))``.

        ``func`` is a callable (sent with cloudpickle) or a ``'lambda ...'`` string evaluated
        on the engines. The sequences are split into one contiguous part per target.
        ``progress=True`` (blocking only) shows a progress bar of the items done; the parts
        are then sent as several smaller chunks each, so that the bar moves.

        Raises:
            ImportError: ``progress=True`` and tqdm is not installed.
        """
        if not sequences:
            raise TypeError("map() needs at least one sequence")
        blocking = self.block if block is None else block
        if progress and not blocking:
            raise ValueError(
                "progress=True shows a bar while a blocking map waits; with block=False, "
                "call wait_interactive() on the PendingResult"
            )
        ids = self._resolve(targets)
        seqs = [as_sliceable(s) for s in sequences]
        length = min(len(s) for s in seqs)
        head: list[Buffer] = []
        base: dict[str, Any] = {"mode": "map"}
        if isinstance(func, str):
            base["source"] = func
        elif callable(func):
            head = dumps(func, name="the function")
        else:
            raise TypeError(f"map needs a callable or a 'lambda ...' string, not {func!r}")
        chunks = len(ids)
        if progress:
            chunks = max(chunks, min(length, chunks * _PROGRESS_CHUNKS_PER_ENGINE))
        bounds = split_bounds(length, chunks)
        parts = []
        for index, (lo, hi) in enumerate(bounds):
            target = ids[index * len(ids) // chunks]  # each engine: a contiguous run of chunks
            counts, frames = dumps_many([("args", [s[lo:hi] for s in seqs]), ("kwargs", {})])
            if head:
                counts = [len(head), *counts]
            parts.append((target, {**base, "counts": counts}, [*head, *frames]))

        def finish(replies: list[Message]) -> list[Any]:
            out: list[Any] = []
            for reply in replies:
                out.extend(loads(reply.buffers))
            return out

        if not progress:
            return self._request_each("map", MsgType.APPLY, parts, finish, block, timeout)
        pending = self._send_each(
            "map", MsgType.APPLY, parts, finish, [hi - lo for lo, hi in bounds]
        )
        if not show_progress(pending, "map", "item", 0.1, timeout):
            raise PxclusterTimeoutError(f"map did not finish within {timeout} s")
        return pending.get_result()

    def parallelize(
        self,
        func: Callable[..., Any] | str,
        targets: TargetSpec | None = None,
        block: bool | None = None,
    ) -> ParallelFunction:
        """A function that maps ``func`` over its sequence arguments on the engines."""
        return ParallelFunction(self, func, targets, block)

    # -- interactive use -------------------------------------------------------------------

    def activate(self) -> None:
        """Make this client the one ``%px``, ``%%px``, ``%autopx`` and ``%result`` use.

        In IPython or Jupyter this also loads the ``pxcluster`` extension (the magics), as
        ``%load_ext pxcluster`` does. Activating another client later switches the magics.
        """
        set_active(self)
        load_extension_in_running_ipython()

    def _ipython_key_completions_(self) -> list[str]:
        """Names defined on the engines, for IPython's completion of ``mec['...``."""
        try:
            keys = self.keys(block=True, timeout=_COMPLETION_TIMEOUT)
        except PxclusterError:
            return []  # busy or gone engines: no completions rather than a hang or an error
        names = set(keys) if self._scalar else {name for each in keys for name in each}
        return sorted(names)

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Disconnect from the controller (the cluster keeps running)."""
        clear_active(self)
        if self._owns_core:
            self._core.close()

    def __enter__(self) -> MultiEngineClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self._core.connection.url}: "
            f"{len(self._core.engines)} engines, targets={self.targets!r}, block={self.block}>"
        )


def normalize_targets(spec: object) -> list[int]:
    """Engine ids from an id or a sequence of ids (numpy integers too).

    Raises:
        TypeError: something that is not an engine id (bools and strings included).
        ValueError: no ids, a negative id, or an id given twice.
    """
    if isinstance(spec, (bool, str, bytes)):
        raise TypeError(f"targets must be 'all', an engine id or a list of ids, not {spec!r}")
    try:
        items: list[object] = [operator.index(spec)]  # type: ignore[arg-type]
    except TypeError:
        if not isinstance(spec, Iterable):
            raise TypeError(
                f"targets must be 'all', an engine id or a list of ids, not {spec!r}"
            ) from None
        items = list(spec)
    ids = []
    for item in items:
        if isinstance(item, bool):
            raise TypeError(f"targets holds {item!r}, which is not an engine id")
        try:
            ids.append(operator.index(item))  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(f"targets holds {item!r}, which is not an engine id") from None
    if not ids:
        raise ValueError("targets is an empty list")
    if any(i < 0 for i in ids):
        raise ValueError(f"engine ids are never negative: {ids}")
    if len(set(ids)) != len(ids):
        raise ValueError(f"targets names an engine more than once: {ids}")
    return ids


class EngineView(MultiEngineClient):
    """One engine of a MultiEngineClient (``mec[0]``): the same methods, scalar results."""

    _scalar = True

    def __init__(self, parent: MultiEngineClient, engine_id: int) -> None:
        self._core = parent._core
        self._owns_core = False
        self._last_execute = parent._last_execute
        self.targets = [engine_id]
        self.block = parent.block
        self.engine_id = engine_id

    def _resolve(self, targets: TargetSpec | None) -> list[int]:
        if targets is not None and normalize_targets(targets) != [self.engine_id]:
            raise ValueError(
                f"this is a view of engine {self.engine_id}; targets={targets!r} is not "
                "allowed here (use the MultiEngineClient for other engines)"
            )
        return [self.engine_id]


class ParallelFunction:
    """``func`` mapped over sequences on the engines; made by ``parallelize``."""

    def __init__(
        self,
        client: MultiEngineClient,
        func: Callable[..., Any] | str,
        targets: TargetSpec | None,
        block: bool | None,
    ) -> None:
        self.client = client
        self.func = func
        self.targets = targets
        self.block = block

    def __call__(self, *sequences: Iterable[Any]) -> Any:
        return self.client.map(self.func, *sequences, targets=self.targets, block=self.block)


def _chain(pending: PendingResult[Any], then: Callable[[Any], T]) -> PendingResult[T]:
    """A PendingResult resolving to ``then(value of pending)``, or to its error."""
    chained: PendingResult[T] = PendingResult(
        pending.method, [], None, on_interrupt=pending._on_interrupt
    )

    def relay(done: concurrent.futures.Future[Any]) -> None:
        exc = done.exception()
        if exc is not None:
            chained.fail(exc)
            return
        try:
            chained.set_result(then(done.result()))
        except Exception as err:
            chained.fail(err)

    pending.add_done_callback(relay)
    chained._source = pending
    return chained
