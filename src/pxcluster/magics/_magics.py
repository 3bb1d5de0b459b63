"""Magics layer: ``%px``, ``%%px``, ``%autopx`` and ``%result``, on the active client.

The magics always use the client activated last (``mec.activate()``), read at each call,
so switching clients switches the magics. In blocking mode (the client's ``block``, or
``--block``) a command's output shows live, each line under its engine's id, and each
engine's final value shows as ``[E] Out[N]: value``; nothing else is returned, so nothing
is shown twice. ``%result`` shows the whole result of the last command per engine in the
seeds' layout. In non-blocking mode ``%px`` returns the PendingResult, as in the seeds.
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import (
    Magics,
    line_cell_magic,
    line_magic,
    magics_class,
    no_var_expand,
)

from pxcluster.client import MultiEngineClient, active_client
from pxcluster.magics._autopx import AutoParallel
from pxcluster.magics._options import PxOptions, parse_px, parse_result
from pxcluster.magics._output import show_values
from pxcluster.magics._run import run_live


@magics_class
class ParallelMagics(Magics):
    """The parallel magics of one IPython shell."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.autopx_mode = AutoParallel(shell)

    def _client(self) -> MultiEngineClient:
        client = active_client()
        if client is None:
            raise UsageError(
                "no active pxcluster client: connect one and activate it, e.g.\n"
                "    from pxcluster import client\n"
                "    mec = client.MultiEngineClient()\n"
                "    mec.activate()"
            )
        return client

    @no_var_expand
    @line_cell_magic
    def px(self, line: str, cell: str | None = None) -> Any:
        """Run code on the engines: ``%px CODE`` or a ``%%px`` cell.

        Options, before the code: ``--targets T`` (``all``, ``0``, ``0,2``, ``1:3``),
        ``--block`` / ``--noblock`` (default: the client's ``block``), ``--local`` (also
        run the code here).
        """
        try:
            options = parse_px(line, cell)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return self._run(self._client(), options)

    def _run(self, client: MultiEngineClient, options: PxOptions) -> Any:
        block = client.block if options.block is None else options.block
        run_here = (lambda: self._run_locally(options.code)) if options.local else None
        if not block:
            pending = client.execute(options.code, targets=options.targets, block=False)
            if run_here is not None:
                run_here()
            return pending
        show_values(run_live(client, options.code, options.targets, run_here))
        return None

    def _run_locally(self, code: str) -> None:
        with self.autopx_mode.paused():
            self.shell.run_cell(code, store_history=False)  # type: ignore[union-attr]

    @line_magic
    def autopx(self, line: str = "") -> None:
        """Switch the mode in which every cell is run on the engines (as ``%%px``) on/off."""
        if self.autopx_mode.enabled:
            self.autopx_mode.disable()
            print("Auto Parallel Disabled")
            return
        self._client()  # no client: say so now, not at the next cell
        self.autopx_mode.enable()
        print("Auto Parallel Enabled\nType %autopx to disable")

    @line_magic
    def result(self, line: str = "") -> Any:
        """The last command's result on each engine, in the seeds' layout (``--targets T``)."""
        try:
            targets = parse_result(line)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return self._client().get_result(targets=targets, block=True)
