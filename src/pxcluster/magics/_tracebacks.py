"""Magics layer: how a remote error that ends a cell is shown in IPython and Jupyter.

A ``CompositeError`` says which engines failed and why (the seeds' layout), and its
``_render_traceback_`` adds the first engine's remote traceback: the engine id, the user's
lines and the exception. IPython used to honour ``_render_traceback_`` for every exception,
but IPython 9 formats any ``ExceptionGroup`` (which a CompositeError also is) natively,
with the client's own frames (pxcluster internals) and every engine's traceback in full.
So the extension registers a custom exception handler for our errors that shows the
rendering, as the shell shows any traceback (an error output in a notebook). It is only
registered when no other handler is, since IPython holds one.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from pxcluster._errors import CompositeError, RemoteError
from pxcluster.magics._run import EnginesInterrupted

REMOTE_ERRORS = (CompositeError, RemoteError, EnginesInterrupted)


def show_remote_error(
    shell: Any,
    etype: type[BaseException],
    value: BaseException,
    tb: TracebackType | None,
    tb_offset: int | None = None,
) -> list[str]:
    """IPython's custom exception handler for remote errors: show their own rendering."""
    sys.last_type, sys.last_value, sys.last_traceback = etype, value, tb  # for %debug
    render = getattr(value, "_render_traceback_", None)
    lines: list[str] = render() if callable(render) else [f"{etype.__name__}: {value}"]
    shell._showtraceback(etype, value, lines)
    return lines


def install(shell: Any) -> bool:
    """Register the handler unless the shell already has one; True if registered."""
    if shell.custom_exceptions:
        return False
    shell.set_custom_exc(REMOTE_ERRORS, show_remote_error)
    return True


def uninstall(shell: Any) -> None:
    """Remove the handler if it is still ours."""
    if tuple(shell.custom_exceptions) == REMOTE_ERRORS:
        shell.set_custom_exc((), None)
