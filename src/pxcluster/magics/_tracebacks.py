"""Magics layer: how a remote error that ends a cell is shown in IPython and Jupyter.

A ``CompositeError`` says which engines failed and why (the seeds' layout), and its
``_render_traceback_`` adds the first engine's remote traceback: the engine id, the user's
lines and the exception. IPython used to honour ``_render_traceback_`` for every exception,
but IPython 9 formats any ``ExceptionGroup`` (which a CompositeError also is) natively,
with the client's own frames (pxcluster internals) and every engine's traceback in full.
So the extension registers a custom exception handler for our errors that shows the
rendering, as the shell shows any traceback (an error output in a notebook). It is only
registered when no other handler is, since IPython holds one.

Where the shell colours its own tracebacks (``shell.colors`` is not ``nocolor``), the
remote traceback text is coloured the same way: each line is read as Python prints
tracebacks (``File "...", line N, in f``, source lines, ``^^^`` markers, ``Name: message``)
and given the tokens IPython's own traceback formatter gives those parts, which IPython's
theme then turns into the frontend's colours (ANSI, which notebooks render too). IPython 8
has no themes: there the text stays plain.

``%pxtb`` shows every engine's traceback of the last remote error; the hint under a
CompositeError says so, and says where the error object is (``sys.last_value``), since a
notebook cell that raised gives no other handle on it.
"""

from __future__ import annotations

import re
import sys
import weakref
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

from IPython.core.error import UsageError
from pygments.token import Token  # type: ignore[import-untyped]

from pxcluster._errors import CompositeError, RemoteError
from pxcluster.magics._run import EnginesInterrupted

REMOTE_ERRORS = (CompositeError, RemoteError, EnginesInterrupted)

_FRAME = re.compile(r'^(?P<indent>\s*)File "(?P<file>[^"]*)", line (?P<line>\d+)(?P<rest>.*)$')
_MARKER = re.compile(r"^\s*[~^]+\s*$")
_EXCEPTION = re.compile(
    r"^(?P<name>[A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit|Warning|Group))(?P<rest>(?::.*)?)$"
)
_ENGINE = re.compile(r"^(?P<label>\[\d+:\w+\]:)(?P<rest>.*)$")
_HEADLINE = "Traceback (most recent call last):"

#: The last remote error a cell of each shell ended with (``%pxtb`` shows it again).
_last_error: weakref.WeakKeyDictionary[Any, BaseException] = weakref.WeakKeyDictionary()


def show_remote_error(
    shell: Any,
    etype: type[BaseException],
    value: BaseException,
    tb: TracebackType | None,
    tb_offset: int | None = None,
) -> list[str]:
    """IPython's custom exception handler for remote errors: show their own rendering."""
    sys.last_type, sys.last_value, sys.last_traceback = etype, value, tb  # for %debug
    if sys.version_info >= (3, 12):
        sys.last_exc = value
    lines: list[str]
    if isinstance(value, CompositeError | RemoteError):
        _last_error[shell] = value
        lines = error_lines(value)
    else:
        render = getattr(value, "_render_traceback_", None)
        lines = render() if callable(render) else [f"{etype.__name__}: {value}"]
    lines = coloured(lines, theme_of(shell))
    shell._showtraceback(etype, value, lines)
    return lines


def error_lines(error: CompositeError | RemoteError) -> list[str]:
    """What a cell that raised ``error`` shows: the summary of every engine, the first
    failing engine's traceback and, when more engines failed, how to see theirs."""
    if isinstance(error, RemoteError):
        return error._render_traceback_()
    lines = error._render_traceback_()
    if lines and lines[-1].startswith("(print_tracebacks()"):
        lines[-1] = f"(all {len(error.elist)} tracebacks: %pxtb; the error object: sys.last_value)"
    return lines


def all_traceback_lines(error: BaseException, engines: Sequence[int] = ()) -> list[str]:
    """Every engine's traceback of ``error`` (or of ``engines`` only), each under
    ``[E:method]:``, as ``print_tracebacks()`` prints them."""
    if isinstance(error, CompositeError):
        method, errors = error.method, list(error.elist)
    elif isinstance(error, RemoteError):
        method, errors = "execute", [error]
    else:
        raise UsageError("%pxtb shows the tracebacks of a remote error (CompositeError)")
    lines: list[str] = []
    for err in errors:
        engine = int(getattr(err, "engine_id", -1))
        if engines and engine not in engines:
            continue
        text = err.traceback if isinstance(err, RemoteError) else f"{type(err).__name__}: {err}"
        lines += [f"[{engine}:{method}]: ", *text.rstrip().splitlines(), ""]
    if not lines:
        raise UsageError(f"no traceback of engine(s) {list(engines)} in the last error")
    return lines[:-1]


