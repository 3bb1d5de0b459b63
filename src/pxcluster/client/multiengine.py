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
from typing import Any

from pxcluster._buffers import Buffer
from pxcluster._errors import PxclusterError, PxclusterTimeoutError
from pxcluster.client._active import clear_active, load_extension_in_running_ipython, set_active
from pxcluster.client._core import ClientCore
from pxcluster.client._habits import IpyparallelForms
from pxcluster.client._partition import as_sliceable, concatenate, partition, split_bounds
from pxcluster.client._progress import show_progress
from pxcluster.client._results import (
    PendingResult,
    ResultList,
    after_all,
    chained,
    execute_entry,
)
from pxcluster.client._ssh import SshRoute
from pxcluster.client._streams import OutputHandler, router_of
from pxcluster.client._targets import TargetSpec, normalize_targets
from pxcluster.serialize import (
    create_segment,
    dumps,
    dumps_many,
    import_frames,
    loads,
    loads_many,
    shm_available,
    unlink_segments,
)
from pxcluster.wire import Message, MsgType

__all__ = ["DirectView", "EngineView", "MultiEngineClient", "ParallelFunction", "TargetSpec"]

#: With ``map(progress=True)`` the sequence is cut into up to this many chunks per engine,
#: so the bar moves while engines work, not only when each finishes its whole part.
_PROGRESS_CHUNKS_PER_ENGINE = 8
#: Seconds tab completion may wait for the engines' names before offering none.
_COMPLETION_TIMEOUT = 1.0


