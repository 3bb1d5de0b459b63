"""Engine layer: running user code in a persistent namespace, as an interactive prompt does.

Code runs in the namespace of a fresh ``__main__`` module, so classes and functions defined
remotely pickle by reference there. A final expression's value is shown like ``Out[N]``.
The code is registered in ``linecache`` under a name that says which engine and which
``In [N]`` it was, so a remote traceback shows the user's lines; frames of the engine itself
are cut from the traceback.
"""

from __future__ import annotations

import ast
import builtins
import io
import linecache
import sys
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)


def new_namespace() -> dict[str, Any]:
    """A fresh ``__main__`` namespace, installed as ``sys.modules['__main__']``."""
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = module
    return module.__dict__


def user_keys(namespace: dict[str, Any]) -> list[str]:
    """Names the user defined (dunder names and modules left out)."""
    return sorted(
        k
        for k, v in namespace.items()
        if not k.startswith("__") and not isinstance(v, types.ModuleType)
    )


def reset_namespace(namespace: dict[str, Any]) -> None:
    """Forget every user name; keep (and repair) the module's own dunder entries."""
    for key in [k for k in namespace if not k.startswith("__")]:
        del namespace[key]
    namespace["__builtins__"] = builtins
    namespace["__name__"] = "__main__"


def run_cell(code: str, namespace: dict[str, Any], filename: str) -> str | None:
    """Execute ``code``; return ``repr`` of the final expression's value (None if none)."""
    linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)
    tree = ast.parse(code, filename=filename, mode="exec")
    last: ast.expr | None = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = tree.body.pop().value  # type: ignore[attr-defined]
    exec(compile(tree, filename, "exec"), namespace)
    if last is None:
        return None
    value = eval(compile(ast.Expression(last), filename, "eval"), namespace)
    if value is None:
        return None
    namespace["_"] = value
    return repr(value)


def user_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` as Python prints it, without the engine's own frames."""
    tb: TracebackType | None = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        tb = tb.tb_next
    if isinstance(exc, SyntaxError) and tb is not None and tb.tb_frame.f_code.co_filename.endswith(
        "ast.py"
    ):
        tb = None  # raised by the parser (ast.parse): the caret under the user's line says all
    return "".join(traceback.format_exception(type(exc), exc, tb))


class CapturedOutput:
    """Redirects ``sys.stdout`` / ``sys.stderr`` into buffers for one request.

    ``on_write`` (if given) is called with ``(stream name, text)`` as output is written, so it
    can also be streamed to the client while the request runs.
    """

    def __init__(self, on_write: Callable[[str, str], None] | None = None) -> None:
        self.stdout: io.StringIO
        self.stderr: io.StringIO
        if on_write is None:  # plain buffers: no Python-level write (most requests)
            self.stdout, self.stderr = io.StringIO(), io.StringIO()
        else:
            self.stdout, self.stderr = _Tee("stdout", on_write), _Tee("stderr", on_write)
        self._saved: tuple[Any, Any] = (None, None)

    def __enter__(self) -> CapturedOutput:
        self._saved = (sys.stdout, sys.stderr)
        sys.stdout, sys.stderr = self.stdout, self.stderr
        return self

    def __exit__(self, *exc_info: object) -> None:
        sys.stdout, sys.stderr = self._saved


class _Tee(io.StringIO):
    def __init__(self, name: str, on_write: Callable[[str, str], None] | None) -> None:
        super().__init__()
        self._name = name
        self._on_write = on_write

    def write(self, text: str) -> int:
        if self._on_write is not None and text:
            self._on_write(self._name, text)
        return super().write(text)