def show_all_tracebacks(shell: Any, line: str) -> None:
    """``%pxtb [E ...]``: every engine's traceback of the last remote error."""
    try:
        engines = [int(word) for word in line.replace(",", " ").split()]
    except ValueError:
        raise UsageError(f"%pxtb takes engine ids (%pxtb 0 2), not {line!r}") from None
    error = _last_error.get(shell)
    if error is None and isinstance(getattr(sys, "last_value", None), CompositeError | RemoteError):
        error = sys.last_value  # shown by another handler than ours
    if error is None:
        raise UsageError("no remote error yet: %pxtb shows the engines' tracebacks of the last one")
    lines = coloured(all_traceback_lines(error, engines), theme_of(shell))
    shell._showtraceback(type(error), error, lines)


def theme_of(shell: Any) -> str:
    """The colour theme the shell formats its own tracebacks with (``nocolor``: none)."""
    return str(getattr(shell, "colors", "nocolor") or "nocolor").lower()


def coloured(lines: Sequence[str], theme_name: str) -> list[str]:
    """``lines`` of traceback text coloured by IPython's theme ``theme_name`` as IPython
    colours its own tracebacks; unchanged for ``nocolor``, an unknown theme, or IPython 8."""
    if theme_name == "nocolor":
        return list(lines)
    try:
        from IPython.utils.PyColorize import theme_table
    except ImportError:  # IPython 8: no themes
        return list(lines)
    theme = theme_table.get(theme_name)
    if theme is None:
        return list(lines)
    return [theme.format(tokens).rstrip("\n") for tokens in traceback_tokens(lines)]


def traceback_tokens(lines: Sequence[str]) -> list[list[tuple[Any, str]]]:
    """Each line of traceback text as the tokens IPython's ListTB gives the same parts: the
    last frame of each traceback emphasised, its source line too, the exception's name."""
    last_frames = set(_last_frames(lines))
    out: list[list[tuple[Any, str]]] = []
    after_frame: int | None = None
    for index, line in enumerate(lines):
        frame = _FRAME.match(line)
        if frame is not None:
            em = index in last_frames
            out.append(_frame_tokens(frame, em))
            after_frame = index
            continue
        if after_frame is not None and _MARKER.match(line):
            out.append([(Token.Caret, line)])
            continue
        if after_frame is not None and line.startswith("    ") and index == after_frame + 1:
            out.append([(Token.Line if after_frame in last_frames else Token, line)])
            continue
        after_frame = None
        out.append(_plain_tokens(line))
    return out


def _last_frames(lines: Sequence[str]) -> Iterable[int]:
    """Index of the last ``File`` line before each exception line (IPython emphasises it)."""
    last = None
    for index, line in enumerate(lines):
        if _FRAME.match(line):
            last = index
        elif last is not None and _EXCEPTION.match(line):
            yield last
            last = None


def _frame_tokens(frame: re.Match[str], em: bool) -> list[tuple[Any, str]]:
    normal = Token.NormalEm if em else Token.Normal
    filename = Token.FilenameEm if em else Token.Filename
    tokens = [
        (normal, frame["indent"] + "File "),
        (filename, f'"{frame["file"]}"'),
        (normal, ", "),
        (Token.LinenoEm if em else Token.Normal, f"line {frame['line']}"),
    ]
    rest = frame["rest"]
    if rest.startswith(", in "):
        tokens += [(normal, ", in "), (Token.TB.NameEm if em else Token.TB.Name, rest[5:])]
    elif rest:
        tokens.append((normal, rest))
    return tokens


def _plain_tokens(line: str) -> list[tuple[Any, str]]:
    if line == _HEADLINE:
        return [(Token, "Traceback "), (Token.NormalEm, "(most recent call last)"), (Token, ":")]
    engine = _ENGINE.match(line)
    if engine is not None:
        rest = engine["rest"]
        body = rest.lstrip()
        tokens = [(Token.NormalEm, engine["label"]), (Token, rest[: len(rest) - len(body)])]
        return tokens + (_plain_tokens(body) if body else [])
    exception = _EXCEPTION.match(line)
    if exception is not None:
        rest = exception["rest"]
        tokens = [(Token.ExcName, exception["name"])]
        if rest:
            tokens += [(Token.ExcName, ":"), (Token, rest[1:])]
        return tokens
    return [(Token, line)]


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
