"""Magics layer: the ``%autopx`` mode, in which every cell entered runs on the engines.

It is an IPython input transformer: while the mode is on, each cell is rewritten into a
call of the ``%%px`` cell magic before IPython compiles it, so the cell's history, the
prompt numbers and Ctrl-C behave as for any cell, and the cell's code is only ever
compiled by the engines. Cells that start with ``%`` (``%autopx`` itself, ``%result``,
``%%px --targets 0``) are left alone and run here, as magics must.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


class AutoParallel:
    """The ``%autopx`` switch of one shell: a cleanup transformer while it is on."""

    #: IPython's check of whether typed input is complete (the terminal's "press Enter
    #: again?") skips transformers marked like this: it must judge the user's own code,
    #: which after our rewrite would always look complete.
    has_side_effects = True

    def __init__(self, shell: Any, magic: str = "px") -> None:
        self._shell = shell
        self._magic = magic  # the cell magic each cell becomes (``px_a`` for a suffix)
        self._paused = False

    @property
    def enabled(self) -> bool:
        return self in self._shell.input_transformers_cleanup

    def enable(self) -> None:
        if not self.enabled:
            self._shell.input_transformers_cleanup.append(self)

    def disable(self) -> None:
        while self.enabled:
            self._shell.input_transformers_cleanup.remove(self)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Run cells here meanwhile (``%%px --local`` runs its cell through the shell)."""
        saved, self._paused = self._paused, True
        try:
            yield
        finally:
            self._paused = saved

    def __call__(self, lines: list[str]) -> list[str]:
        cell = "".join(lines)
        if self._paused or not cell.strip() or cell.lstrip().startswith("%"):
            return lines
        return [f"get_ipython().run_cell_magic({self._magic!r}, '', {cell!r})\n"]
