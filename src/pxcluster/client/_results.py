"""Client layer: PendingResult (a Future for a call on many engines) and ResultList.

A PendingResult collects one reply per (request, engine) pair. The client's I/O thread feeds
it replies; when the last one arrives it turns them into the call's value, or into a
``CompositeError`` when any engine failed, and resolves the Future. Because it *is* a
``concurrent.futures.Future``, it works with ``concurrent.futures.wait`` and, through
``__await__``, in asyncio code.
"""

from __future__ import annotations

import concurrent.futures
import sys
import threading
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any, Generic, TypeVar

from pxcluster._errors import (
    CompositeError,
    EngineDied,
    EngineError,
    EngineNotRegistered,
    PxclusterTimeoutError,
    RemoteError,
    TaskAborted,
)
from pxcluster.client._html import results_table
from pxcluster.client._progress import show_progress
from pxcluster.serialize import loads
from pxcluster.wire import Message, Status

T = TypeVar("T")


def reply_error(msg: Message) -> Exception:
    """The exception a non-OK reply stands for."""
    content = msg.content
    if msg.status == Status.ERROR:
        original: BaseException | None = None
        if msg.buffers:
            try:
                loaded = loads(msg.buffers)
                original = loaded if isinstance(loaded, BaseException) else None
            except Exception:
                original = None
        return RemoteError(
            msg.engine,
            str(content.get("ename", "Exception")),
            str(content.get("evalue", "")),
            str(content.get("traceback", "")),
            original,
        )
    text = str(content.get("error", "request failed"))
    if msg.status == Status.ABORTED:
        aborted = TaskAborted(f"[engine {msg.engine}] {text}")
        aborted.engine_id = msg.engine  # type: ignore[attr-defined]
        return aborted
    kind = content.get("kind")
    if kind == "died":
        return EngineDied(text, msg.engine)
    if kind == "unregistered":
        return EngineNotRegistered(text, msg.engine)
    return EngineError(text, msg.engine)


