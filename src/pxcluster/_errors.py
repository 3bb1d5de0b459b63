"""The whole pxcluster exception tree; imported by every layer, imports none of them.

::

    PxclusterError
      ProtocolError → LocalProtocolError, RemoteProtocolError → ContentMismatch
      SerializationError
      TransportError → ConnectionLost, PxclusterTimeoutError (also a builtin TimeoutError)
      EngineError → EngineDied, EngineNotRegistered
      RemoteError (engine id, remote type name, message, traceback)
      CompositeError (also an ExceptionGroup of RemoteError and EngineError)
      TaskError → TaskAborted, TaskTimeout, UnmetDependency, UnknownTask
      LauncherError → LaunchFailed → BatchSubmitError; ClusterAlreadyRunning, NoClusterRunning
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NoReturn

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import ExceptionGroup


class PxclusterError(Exception):
    """Base of every error pxcluster raises on purpose."""


class ProtocolError(PxclusterError):
    """A message broke the wire protocol (bad signature, bad header, wrong frame count)."""


class LocalProtocolError(ProtocolError):
    """We were asked to build a message the protocol cannot carry."""


class RemoteProtocolError(ProtocolError):
    """A peer sent a message that does not follow the protocol; it is dropped."""


class ContentMismatch(RemoteProtocolError):
    """An authentic message whose content does not match its type's schema (``wire``).

    Unlike its parent, the header verified and parsed, so the receiver knows who sent it
    and which message it was (``request_id``; ``parent``: the request a reply answers) and
    may answer it, or fail the call it answers, with an error.
    """

    def __init__(self, message: str, request_id: str, parent: str = "") -> None:
        super().__init__(message)
        self.request_id = request_id
        self.parent = parent


class SerializationError(PxclusterError):
    """An object could not be pickled to send, or a payload could not be unpickled.

    Raised in the client before anything is sent, so nothing is half-queued.
    """


class TransportError(PxclusterError):
    """The connection to the controller failed or could not be made."""


class ConnectionLost(TransportError):
    """The controller stopped answering while we waited for it."""


class PxclusterTimeoutError(TransportError, TimeoutError):
    """A blocking call ran past its ``timeout``; the work itself may still finish later."""


class EngineError(PxclusterError):
    """Work could not run because of the engine, not because of the user's code.

    Attributes:
        engine_id: the engine concerned, or -1 when unknown.
    """

    def __init__(self, message: str, engine_id: int = -1) -> None:
        super().__init__(message)
        self.engine_id = engine_id


class EngineDied(EngineError):
    """The engine stopped heartbeating (killed, crashed, host lost) with this work queued."""


class EngineNotRegistered(EngineError):
    """The request named an engine id that the controller does not know (now)."""


class RemoteError(PxclusterError):
    """User code raised on an engine.

    Carries what a user needs to find the bug: the engine, the remote exception's type name
    and message, the traceback text of the user's frames, and (when it could be pickled) the
    original exception object, which ``raise_exception`` re-raises.
    """

    def __init__(
        self,
        engine_id: int,
        ename: str,
        evalue: str,
        traceback: str,
        original: BaseException | None = None,
    ) -> None:
        super().__init__(f"[engine {engine_id}] {ename}: {evalue}")
        self.engine_id = engine_id
        self.ename = ename
        self.evalue = evalue
        self.traceback = traceback
        self.original = original

    def __str__(self) -> str:
        return f"[engine {self.engine_id}] {self.ename}: {self.evalue}\n{self.traceback}".rstrip()

    def __reduce__(self) -> tuple[type[RemoteError], tuple[int, str, str, str, None]]:
        return (RemoteError, (self.engine_id, self.ename, self.evalue, self.traceback, None))

    def _render_traceback_(self) -> list[str]:
        """What IPython shows when this error ends a cell: the remote traceback, with the
        engine id, instead of the client's own frames (pxcluster internals only)."""
        return str(self).splitlines()

    def raise_exception(self) -> NoReturn:
        """Re-raise the engine's original exception (or this error when it did not unpickle)."""
        if self.original is not None:
            raise self.original.with_traceback(None) from self
        raise self


def _summary_line(err: Exception) -> str:
    if isinstance(err, RemoteError):
        return f"{err.ename}: {err.evalue}"
    return f"{type(err).__name__}: {err}"


