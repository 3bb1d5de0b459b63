"""Client layer: how the MultiEngine interface sends requests and delivers their results.

``EngineRequests`` is the plumbing under ``MultiEngineClient``: one request fanned out by the
controller to its targets (``_request``), or one request per target, each with its own
payload (``_request_each``); big buffers by shared memory where the engines share this host;
Ctrl-C while waiting stops the engines; and the value or a PendingResult back to the caller.
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Callable, Sequence
from typing import Any

from pxcluster._buffers import Buffer
from pxcluster._errors import CompositeError, EngineError, EngineNotRegistered
from pxcluster.client._core import ClientCore
from pxcluster.client._direct import FAN_OUT
from pxcluster.client._results import PendingResult
from pxcluster.client._streams import OutputHandler, router_of
from pxcluster.client._targets import TargetSpec, normalize_targets
from pxcluster.serialize import SHM_THRESHOLD, detach, export_frames, unlink_segments
from pxcluster.wire import Message, MsgType

Finish = Callable[[list[Message]], Any]

#: Requests a blocking call may send an engine directly (those its main thread runs).
_DIRECT_TYPES = frozenset(
    {MsgType.EXECUTE, MsgType.PUSH, MsgType.PULL, MsgType.APPLY, MsgType.RESET, MsgType.KEYS}
)

#: Seconds to wait for the controller's engine list when a target is not in ours.
_REFRESH_TIMEOUT = 10.0


class EngineRequests:
    """Sending requests to engines and delivering what they answer (see the module doc)."""

    _core: ClientCore
    _scalar = False
    targets: TargetSpec
    block: bool
    #: Seconds a blocking call waits at most when it is given no ``timeout=`` (None: no
    #: limit); the way to bound ``apply``, whose keywords all go to the function.
    timeout: float | None = None

    def _resolve(self, targets: TargetSpec | None, method: str = "this call") -> list[int]:
        """The engine ids a call goes to; every one of them must be registered, so that a
        call naming an unknown engine runs nowhere rather than on the others only.

        Raises:
            CompositeError: of an EngineNotRegistered for each unknown id (nothing is sent).
            EngineError: ``'all'`` and no engine is registered.
        """
        spec = self.targets if targets is None else targets
        if isinstance(spec, str) and spec == "all":
            ids = self._core.engines
            if not ids:
                raise EngineError("no engines are registered with the controller")
            return ids
        ids = normalize_targets(spec)
        if not self._core.knows_engines(ids):
            self._core.refresh_engines(_REFRESH_TIMEOUT)  # one may have just registered
            known = self._core.engines
            unknown = [e for e in ids if e not in known]
            if unknown:
                raise CompositeError(
                    method,
                    [
                        EngineNotRegistered(
                            f"engine {e} is not registered with the controller (engines: "
                            f"{known}); nothing was sent to any engine",
                            e,
                        )
                        for e in unknown
                    ],
                )
        return ids

    def _blocking(self, block: bool | None) -> bool:
        return self.block if block is None else block

    def _deliver(
        self, pending: PendingResult[Any], block: bool | None, timeout: float | None
    ) -> Any:
        if self._blocking(block):
            return pending.get_result(timeout=self.timeout if timeout is None else timeout)
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
        blocking = self._blocking(block)
        pending = self._send(
            method, msg_type, targets, finish, content, buffers, copy=not blocking, direct=blocking
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
        on_failure: Finish | None = None,
        direct: bool = False,
    ) -> PendingResult[Any]:
        """Send one request to the targets; ``on_output`` gets what they stream meanwhile.

        ``copy``: the call returns before the frames are sent, so frames that view the
        caller's memory are copied (the caller may change its arrays at once).
        ``on_failure``: the PendingResult's (set before the request goes: replies may come
        back before ``_send`` returns).
        ``direct``: the caller will wait for the result; then a request to engines on this
        host may go to them directly, skipping the controller (``client/_direct.py``).
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
        pending.on_failure = on_failure
        if on_output is not None:
            self._listen(pending, on_output)
        self._release_when_done(pending, segments)
        direct_to = (
            ids
            if direct and len(ids) <= FAN_OUT and on_output is None and msg_type in _DIRECT_TYPES
            else None
        )
        self._core.submit(msg, pending, direct_to)
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

    def _share_each(
        self, msg_type: MsgType, parts: list[tuple[int, dict[str, Any], list[Buffer]]], copy: bool
    ) -> list[tuple[dict[str, Any], Sequence[Buffer], list[str]]]:
        """``_share`` for each part (a scatter's): the copies into shared memory of several
        big parts are made in parallel threads (the kernel copies without the GIL)."""

        def share(part: tuple[int, dict[str, Any], list[Buffer]]) -> Any:
            target, content, buffers = part
            content = dict(content)
            frames, made = self._share(msg_type, [target], content, buffers, copy)
            return content, frames, made

        big = sum(1 for _, _, buffers in parts if any(_nbytes(b) >= SHM_THRESHOLD for b in buffers))
        if msg_type != MsgType.PUSH or big < 2:
            return [share(part) for part in parts]
        with concurrent.futures.ThreadPoolExecutor(min(big, os.cpu_count() or 1)) as pool:
            futures = [pool.submit(share, part) for part in parts]
            concurrent.futures.wait(futures)
        for future in futures:
            error = future.exception()
            if error is not None:  # nothing is sent: remove what the others put there
                made = [f.result()[2] for f in futures if f.exception() is None]
                unlink_segments([name for names in made for name in names])
                raise error
        return [f.result() for f in futures]

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
        for (target, _, _), (content, frames, made) in zip(
            parts, self._share_each(msg_type, parts, copy), strict=True
        ):
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

    def _stop_messages(
        self, ids: list[int], clear_queue: bool = True, own_only: bool = False
    ) -> list[Message]:
        """CLEAR_QUEUE then INTERRUPT for ``ids``: in that order, so that once the running
        code stops, nothing queued behind it starts. ``own_only``: only this client's
        requests are dropped or interrupted; other clients' work on those engines goes on."""
        types = [MsgType.CLEAR_QUEUE, MsgType.INTERRUPT] if clear_queue else [MsgType.INTERRUPT]
        content = {"session": self._core.session} if own_only else {}
        return [Message(t, self._core.new_id(), dict(content), targets=ids) for t in types]

    def _interrupt_nowait(self, ids: list[int]) -> None:
        """Ctrl-C while waiting: stop what this client runs on those engines and drop what
        it queued there, leaving other clients' work alone (nobody waits for the
        acknowledgements)."""
        msgs = self._stop_messages(ids, own_only=True)
        keys = [(m.id, t) for m in msgs for t in ids]
        self._core.submit_many(msgs, PendingResult("interrupt", keys, list))

    def _none_each(self, replies: list[Message]) -> Any:
        return self._per_engine([None] * len(replies))


def _nbytes(buffer: Buffer) -> int:
    return len(buffer) if type(buffer) is bytes else memoryview(buffer).nbytes
