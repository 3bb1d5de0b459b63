"""Magics layer: showing the engines' output here: live while a command runs, then grouped.

While a command runs, engines stream text in arbitrary pieces (``print(x, end="")`` sends no
newline), so the lines of each engine and stream are assembled before they are printed,
each prefixed with ``[E] `` as in the seeds' layout. Rich outputs (a figure, a DataFrame's
HTML) are published as display data, so a notebook shows them as such and a terminal
shows their text; in a notebook each one gets a small engine header above it
(``[output:E]`` for a display, ``Out[E:N]:`` for a value, as ipyparallel labels them),
because the browser shows the HTML or image form, never the prefixed ``text/plain``.

Everything shown live is also kept (a ``Transcript``). When the command ends in a notebook,
the cell's live output is replaced (``clear_output``) by the same output grouped, as
``--group-outputs`` says (see ``grouped``): one ``[stdout:E]`` / ``[stderr:E]`` block per
engine instead of lines interleaved in arrival order. A terminal cannot take back what it
printed, so there the live lines stay and only the values follow, in engine order.
"""

from __future__ import annotations

import dataclasses
import html
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from IPython.display import clear_output, publish_display_data

from pxcluster.client import EngineOutput
from pxcluster.magics._options import GROUPINGS

#: Inline style of the engine headers: the notebook's output-prompt font and colour.
_HEADER_STYLE = (
    "font-family:var(--jp-code-font-family,monospace);"
    "font-size:var(--jp-code-font-size,13px);"
    "color:var(--jp-cell-outprompt-font-color,#d84315);"
    "line-height:1.3;margin:0.2em 0 0 0"
)
_PRE_STYLE = (
    "margin:0;padding:0;border:0;background:transparent;"
    "font-family:var(--jp-code-font-family,monospace);font-size:var(--jp-code-font-size,13px);"
    "line-height:var(--jp-code-line-height,1.3)"
)


@dataclasses.dataclass(frozen=True)
class Block:
    """One thing to show for a finished command, in the order chosen.

    ``kind`` is ``"stdout"`` or ``"stderr"`` (``text`` is the engine's whole stream), or
    ``"rich"``: ``bundle`` under the notebook header ``header``, its ``text/plain``
    prefixed ``prefix`` for terminals and text views.
    """

    engine: int
    kind: str
    text: str = ""
    bundle: Mapping[str, Any] | None = None
    header: str = ""
    prefix: str = ""


def prefixed(prefix: str, text: str) -> str:
    """``prefix`` then ``text``, continuation lines indented under the first."""
    pad = "\n" + " " * len(prefix)
    return prefix + pad.join(text.splitlines() or [""])


def stream_block_text(engine: int, name: str, text: str) -> str:
    """``[stdout:E] text`` (one line) or the header on a line of its own, then the lines."""
    body = text if text.endswith("\n") else text + "\n"
    head = f"[{name}:{engine}]"
    return f"{head} {body}" if body.count("\n") == 1 else f"{head}\n{body}"


def header_bundle(engine: int, label: str) -> dict[str, Any]:
    """The small engine header shown above a rich output in a notebook.

    HTML only, with no ``text/plain``: terminals show nothing for it (the output's own
    text form carries the ``[E]`` prefix already).
    """
    return {
        "text/html": f'<div class="pxcluster-header" data-engine="{engine}" '
        f'style="{_HEADER_STYLE}">{html.escape(label)}</div>'
    }


def plain_value_html(prefix: str, text: str) -> str:
    """A text value beside its ``[E] Out[N]:`` prefix: long lines wrap under the value,
    not back to the output's left edge, so each engine's value stays apart."""
    return (
        '<div class="pxcluster-value" style="display:flex;align-items:baseline">'
        f'<pre style="{_PRE_STYLE};white-space:pre;'
        'color:var(--jp-cell-outprompt-font-color,#d84315)">'
        f"{html.escape(prefix.rstrip())}&nbsp;</pre>"
        f'<pre style="{_PRE_STYLE};white-space:pre-wrap;word-break:break-all;flex:1">'
        f"{html.escape(text)}</pre></div>"
    )


def value_block(entry: Mapping[str, Any]) -> Block | None:
    """The Block of an engine's final value (``[E] Out[N]:``), or None when there is none."""
    if entry.get("display") is None:
        return None
    engine, number = int(entry["id"]), entry["number"]
    rich = entry.get("execute_result")
    prefix = f"[{engine}] Out[{number}]: "
    if rich:
        return Block(engine, "rich", bundle=rich, header=f"Out[{engine}:{number}]:", prefix=prefix)
    return Block(engine, "rich", bundle={"text/plain": str(entry["display"])}, prefix=prefix)


