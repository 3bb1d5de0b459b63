"""CLI layer: ``pxcluster top``, the dashboard's terminal view, refreshing in place.

The same data source as the web dashboard (``pxcluster.monitor.MonitorSource``), laid out
by ``render_text``; curses redraws it every ``--period`` seconds and reads one key: ``q``
quits (so does Ctrl-C). ``--once`` (or output that is not a terminal) prints one screen.
"""

from __future__ import annotations

import argparse
import contextlib
import curses
import locale
import shutil
import sys
from pathlib import Path
from typing import Any

from pxcluster.monitor import MonitorSource, render_text


def add_top_parser(sub: Any) -> None:
    """Add ``top`` to the ``pxcluster`` subcommands."""
    top = sub.add_parser(
        "top",
        help="watch a running cluster in the terminal",
        description="Show a running cluster's engines (state, host, pid, queue, memory, CPU), "
        "task counts, throughput, recent errors and finished requests, refreshed in place. "
        "Press q to quit.",
    )
    top.add_argument(
        "--profile",
        default="default",
        help="profile name (folder ~/.pxcluster/profile_NAME; default: %(default)s)",
    )
    top.add_argument(
        "--profile-dir",
        type=Path,
        default=None,
        help="use this profile folder instead of ~/.pxcluster/profile_NAME",
    )
    top.add_argument(
        "--period", type=float, default=1.0, help="seconds between refreshes (default 1)"
    )
    top.add_argument(
        "--once", action="store_true", help="print one screen and exit (no refreshing)"
    )


def cmd_top(args: argparse.Namespace) -> int:
    with MonitorSource(args.profile, args.profile_dir, timeout=10.0) as source:
        unicode = "utf" in locale.getpreferredencoding(False).lower()
        if args.once or not sys.stdout.isatty():
            size = shutil.get_terminal_size((120, 40))
            lines = render_text(source.poll(), size.columns, 10_000, unicode=unicode)
            print("\n".join(lines))
            return 0
        with contextlib.suppress(KeyboardInterrupt):
            curses.wrapper(_refresh_until_quit, source, max(0.1, args.period), unicode)
    return 0


def _refresh_until_quit(
    screen: curses.window, source: MonitorSource, period: float, unicode: bool
) -> None:
    with contextlib.suppress(curses.error):
        curses.curs_set(0)
    screen.timeout(int(period * 1000))  # getch waits this long for a key: the refresh period
    while True:
        snapshot = source.poll(timeout=max(2.0, period * 2))
        rows, cols = screen.getmaxyx()
        screen.erase()
        for y, line in enumerate(render_text(snapshot, cols - 1, rows, unicode=unicode)):
            with contextlib.suppress(curses.error):  # the terminal shrank under us
                screen.addnstr(y, 0, line, cols - 1)
        screen.refresh()
        if screen.getch() in (ord("q"), ord("Q")):
            return
