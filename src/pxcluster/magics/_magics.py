"""Magics layer: ``%px``, ``%%px``, ``%autopx``, ``%result`` / ``%pxresult`` and
``%pxconfig``, on the active client.

The magics always use the client activated last (``mec.activate()``), read at each call,
so switching clients switches the magics. ``mec.activate('_a')`` makes magics of their own
for that client (``%px_a``, ``%%px_a``, ``%autopx_a``, ``%pxresult_a``, ``%pxconfig_a``)
beside the plain ones. In blocking mode (the client's ``block``, or ``--block``) a
command's output shows live, each line under its engine's id, and each engine's final value
shows as ``[E] Out[N]: value``; nothing else is returned, so nothing is shown twice.
``%result`` shows the whole result of the last command per engine in the seeds' layout. In
non-blocking mode ``%px`` returns the PendingResult, as in the seeds.
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
from traitlets import Enum

from pxcluster._errors import CompositeError, EngineNotRegistered
from pxcluster.client import MultiEngineClient, active_client
from pxcluster.client._targets import TargetSpec
from pxcluster.magics._autopx import AutoParallel
from pxcluster.magics._options import GROUPINGS, parse_config, parse_px, parse_result
from pxcluster.magics._run import last_results, run_live
from pxcluster.magics._tracebacks import show_all_tracebacks


class _Suffixed:
    """The magics of one suffix: each reads the client activated under that suffix."""

    def __init__(self, shell: Any, suffix: str, settings: Any = None) -> None:
        self.shell = shell
        self.suffix = suffix
        self.settings = settings  # the ParallelMagics: group_outputs, the default grouping
        self.autopx_mode = AutoParallel(shell, "px" + suffix)

    def client(self) -> MultiEngineClient:
        client = active_client(self.suffix)
        if client is None:
            how = f"mec.activate({self.suffix!r})" if self.suffix else "mec.activate()"
            raise UsageError(
                "no active pxcluster client: connect one and activate it, e.g.\n"
                "    from pxcluster import client\n"
                "    mec = client.MultiEngineClient()\n"
                f"    {how}"
            )
        return client

    def px(self, line: str, cell: str | None = None) -> Any:
        try:
            options = parse_px(line, cell)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        client = self.client()
        targets = _resolve_targets(client, options.targets)
        block = client.block if options.block is None else options.block
        banner = getattr(client, "px_banner", None)
        if banner:
            print(banner)
        run_here = (lambda: self._run_locally(options.code)) if options.local else None
        if not block:
            pending = client.execute(options.code, targets=targets, block=False)
            if run_here is not None:
                run_here()
            return pending
        grouping = options.group_outputs or str(
            getattr(self.settings, "group_outputs", GROUPINGS[0])
        )
        run_live(client, options.code, targets, run_here, grouping)
        return None

    def _run_locally(self, code: str) -> None:
        with self.autopx_mode.paused():
            self.shell.run_cell(code, store_history=False)

    def autopx(self, line: str = "") -> None:
        if self.autopx_mode.enabled:
            self.autopx_mode.disable()
            print("Auto Parallel Disabled")
            return
        self.client()  # no client: say so now, not at the next cell
        self.autopx_mode.enable()
        print(f"Auto Parallel Enabled\nType %autopx{self.suffix} to disable")

    def result(self, line: str = "") -> Any:
        try:
            targets = parse_result(line)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        client = self.client()
        return last_results(client, _resolve_targets(client, targets))

    def pxconfig(self, line: str = "") -> None:
        try:
            options = parse_config(line)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        client = self.client()
        if options.targets is not None:
            client.targets = _resolve_targets(client, options.targets) or "all"
        if options.block is not None:
            client.block = options.block
        if options.group_outputs and self.settings is not None:
            self.settings.group_outputs = options.group_outputs
        grouping = getattr(self.settings, "group_outputs", GROUPINGS[0])
        print(f"targets={client.targets!r}, block={client.block}, group_outputs={grouping}")


def _resolve_targets(client: MultiEngineClient, spec: TargetSpec | None) -> TargetSpec | None:
    """``spec`` with negative ids counted from the last engine, checked now, so that a bad
    ``--targets`` is a one-line usage error rather than a traceback from the client."""
    if spec is None or spec == "all":
        return spec
    ids = [spec] if isinstance(spec, int) else list(spec)
    known = client.ids
    chosen = []
    for engine in ids:
        if engine < 0:
            if -engine > len(known):
                raise UsageError(f"--targets {engine}: there are only {len(known)} engines")
            engine = known[engine]
        chosen.append(engine)
    try:
        client._resolve(chosen, "px")
    except CompositeError as exc:
        unknown = [e.engine_id for e in exc.elist if isinstance(e, EngineNotRegistered)]
        raise UsageError(f"--targets: no engine {unknown} (engines: {known})") from None
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--targets: {exc}") from None
    return chosen[0] if isinstance(spec, int) else chosen


@magics_class
class ParallelMagics(Magics):
    """The parallel magics of one IPython shell (the plain ones, and suffixed ones made by
    ``mec.activate(suffix)``)."""

    #: How a finished ``%%px`` cell's output is grouped in a notebook, unless the cell
    #: says ``--group-outputs``: ``c.ParallelMagics.group_outputs = "type"`` in an IPython
    #: profile's config, ``%config ParallelMagics.group_outputs = "type"`` or
    #: ``%pxconfig --group-outputs type``.
    group_outputs = Enum(
        list(GROUPINGS),
        default_value=GROUPINGS[0],
        help="Grouping of a finished %%px cell's output: engine, order or type.",
    ).tag(config=True)

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._plain = _Suffixed(shell, "", self)
        self.autopx_mode = self._plain.autopx_mode
        self.suffixed: dict[str, _Suffixed] = {}

    def _client(self) -> MultiEngineClient:
        return self._plain.client()

    def add_suffix(self, suffix: str) -> None:
        """Register ``%px{suffix}`` and the others for the client activated as ``suffix``."""
        if not suffix or suffix in self.suffixed:
            return
        magics = _Suffixed(self.shell, suffix, self)
        self.suffixed[suffix] = magics
        manager = self.shell.magics_manager  # type: ignore[union-attr]
        def px(line: str, cell: str | None = None) -> Any:
            return magics.px(line, cell)

        manager.register_function(no_var_expand(px), "line_cell", "px" + suffix)
        for name in ("autopx", "result", "pxconfig"):
            manager.register_function(getattr(magics, name), "line", name + suffix)
        manager.register_function(magics.result, "line", "pxresult" + suffix)

    def suffixed_names(self) -> dict[str, list[str]]:
        """The magic names ``add_suffix`` registered, by kind (for unloading)."""
        line, cell = [], []
        for suffix in self.suffixed:
            line += [n + suffix for n in ("px", "autopx", "result", "pxresult", "pxconfig")]
            cell.append("px" + suffix)
        return {"line": line, "cell": cell}

    @no_var_expand
    @line_cell_magic
    def px(self, line: str, cell: str | None = None) -> Any:
        """Run code on the engines: ``%px CODE`` or a ``%%px`` cell.

        Options, before the code: ``--targets T`` (``all``, ``0``, ``-1`` the last engine,
        ``0,2``, ``1:3``), ``--block`` / ``--noblock`` (default: the client's ``block``),
        ``--local`` (also run the code here).
        """
        return self._plain.px(line, cell)

    @line_magic
    def autopx(self, line: str = "") -> None:
        """Switch the mode in which every cell is run on the engines (as ``%%px``) on/off."""
        self._plain.autopx(line)

    @line_magic
    def result(self, line: str = "") -> Any:
        """The last command's result on each engine, in the seeds' layout (``--targets T``)."""
        return self._plain.result(line)

    @line_magic
    def pxresult(self, line: str = "") -> Any:
        """ipyparallel's name of ``%result``."""
        return self._plain.result(line)

    @line_magic
    def pxtb(self, line: str = "") -> None:
        """Every engine's traceback of the last remote error (``%pxtb 0 2``: those engines)."""
        show_all_tracebacks(self.shell, line)

    @line_magic
    def pxconfig(self, line: str = "") -> None:
        """Set the active client's default ``--targets`` and ``--block`` / ``--noblock``."""
        self._plain.pxconfig(line)