class Transcript:
    """What each engine streamed for one command, in each engine's own order."""

    def __init__(self) -> None:
        self.streams: dict[tuple[int, str], list[str]] = {}
        self.displays: dict[int, list[Mapping[str, Any]]] = {}
        self.arrival: list[tuple[int, str]] = []  # (engine, kind) of each piece, as shown

    def add(self, item: EngineOutput) -> None:
        kind = "display" if item.name == "display" else item.name
        if kind == "display":
            self.displays.setdefault(item.engine, []).append(item.data)
        else:
            self.streams.setdefault((item.engine, kind), []).append(item.text)
        self.arrival.append((item.engine, kind))

    def stream(self, engine: int, name: str) -> str:
        return "".join(self.streams.get((engine, name), ()))

    def engines(self) -> list[int]:
        return sorted({engine for engine, _ in self.arrival})

    def __bool__(self) -> bool:
        return bool(self.arrival)


def _display_block(engine: int, bundle: Mapping[str, Any]) -> Block:
    return Block(engine, "rich", bundle=bundle, header=f"[output:{engine}]", prefix=f"[{engine}] ")


def grouped(
    transcript: Transcript, values: Sequence[Mapping[str, Any]], grouping: str
) -> list[Block]:
    """A finished command's output in the order ``grouping`` says (ipyparallel's choices).

    ``engine``: each engine's stdout, stderr, displays and value, engine by engine.
    ``type``: every engine's stdout, then every stderr, then the displays, then the values.
    ``order``: as ``type``, but the displays collated: each engine's first, then each
    engine's second... (a loop drawing one figure per step reads step by step).

    Raises:
        ValueError: an unknown ``grouping``.
    """
    if grouping not in GROUPINGS:
        raise ValueError(f"--group-outputs {grouping!r}: give one of {', '.join(GROUPINGS)}")
    by_engine = {int(v["id"]): v for v in values}
    engines = sorted(set(transcript.engines()) | set(by_engine))

    def streams(engine: int, name: str) -> list[Block]:
        text = transcript.stream(engine, name)
        return [Block(engine, name, text=text)] if text else []

    def displays(engine: int) -> list[Block]:
        return [_display_block(engine, b) for b in transcript.displays.get(engine, ())]

    def value(engine: int) -> list[Block]:
        block = value_block(by_engine[engine]) if engine in by_engine else None
        return [block] if block is not None else []

    if grouping == "engine":
        return [
            block
            for e in engines
            for block in (*streams(e, "stdout"), *streams(e, "stderr"), *displays(e), *value(e))
        ]
    out = [b for e in engines for b in streams(e, "stdout")]
    out += [b for e in engines for b in streams(e, "stderr")]
    if grouping == "type":
        out += [b for e in engines for b in displays(e)]
    else:
        lists = [displays(e) for e in engines]
        out += [b for i in range(max(map(len, lists), default=0)) for b in _nth(lists, i)]
    return out + [b for e in engines for b in value(e)]


def _nth(lists: Iterable[list[Block]], index: int) -> list[Block]:
    return [blocks[index] for blocks in lists if index < len(blocks)]


def publish_block(block: Block, notebook: bool) -> None:
    """Show one Block: streams on stdout/stderr, rich outputs as display data (with their
    engine header and, for text values, the wrapping HTML form, in a notebook)."""
    if block.kind in ("stdout", "stderr"):
        stream = sys.stderr if block.kind == "stderr" else sys.stdout
        stream.write(stream_block_text(block.engine, block.kind, block.text))
        stream.flush()
        return
    assert block.bundle is not None
    data = dict(block.bundle)
    plain = str(data.get("text/plain", ""))
    data["text/plain"] = prefixed(block.prefix, plain)
    metadata = {"engine": block.engine}
    if notebook and block.header:
        publish_display_data(header_bundle(block.engine, block.header), metadata=metadata)  # type: ignore[no-untyped-call]
    elif notebook and len(data) == 1:
        data["text/html"] = plain_value_html(block.prefix, plain)
    publish_display_data(data, metadata=metadata)  # type: ignore[no-untyped-call]


class LiveOutput:
    """Prints each piece of EngineOutput it is given, line by line, prefixed ``[E] ``, and
    keeps it (``transcript``) for the grouped form shown when the command ends.

    Called in the thread that shows output (the magics' main thread), never in the
    client's I/O thread, so notebooks attribute the output to the running cell.
    """

    def __init__(self, notebook: bool = False) -> None:
        self.notebook = notebook
        self.transcript = Transcript()
        self._partial: dict[tuple[int, str], str] = {}

    def show(self, item: EngineOutput) -> None:
        self.transcript.add(item)
        if item.name == "display":
            self._flush_engine(item.engine)
            publish_block(_display_block(item.engine, item.data), self.notebook)
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

    def finish(self, values: Sequence[Mapping[str, Any]], grouping: str, regroup: bool) -> None:
        """Show the values; in a notebook (``regroup``) first replace the live output by the
        grouped form, values included."""
        if regroup and self.notebook and self.transcript:
            clear_output(wait=True)  # type: ignore[no-untyped-call]
            for block in grouped(self.transcript, values, grouping):
                publish_block(block, self.notebook)
            return
        show_values(values, self.notebook)


def show_values(results: Iterable[Mapping[str, Any]], notebook: bool = False) -> None:
    """Show each engine's final expression value as ``[E] Out[N]: value`` (richly if it can),
    in engine order."""
    for entry in sorted(results, key=lambda e: int(e["id"])):
        block = value_block(entry)
        if block is not None:
            publish_block(block, notebook)