class MultiEngineClient(IpyparallelForms):
    """Drives a set of engines, each by its id, from a script, IPython or a notebook.

    Args:
        connection_file: a client connection file; default: the profile's.
        profile: the profile whose running cluster to use.
        profile_dir: the profile folder, if not under ``~/.pxcluster``.
        timeout: seconds to wait for the controller to answer the first time.
        targets: the default engines: ``'all'``, an id, or a list of ids.
        block: wait for results (True) or return PendingResults (False) by default.
        ssh: ``[user@]host[:port]`` to reach the controller through an SSH tunnel from
            (the connection file is read there when there is none here).
        sshkey: the private key for that login (default: ssh's own choice).
        ssh_options: more ssh arguments, e.g. ``["-o", "StrictHostKeyChecking=no"]``.

    Raises:
        NoClusterRunning: there is no connection file.
        PxclusterTimeoutError: no controller answered within ``timeout``.
    """

    _scalar = False
    #: A line ``%px`` prints before running a command (the kernel client's seed message).
    px_banner: str | None = None

    def __init__(
        self,
        connection_file: str | Path | None = None,
        *,
        profile: str = "default",
        profile_dir: str | Path | None = None,
        timeout: float = 10.0,
        targets: TargetSpec = "all",
        block: bool = True,
        ssh: str | None = None,
        sshkey: str | None = None,
        ssh_options: Sequence[str] = (),
    ) -> None:
        route = SshRoute.of(ssh, sshkey, ssh_options)
        self._core = ClientCore.open_for(
            self, connection_file, profile, profile_dir, timeout, route
        )
        self._owns_core = True
        router_of(self._core)  # installed now, before any request can stream output
        # The last execute sent to each engine, for get_result() and %result.
        self._last_execute: dict[int, PendingResult[Any]] = {}
        self.targets: TargetSpec = targets
        self.block = block

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
            return ResultList(execute_entry(r, lines) for r in replies)

        pending = self._send(
            "execute",
            MsgType.EXECUTE,
            targets,
            finish,
            {"code": lines},
            on_output=on_output,
            on_failure=finish,  # each engine's output and error, for %result
            direct=self._blocking(block),
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

    def __getitem__(self, key: int | str | slice | Sequence[int]) -> Any:
        """``mec['a']`` pulls ``a``; ``mec[0]`` is a view of engine 0 (``mec[-1]``: the
        last engine); ``mec[1:3]``, ``mec[::2]``, ``mec[[0, 2]]`` and ``mec[:]`` are views
        of several engines (a slice cuts the list of this client's engines, ``ids``)."""
        if isinstance(key, str):
            return self.pull(key)
        if isinstance(key, slice):
            if key == slice(None) and self.targets == "all":
                return DirectView(self, "all")
            chosen = self.ids[key]
            if not chosen:
                raise IndexError(f"engines {self.ids}[{_slice_text(key)}] selects no engine")
            return DirectView(self, chosen)
        if isinstance(key, (bool, bytes)):
            raise TypeError(f"index with an engine id, a list of ids or a slice, not {key!r}")
        try:
            index = operator.index(key)  # type: ignore[arg-type]
        except TypeError:
            ids = self._resolve(normalize_targets(key), "__getitem__")
            return DirectView(self, ids)
        if index < 0:
            known = self.ids
            if -index > len(known):
                raise IndexError(f"engine index {index} out of range for engines {known}")
            index = known[index]
        return EngineView(self, self._resolve(index, "__getitem__")[0])

    @property
    def ids(self) -> list[int]:
        """The ids of this client's (or view's) engines, as the controller last announced
        them (no round trip; ``get_ids()`` asks the controller)."""
        if isinstance(self.targets, str):
            return self._core.engines
        return normalize_targets(self.targets)

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
        """Pull ``key`` from each target and join the parts in target order.

        Where the parts are big numpy arrays on engines of this host, the engines write
        them straight into one shared-memory segment that becomes the result: one copy in
        all, made by the engines in parallel, instead of theirs plus a concatenation here.
        """
        if self._scalar:
            return self._deliver(self.pull(key, targets, block=False), block, timeout)
        if not isinstance(key, str):
            raise TypeError("gather needs one name")
        ids = self._resolve(targets)
        if not (shm_available() and self._core.same_host(ids)):
            pending = self.pull(key, ids, block=False)
            return self._deliver(chained(pending, concatenate), block, timeout)
        first = self._send(
            "gather", MsgType.PULL, ids, lambda replies: replies, {"names": [key], "gather": True}
        )
        return self._deliver(
            chained(first, lambda replies: self._join_parts(key, ids, replies)), block, timeout
        )

    def _join_parts(self, key: str, ids: list[int], replies: list[Message]) -> Any:
        """The gathered value from the first replies: their values, joined, or a second
        round that has the engines write big array parts into one segment."""
        layouts = [r.content.get("layout") for r in replies]
        if not any(layouts):
            return concatenate([loads_many(r.content["counts"], r.buffers)[0] for r in replies])
        if all(layouts) and _joinable(layouts):
            return self._gather_into_segment(key, ids, [dict(x or {}) for x in layouts])
        # Some big arrays and some other values: pull the big ones as usual.
        big = [target for target, layout in zip(ids, layouts, strict=True) if layout]
        rest = self.pull(key, big, block=False)

        def join(values: list[Any]) -> Any:
            parts = iter(values)
            return concatenate(
                [
                    next(parts) if layout else loads_many(r.content["counts"], r.buffers)[0]
                    for r, layout in zip(replies, layouts, strict=True)
                ]
            )

        return chained(rest, join)

    def _gather_into_segment(
        self, key: str, ids: list[int], layouts: list[dict[str, Any]]
    ) -> PendingResult[Any]:
        name = create_segment(sum(layout["nbytes"] for layout in layouts))
        parts: list[tuple[int, dict[str, Any], list[Buffer]]] = []
        offset = 0
        for target, layout in zip(ids, layouts, strict=True):
            into = {"segment": name, "offset": offset, "nbytes": layout["nbytes"]}
            parts.append((target, {"names": [key], "into": into}, []))
            offset += layout["nbytes"]

        def result(_: list[Message]) -> Any:
            import numpy

            (view,) = import_frames([name.encode()], [0], unlink_after=True)
            rows = sum(layout["shape"][0] for layout in layouts)
            array = numpy.frombuffer(view, dtype=numpy.dtype(layouts[0]["dtype"]))
            return array.reshape([rows, *layouts[0]["shape"][1:]])

        def forget_segment(done: concurrent.futures.Future[Any]) -> None:
            if done.exception() is not None:  # no result maps it: remove it now
                unlink_segments([name])

        pending = self._send_each("gather", MsgType.PULL, parts, result)
        pending.add_done_callback(forget_segment)
        return pending

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

    def apply(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``func(*args, **kwargs)`` on each target; returns one result per engine.

        The engines are the client's ``targets``, the call blocks as ``block`` says and
        waits at most ``timeout`` (the attributes; a view, ``mec[0].apply(f)``, calls one
        engine and returns its result itself): every keyword goes to ``func``. To choose
        per call, use ``apply_sync`` / ``apply_async``, a view (``mec[[0, 2]]``) or
        ``with mec.temp_flags(block=False, timeout=5):``. ``func`` travels with
        cloudpickle, so a lambda or a closure is fine; a function defined in ``__main__``
        (a script, IPython, a notebook) sees the engine's names as its globals.

        Raises:
            CompositeError: ``func`` raised on one or more engines.
            SerializationError: ``func`` or an argument cannot be pickled; nothing was sent.
        """
        return self._apply(func, args, kwargs, None)

    def parallelize(
        self,
        func: Callable[..., Any] | str,
        targets: TargetSpec | None = None,
        block: bool | None = None,
    ) -> ParallelFunction:
        """A function that maps ``func`` over its sequence arguments on the engines."""
        return ParallelFunction(self, func, targets, block)

    # -- interactive use -------------------------------------------------------------------

    def activate(self, suffix: str = "") -> None:
        """Make this client the one ``%px``, ``%%px``, ``%autopx``, ``%result`` use.

        In IPython or Jupyter this also loads the ``pxcluster`` extension (the magics), as
        ``%load_ext pxcluster`` does. Activating another client later switches the magics.
        ``suffix`` (``'_a'``) makes magics of their own for this client instead
        (``%px_a``, ``%%px_a``, ``%autopx_a``, ``%pxresult_a``), beside the plain ones.
        """
        if suffix and not suffix.isidentifier() and not ("x" + suffix).isidentifier():
            raise ValueError(f"a magic suffix is letters, digits or _, not {suffix!r}")
        set_active(self, suffix)
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


class EngineView(MultiEngineClient):
    """One engine of a MultiEngineClient (``mec[0]``): the same methods, scalar results."""

    _scalar = True

    def __init__(self, parent: MultiEngineClient, engine_id: int) -> None:
        self._core = parent._core
        self._owns_core = False
        self._last_execute = parent._last_execute
        self.targets = [engine_id]
        self.block = parent.block
        self.timeout = parent.timeout
        self.engine_id = engine_id

    def _resolve(self, targets: TargetSpec | None, method: str = "this call") -> list[int]:
        if targets is not None and normalize_targets(targets) != [self.engine_id]:
            raise ValueError(
                f"this is a view of engine {self.engine_id}; targets={targets!r} is not "
                "allowed here (use the MultiEngineClient for other engines)"
            )
        return [self.engine_id]


class DirectView(MultiEngineClient):
    """Several engines of a MultiEngineClient (``mec[1:3]``, ``mec[[0, 2]]``, ``mec[:]``):
    every method of the client, on those engines by default; a list per call as for the
    client. ``targets=`` still chooses others for one call."""

    def __init__(self, parent: MultiEngineClient, targets: TargetSpec) -> None:
        self._core = parent._core
        self._owns_core = False
        self._last_execute = parent._last_execute
        self.targets = targets
        self.block = parent.block
        self.timeout = parent.timeout


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


def _slice_text(key: slice) -> str:
    parts = ["" if v is None else str(v) for v in (key.start, key.stop, key.step)]
    return ":".join(parts).rstrip(":") or ":"


def _joinable(layouts: list[Any]) -> bool:
    """True if arrays of these layouts join along their first axis (same dtype and rest)."""
    first = layouts[0]
    return all(
        isinstance(layout, dict)
        and layout.get("dtype") == first.get("dtype")
        and isinstance(layout.get("shape"), list)
        and len(layout["shape"]) >= 1
        and layout["shape"][1:] == first["shape"][1:]
        and isinstance(layout.get("nbytes"), int)
        for layout in layouts
    )