class PendingResult(concurrent.futures.Future[T], Generic[T]):
    """The result of a call that has been sent and may not have finished yet.

    ``get_result()`` (or ``.r``) waits for it; ``get_result(block=False)`` polls.
    """

    def __init__(
        self,
        method: str,
        keys: Sequence[tuple[str, int]],
        finish: Callable[[list[Message]], T] | None,
        on_interrupt: Callable[[], None] | None = None,
        weights: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.method = method
        self.keys = list(keys)
        self._finish = finish
        # The replies in so far; once resolved only their keys stay (for progress()): their
        # buffers, maybe big shared-memory mappings, go with whatever the result holds.
        self._replies: dict[tuple[str, int], Message | None] = {}
        self._lock = threading.Lock()
        self._on_interrupt = on_interrupt
        # How much of the work each reply stands for (map: the items of its chunk), for
        # progress(); a PendingResult chained onto another reports that one's progress.
        self._weights = dict(zip(self.keys, weights or [1] * len(self.keys), strict=True))
        self._source: PendingResult[Any] | None = None
        self._sent_at = time.monotonic()
        self._printed: list[tuple[int, str, str]] = []  # (engine, stdout, stderr) of an apply
        self._done_at: float | None = None
        self.set_running_or_notify_cancel()

    def set_result(self, result: T) -> None:
        self._done_at = time.monotonic()
        super().set_result(result)

    def set_exception(self, exception: BaseException | None) -> None:
        self._done_at = time.monotonic()
        super().set_exception(exception)

    @property
    def msg_ids(self) -> list[str]:
        return list(dict.fromkeys(k[0] for k in self.keys))

    def add_reply(self, msg: Message) -> None:
        """Record a reply (I/O thread); resolve the Future once every reply is in."""
        key = (msg.parent, msg.engine)
        with self._lock:
            if self.done() or key in self._replies:
                return
            if key not in self._weights:  # a dict of the keys: no scan per reply
                matched = self._match_unknown_engine(msg)
                if matched is None:
                    return
                key = matched
            self._replies[key] = msg
            engine_failed = msg.status == Status.ENGINE_ERROR
            if len(self._replies) < len(self.keys) and not engine_failed:
                return
        if engine_failed:
            # Fail fast: waiting for the other engines would tie the caller to the slowest
            # of them while the work on the dead engine can never finish.
            replies = [m for m in self._replies.values() if m is not None]
            errors = [reply_error(m) for m in replies if m.status != Status.OK]
            self._keep_partial(replies)
            self.set_exception(CompositeError(self.method, errors))
        else:
            self._resolve()
        with self._lock:
            self._replies = dict.fromkeys(self._replies)

    def _match_unknown_engine(self, msg: Message) -> tuple[str, int] | None:
        # A controller reply about a target it could not resolve carries the engine id we
        # asked for; a reply with no engine id (-1) stands for our one controller request.
        for key in self.keys:
            if key[0] == msg.parent and key not in self._replies and key[1] in (-1, msg.engine):
                return key
        return None

    def _resolve(self) -> None:
        ordered = [m for m in (self._replies[k] for k in self.keys) if m is not None]
        printed = [m for m in ordered if "stdout" in m.content]  # what engines printed
        if printed and self.method != "execute":
            self._printed = [
                (m.engine, str(m.content["stdout"]), str(m.content.get("stderr", "")))
                for m in printed
            ]
        errors = [reply_error(m) for m in ordered if m.status != Status.OK]
        if errors:
            self._keep_partial(ordered)
            self.set_exception(CompositeError(self.method, errors))
            return
        assert self._finish is not None, "a PendingResult with replies needs a finish"
        try:
            value = self._finish(ordered)
        except Exception as exc:
            self.set_exception(exc)
        else:
            self.set_result(value)

    #: Called, for a call that failed, with every reply that came in (failures included);
    #: what it returns is kept as ``partial``. ``execute`` sets it, so that ``%result``
    #: can show each engine's output and error instead of only raising the error again.
    on_failure: Callable[[list[Message]], Any] | None = None
    partial: Any = None

    def _keep_partial(self, replies: list[Message]) -> None:
        if self.on_failure is not None:
            try:
                self.partial = self.on_failure(replies)
            except Exception:  # only a nicer %result is lost; the call's error stands
                self.partial = None

    def fail(self, exc: BaseException) -> None:
        """Resolve with ``exc`` unless already done (connection lost, client closed)."""
        with self._lock:
            if self.done():
                return
            self.set_exception(exc)
            self._replies = dict.fromkeys(self._replies)

    def get_result(
        self, default: Any = None, block: bool = True, timeout: float | None = None
    ) -> T | Any:
        """The value of the call; raises what the call raised.

        Args:
            default: returned by a non-blocking poll when the result is not ready.
            block: wait for the result (True) or return at once (False).
            timeout: seconds to wait at most when blocking (None: no limit).

        Raises:
            CompositeError: the call failed on one or more engines.
            PxclusterTimeoutError: ``timeout`` ran out first.
        """
        if not block and not self.done():
            return default
        try:
            return self.result(timeout)
        except concurrent.futures.TimeoutError:
            if self.done():
                raise  # the call itself failed with a timeout (a task's, say)
            raise PxclusterTimeoutError(
                f"{self.method} did not finish within {timeout} s; it may still finish "
                "later: get_result() again, or clear_queue()/interrupt() to stop it"
            ) from None
        except KeyboardInterrupt:
            self.interrupt()
            raise

    def interrupt(self) -> None:
        """Stop this call: interrupt the code its engines run and drop what is queued there.

        This is what Ctrl-C does while ``get_result`` waits; the call then fails (with the
        engines' KeyboardInterrupt, or as aborted where it had not started). Nothing is sent
        once the call is done.
        """
        if self._on_interrupt is not None and not self.done():
            self._on_interrupt()

    def progress(self) -> tuple[int, int]:
        """``(done, total)``: replies in so far and replies expected, each weighted by the
        work it stands for (``map(progress=True)`` counts items)."""
        if self._source is not None:
            return self._source.progress()
        with self._lock:
            done = sum(self._weights.get(k, 0) for k in self._replies)
        return done, sum(self._weights.values())

    def wait_interactive(self, interval: float = 0.1, timeout: float | None = None) -> None:
        """Wait, showing a progress bar of the engines' replies (tqdm; a widget in Jupyter).

        Ctrl-C interrupts the call as in ``get_result``. The result itself is not fetched:
        call ``get_result()`` (or ``.r``) next; ``done()`` says whether ``timeout`` ran out
        first. Returns None, as ipyparallel's does, so a notebook cell ending in it shows
        only the bar (whose finished text form stays in the saved notebook).

        Raises:
            ImportError: tqdm is not installed.
        """
        show_progress(self, self.method, "reply", interval, timeout)

    @property
    def r(self) -> T:
        """Shorthand for ``get_result(block=True)``."""
        return self.get_result(block=True)

    def result(self, timeout: float | None = None) -> T:
        """The Future's own ``result``, with a TimeoutError that says what timed out.

        Raises:
            PxclusterTimeoutError: ``timeout`` ran out first (a builtin TimeoutError).
        """
        try:
            return super().result(timeout)
        except concurrent.futures.TimeoutError as exc:
            if isinstance(exc, PxclusterTimeoutError) or self.done():
                raise  # the call's own failure, not this wait's
            raise PxclusterTimeoutError(
                f"{self.method} did not finish within {timeout} s; it may still finish "
                "later: wait again, or clear_queue()/interrupt() to stop it"
            ) from None

    def get(self, timeout: float | None = None) -> T:
        """ipyparallel's name: ``get_result(timeout=timeout)``."""
        value: T = self.get_result(timeout=timeout)
        return value

    def ready(self) -> bool:
        """True once the call is done (ipyparallel's name of ``done()``)."""
        return self.done()

    def successful(self) -> bool:
        """True if the call finished without an error.

        Raises:
            ValueError: the call has not finished yet.
        """
        if not self.done():
            raise ValueError(f"{self.method} has not finished yet; wait() first")
        return not self.cancelled() and self.exception() is None

    @property
    def elapsed(self) -> float:
        """Seconds from sending the call until it finished (or until now, if it runs)."""
        end = self._done_at if self._done_at is not None else time.monotonic()
        return end - self._sent_at

    def display_outputs(self) -> None:
        """Print what each engine wrote (``execute``, ``apply``): ``[stdout:E]`` /
        ``[stderr:E]`` blocks in engine order, as ipyparallel's ``display_outputs`` does;
        waits for the call first."""
        try:
            value = self.get_result()
        except Exception:
            value = None  # a failed call still shows what was printed before it failed
        entries: list[dict[str, Any]] = (
            list(value)
            if isinstance(value, ResultList)  # execute: its entries hold the output
            else [{"id": e, "stdout": out, "stderr": err} for e, out, err in self._printed]
        )
        for entry in entries:
            for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
                text = entry.get(name) or ""
                if text:
                    stream.write(f"[{name}:{entry['id']}] {text}")
                    if not text.endswith("\n"):
                        stream.write("\n")

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until done; True if it finished within ``timeout``."""
        done, _ = concurrent.futures.wait([self], timeout)
        return bool(done)

    def __await__(self) -> Generator[Any, None, T]:
        import asyncio  # here, not at the top: engines import this package and never await

        return asyncio.wrap_future(self).__await__()

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        engines = len({engine for _, engine in self.keys})
        return f"<PendingResult {self.method} on {engines} engine(s): {state}>"


def after_all(
    method: str, pendings: Sequence[PendingResult[Any]], then: Callable[[None], T]
) -> PendingResult[T]:
    """A PendingResult (of ``method``) resolving to ``then(None)`` once all of ``pendings``
    are done, or to the error of the first of them that failed."""
    combined: PendingResult[T] = PendingResult(method, [], None)
    distinct = list({id(p): p for p in pendings}.values())
    remaining = [len(distinct)]
    lock = threading.Lock()

    def one_done(_: concurrent.futures.Future[Any]) -> None:
        with lock:
            remaining[0] -= 1
            if remaining[0]:
                return
        failed = [exc for p in distinct if (exc := p.exception()) is not None]
        if failed:
            combined.fail(failed[0])
            return
        try:
            combined.set_result(then(None))
        except Exception as err:
            combined.fail(err)

    if not distinct:
        combined.set_result(then(None))
    for pending in distinct:
        pending.add_done_callback(one_done)
    return combined


def execute_entry(reply: Message, code: str) -> dict[str, Any]:
    """One engine's entry of an ``execute``'s ResultList; a failed engine's (``%result``
    after an error) has its output so far and ``"error"``, the RemoteError."""
    content = reply.content
    entry = {
        "id": reply.engine,
        "number": content.get("n"),
        "input": {"raw": code, "translated": code},
        "stdout": content.get("stdout", ""),
        "stderr": content.get("stderr", ""),
        "display": content.get("display"),
        "display_data": content.get("display_data") or [],
        "execute_result": content.get("execute_result"),
    }
    if reply.status != Status.OK:
        entry["error"] = reply_error(reply)
    return entry


class ResultList(list[dict[str, Any]]):
    """Results of ``execute`` on several engines; prints in the IPython1 layout::

    <Results List>
    [0] In [4]: print(c)
    [0] Out[4]: 15
    """

    def __repr__(self) -> str:
        lines = ["<Results List>"]
        for entry in self:
            engine, number = entry["id"], entry["number"]
            lines.append(_block(f"[{engine}] In [{number}]: ", entry["input"]["raw"]))
            parts = [(entry.get("stdout") or "").rstrip("\n")]
            parts += [str(b.get("text/plain", "")) for b in entry.get("display_data") or ()]
            parts.append(entry.get("display") or "")
            out = "\n".join(p for p in parts if p)
            err = (entry.get("stderr") or "").rstrip("\n")
            error = entry.get("error")  # a failed execute's engine, as %result shows it
            if error is not None:
                summary = f"{getattr(error, 'ename', type(error).__name__)}: " + str(
                    getattr(error, "evalue", error)
                )
                err = f"{err}\n{summary}" if err else summary
            if out:
                lines.append(_block(f"[{engine}] Out[{number}]: ", out))
            if err:
                lines.append(_block(f"[{engine}] Err[{number}]: ", err))
            if out or err:
                lines.append("")
        return "\n".join(lines).rstrip("\n")

    __str__ = __repr__

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def _repr_html_(self) -> str | None:
        """A compact table for notebooks (rich outputs inline); the text form stays repr."""
        return results_table(self) if self else None


def _block(prefix: str, text: str) -> str:
    """``prefix`` then ``text``, continuation lines indented under the first."""
    pad = "\n" + " " * len(prefix)
    return prefix + pad.join(text.splitlines() or [""])


def chained(pending: PendingResult[Any], then: Callable[[Any], Any]) -> PendingResult[Any]:
    """A PendingResult resolving to ``then(value of pending)``, or to its error.

    ``then`` may itself return a PendingResult (a second round of requests): the result is
    then that one's value.
    """
    out: PendingResult[Any] = PendingResult(
        pending.method, [], None, on_interrupt=pending._on_interrupt
    )

    def settle(done: concurrent.futures.Future[Any]) -> None:
        exc = done.exception()
        if exc is not None:
            out.fail(exc)
            return
        try:
            value = then(done.result())
        except Exception as err:
            out.fail(err)
            return
        if isinstance(value, PendingResult):
            out._on_interrupt = value._on_interrupt or out._on_interrupt
            value.add_done_callback(relay)
        else:
            out.set_result(value)

    def relay(done: concurrent.futures.Future[Any]) -> None:
        exc = done.exception()
        if exc is not None:
            out.fail(exc)
        else:
            out.set_result(done.result())

    pending.add_done_callback(settle)
    out._source = pending
    return out

