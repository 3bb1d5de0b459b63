"""Magics layer: showing the engines' output here, live, each line under its engine's id.

Engines stream text in arbitrary pieces (``print(x, end="")`` sends no newline), so the
lines of each engine and stream are assembled before they are printed, each prefixed with
``[E] `` as in the seeds' layout; what is left when the command ends is printed then. Lines
of one engine keep their order; lines of different engines interleave as they arrive.
Rich outputs (a figure, a DataFrame's HTML) are published as display data, so a notebook
shows them as such and a terminal shows their text.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

from IPython.display import publish_display_data

from pxcluster.client import EngineOutput


def _prefixed(prefix: str, text: str) -> str:
    """``prefix`` then ``text``, continuation lines indented under the first."""
    pad = "\n" + " " * len(prefix)
    return prefix + pad.join(text.splitlines() or [""])


def publish_bundle(engine: int, bundle: Mapping[str, Any], prefix: str) -> None:
    """Publish ``bundle`` as display data; its ``text/plain`` gets ``prefix``."""
    data = dict(bundle)
    data["text/plain"] = _prefixed(prefix, str(data.get("text/plain", "")))
    publish_display_data(data, metadata={"engine": engine})  # type: ignore[no-untyped-call]


class LiveOutput:
    """Prints each piece of EngineOutput it is given, line by line, prefixed ``[E] ``.

    Called in the thread that shows output (the magics' main thread), never in the
    client's I/O thread, so notebooks attribute the output to the running cell.
    """

    def __init__(self) -> None:
        self._partial: dict[tuple[int, str], str] = {}

    def show(self, item: EngineOutput) -> None:
        if item.name == "display":
            self._flush_engine(item.engine)
            publish_bundle(item.engine, item.data, f"[{item.engine}] ")
            return
        key = (item.engine, item.name)
        *lines, rest = (self._partial.pop(key, "") + item.text).split("\n")
        if lines:
            self._write(item.engine, item.name, lines)
        if rest:
            self._partial[key] = rest

    def _write(self, engine: int, name: str, lines: Iterable[str]) -> None:
        stream = sys.stderr if name == "stderr" else sys.stdout
        stream.write("".join(f"[{engine}] {line}\n" for line in lines))
        stream.flush()

    def _flush_engine(self, engine: int) -> None:
        for key in [k for k in self._partial if k[0] == engine]:
            self._write(engine, key[1], [self._partial.pop(key)])

    def close(self) -> None:
        """Print what is left of unfinished lines (the command ended or was interrupted)."""
        for engine, name in list(self._partial):
            self._write(engine, name, [self._partial.pop((engine, name))])


def show_values(results: Iterable[Mapping[str, Any]]) -> None:
    """Show each engine's final expression value as ``[E] Out[N]: value`` (richly if it can)."""
    for entry in results:
        if entry.get("display") is None:
            continue
        bundle = dict(entry.get("execute_result") or {"text/plain": entry["display"]})
        publish_bundle(entry["id"], bundle, f"[{entry['id']}] Out[{entry['number']}]: ")