def _engine_of(err: Exception) -> int:
    return int(getattr(err, "engine_id", -1))


class CompositeError(PxclusterError, ExceptionGroup):
    """One call failed on one or more engines; holds each engine's error.

    Its message follows the IPython1 layout, one line per failing engine::

        one or more exceptions from call to method: execute
        [0:execute]: ZeroDivisionError: division by zero

    It is also an ``ExceptionGroup`` of ``RemoteError`` / ``EngineError``, so ``except*``
    works. ``raise_exception(i)`` re-raises the i-th original exception and
    ``print_tracebacks()`` shows every remote traceback.
    """

    method: str
    elist: list[Exception]

    def __new__(cls, method: str, errors: Sequence[Exception]) -> CompositeError:
        self = super().__new__(cls, f"one or more exceptions from call to method: {method}", errors)
        self.method = method
        self.elist = list(errors)
        return self

    def __init__(self, method: str, errors: Sequence[Exception]) -> None:
        super().__init__(f"one or more exceptions from call to method: {method}", errors)

    def derive(self, excs: Sequence[Exception]) -> CompositeError:  # type: ignore[override]
        return CompositeError(self.method, excs)

    def __reduce__(self) -> tuple[type[CompositeError], tuple[str, list[Exception]]]:
        return (CompositeError, (self.method, self.elist))

    def __str__(self) -> str:
        lines = [self.message]
        lines += [f"[{_engine_of(e)}:{self.method}]: {_summary_line(e)}" for e in self.elist]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"CompositeError({self.method!r}, {len(self.elist)} errors)"

    def _render_traceback_(self) -> list[str]:
        """What IPython and Jupyter show when this error ends a cell: the seeds' summary,
        then the first failing engine's remote traceback (engine id, the user's lines, the
        exception), instead of the client's own frames, which are only pxcluster internals.
        """
        lines = [*f"{type(self).__name__}: {self}".splitlines(), ""]
        first = self.elist[0] if self.elist else None
        if isinstance(first, RemoteError) and first.traceback:
            lines.append(f"[{first.engine_id}:{self.method}]: ")
            lines += first.traceback.rstrip().splitlines()
        if len(self.elist) > 1:
            lines += ["", f"(print_tracebacks() on this error shows all {len(self.elist)})"]
        return lines

    def raise_exception(self, excid: int = 0) -> NoReturn:
        """Re-raise the original exception of the ``excid``-th failing engine.

        Raises:
            IndexError: there is no error with that index.
        """
        if not 0 <= excid < len(self.elist):
            raise IndexError(f"an exception with index {excid} does not exist")
        err = self.elist[excid]
        if isinstance(err, RemoteError):
            err.raise_exception()
        raise err

    def print_tracebacks(self, excid: int | None = None) -> None:
        """Print the remote traceback of every failing engine (or only of ``excid``)."""
        chosen = self.elist if excid is None else [self.elist[excid]]
        for err in chosen:
            print(f"[{_engine_of(err)}:{self.method}]: ")
            tb = err.traceback if isinstance(err, RemoteError) else _summary_line(err)
            print(tb.rstrip() + "\n")


class TaskError(PxclusterError):
    """A load-balanced task could not be run to completion."""


class TaskAborted(TaskError):
    """The task (or a queued request) was aborted or cleared before it finished."""


class TaskTimeout(TaskError, TimeoutError):
    """The task ran longer than its own ``timeout`` and was interrupted on its engine."""


class UnmetDependency(TaskError):
    """A task in the task's ``after`` failed, or no engine's ``depend`` check accepted it."""


class UnknownTask(TaskError, KeyError):
    """No task with that id is known to the controller (never submitted, or cleared)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown task"


class LauncherError(PxclusterError):
    """Starting or stopping processes of a cluster failed."""


class LaunchFailed(LauncherError):
    """A controller or engine process exited or did not become ready in time."""


class BatchSubmitError(LaunchFailed):
    """The batch system's submit command (sbatch, qsub) is missing or refused the job script;
    the message names the command, its exit code and what it said."""


class ClusterAlreadyRunning(LauncherError):
    """``start`` was asked for a profile whose cluster is already running."""


class NoClusterRunning(LauncherError):
    """No running cluster was found for the profile (no connection file, or a stale one)."""
