"""Client layer: the calls ipyparallel users bring, on every MultiEngine client and view.

``apply_sync`` / ``apply_async`` and ``map_sync`` / ``map_async`` choose blocking per call
(``apply`` gives every keyword to the function, so it cannot); ``set_flags`` and
``temp_flags`` set ``block``, ``timeout`` and ``targets``; ``@remote()`` and ``@parallel()``
wrap functions; ``sync_imports()`` imports here and on the engines; ``executor()`` is a
``concurrent.futures.Executor``. pxcluster's own names stay the seeds' (``execute``,
``push``, ``pull``, ``map``...); these are a second way in, documented in
``docs/migration.md``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

from pxcluster.client._decorators import PartsFunction, RemoteFunction
from pxcluster.client._partition import concatenate, partition
from pxcluster.client._requests import EngineRequests
from pxcluster.client._sync_imports import SyncImports
from pxcluster.client._targets import TargetSpec
from pxcluster.serialize import dumps, dumps_many, loads
from pxcluster.wire import Message, MsgType

if TYPE_CHECKING:
    from pxcluster.client.executors import EngineExecutor
    from pxcluster.client.multiengine import MultiEngineClient


class IpyparallelForms(EngineRequests):
    """ipyparallel's forms of the MultiEngine calls (see the module doc)."""

    def _client(self) -> MultiEngineClient:
        """This object as the MultiEngineClient (or view) it is part of."""
        return cast("MultiEngineClient", self)

    if TYPE_CHECKING:

        def map(
            self,
            func: Callable[..., Any] | str,
            *sequences: Iterable[Any],
            targets: TargetSpec | None = None,
            block: bool | None = None,
            timeout: float | None = None,
            progress: bool = False,
        ) -> Any: ...

    def apply_sync(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``apply`` that waits for the results (at most the ``timeout`` attribute)."""
        return self._apply(func, args, kwargs, True)

    def apply_async(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``apply`` that returns a PendingResult at once."""
        return self._apply(func, args, kwargs, False)

    def _apply(
        self,
        func: Callable[..., Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        block: bool | None,
        targets: TargetSpec | None = None,
    ) -> Any:
        if not callable(func):
            raise TypeError(f"apply needs a callable, not {func!r}")
        head = dumps(func, name="the function")
        counts, frames = dumps_many([("args", tuple(args)), ("kwargs", kwargs)])
        content = {"mode": "apply", "counts": [len(head), *counts]}

        def finish(replies: list[Message]) -> Any:
            return self._per_engine([loads(reply.buffers) for reply in replies])

        return self._request(
            "apply", MsgType.APPLY, targets, finish, block, None, content, [*head, *frames]
        )

    def map_sync(self, func: Callable[..., Any] | str, *sequences: Iterable[Any]) -> Any:
        """``map`` that waits for the list (at most the ``timeout`` attribute)."""
        return self.map(func, *sequences, block=True)

    def map_async(self, func: Callable[..., Any] | str, *sequences: Iterable[Any]) -> Any:
        """``map`` that returns a PendingResult of the list at once."""
        return self.map(func, *sequences, block=False)

    def _apply_parts(
        self, func: Callable[..., Any], sequences: Sequence[Iterable[Any]], block: bool | None
    ) -> Any:
        """``func`` on each target with that target's part of each sequence; the results
        joined in target order (``@mec.parallel()``)."""
        if not sequences:
            raise TypeError("a parallel function needs at least one sequence argument")
        ids = self._resolve(None, "parallel")
        parts_of = [partition(seq, len(ids)) for seq in sequences]
        head = dumps(func, name="the function")
        parts = []
        for index, target in enumerate(ids):
            args = tuple(parts[index] for parts in parts_of)
            counts, frames = dumps_many([("args", args), ("kwargs", {})])
            content = {"mode": "apply", "counts": [len(head), *counts]}
            parts.append((target, content, [*head, *frames]))

        def finish(replies: list[Message]) -> Any:
            return concatenate([loads(reply.buffers) for reply in replies])

        return self._request_each("parallel", MsgType.APPLY, parts, finish, block, None)

    def set_flags(
        self,
        *,
        block: bool | None = None,
        timeout: float | None = None,
        targets: TargetSpec | None = None,
    ) -> None:
        """Set the defaults of ``block``, ``timeout`` and ``targets`` (those given)."""
        if block is not None:
            self.block = block
        if timeout is not None:
            self.timeout = timeout
        if targets is not None:
            self.targets = targets

    @contextlib.contextmanager
    def temp_flags(
        self,
        *,
        block: bool | None = None,
        timeout: float | None = None,
        targets: TargetSpec | None = None,
    ) -> Iterator[None]:
        """``with mec.temp_flags(block=False):`` the flags given, restored on leaving."""
        saved = (self.block, self.timeout, self.targets)
        self.set_flags(block=block, timeout=timeout, targets=targets)
        try:
            yield
        finally:
            self.block, self.timeout, self.targets = saved

    def remote(self, block: bool | None = None) -> Callable[[Callable[..., Any]], RemoteFunction]:
        """Decorator: calling the function runs it on the targets (``apply``)."""

        def decorate(func: Callable[..., Any]) -> RemoteFunction:
            return RemoteFunction(self._client(), func, block)

        return decorate

    def parallel(
        self, block: bool | None = None, map: bool = False
    ) -> Callable[[Callable[..., Any]], PartsFunction]:
        """Decorator: calling the function on sequences runs it on each target with that
        target's part of them, and joins the results (lists into a list, numpy arrays
        into one array); ``map=True``: on each item instead, as ``map``."""

        def decorate(func: Callable[..., Any]) -> PartsFunction:
            return PartsFunction(self._client(), func, block, map)

        return decorate

    def sync_imports(self, quiet: bool = False) -> SyncImports:
        """``with mec.sync_imports(): import numpy as np`` imports here and, under the
        same names, on the targets."""
        return SyncImports(self._client(), quiet)

    def executor(self) -> EngineExecutor:
        """A ``concurrent.futures.Executor`` sending each call to the next target in turn."""
        from pxcluster.client.executors import EngineExecutor

        return EngineExecutor(self._client())
