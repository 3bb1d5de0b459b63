"""Client layer: ``with mec.sync_imports(): import numpy as np`` imports here and on engines.

The imports in the ``with`` block run here as usual. On leaving it, the names they bound in
the caller's namespace are compared with what was there before, and each new binding is
imported on the engines under the same name: ``import numpy as np`` becomes that line on
the engines (ipyparallel's version drops the ``as``), ``from os import path as p`` too.
Nothing is patched: the caller's frame is only read.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pxcluster.client.multiengine import MultiEngineClient


class SyncImports:
    """The context manager ``mec.sync_imports()`` returns."""

    def __init__(self, client: MultiEngineClient, quiet: bool = False) -> None:
        self._client = client
        self._quiet = quiet
        self._frame: types.FrameType | None = None
        self._before: dict[str, Any] = {}

    def __enter__(self) -> SyncImports:
        self._frame = sys._getframe(1)
        self._before = dict(self._frame.f_locals)
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        frame, self._frame = self._frame, None
        if exc_type is not None or frame is None:
            return
        lines = import_lines(self._before, dict(frame.f_locals))
        del frame
        if not lines:
            return
        if not self._quiet:
            sys.stdout.write("importing on engines: " + "; ".join(lines) + "\n")
        self._client.execute("\n".join(lines), block=True)


def import_lines(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The import statements that bind, on an engine, what changed from ``before`` to
    ``after``: modules by their names, and objects found as attributes of their module."""
    lines = []
    for name, value in after.items():
        if name in before and before[name] is value:
            continue
        if isinstance(value, types.ModuleType):
            full = value.__name__
            if full == name or full.startswith(name + "."):
                lines.append(f"import {full}")  # `import a.b` binds `a`
            else:
                lines.append(f"import {full} as {name}")
            continue
        module_name = getattr(value, "__module__", None)
        attribute = getattr(value, "__name__", None)
        module = sys.modules.get(module_name) if isinstance(module_name, str) else None
        if module is None or not isinstance(attribute, str):
            continue  # not something an import made
        if getattr(module, attribute, None) is value:
            alias = "" if attribute == name else f" as {name}"
            lines.append(f"from {module_name} import {attribute}{alias}")
    return lines
