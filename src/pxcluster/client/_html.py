"""Client layer: HTML for notebooks: a ResultList as a compact table, rich outputs inline.

The text layout of the seeds stays the plain-text form (and what a terminal shows); in a
notebook the same results read better as one row per engine with the code, its output and
its errors side by side, and rich outputs (a DataFrame's HTML, a figure) shown as such
rather than as their ``repr``. Text is always escaped; HTML and SVG that the engine's
objects produced are shown as they are, as Jupyter shows any output.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

_CELL = 'style="text-align:left; vertical-align:top"'
_PRE = 'style="margin:0; white-space:pre-wrap"'


def _pre(text: str) -> str:
    return f"<pre {_PRE}>{html.escape(text)}</pre>" if text else ""


def bundle_html(bundle: Mapping[str, Any]) -> str:
    """The richest HTML form of a mime bundle (``text/plain`` escaped as the fallback)."""
    if isinstance(bundle.get("text/html"), str):
        return str(bundle["text/html"])
    for mime in ("image/png", "image/jpeg"):
        if isinstance(bundle.get(mime), str):
            return f'<img src="data:{mime};base64,{bundle[mime]}"/>'
    if isinstance(bundle.get("image/svg+xml"), str):
        return str(bundle["image/svg+xml"])
    plain = bundle.get("text/plain")
    return _pre(plain if isinstance(plain, str) else "")


def _output_html(entry: Mapping[str, Any]) -> str:
    parts = [_pre((entry.get("stdout") or "").rstrip("\n"))]
    parts += [bundle_html(b) for b in entry.get("display_data") or ()]
    result = entry.get("execute_result")
    if result:
        parts.append(bundle_html(result))
    elif entry.get("display") is not None:
        parts.append(_pre(str(entry["display"])))
    return "".join(parts)


def results_table(entries: Sequence[Mapping[str, Any]]) -> str:
    """A ResultList as an HTML table: engine, ``In [N]`` and code, output, errors."""
    with_err = any(e.get("stderr") for e in entries)
    head = ["engine", "In", "Out"] + (["Err"] if with_err else [])
    rows = ["<tr>" + "".join(f"<th {_CELL}>{h}</th>" for h in head) + "</tr>"]
    for entry in entries:
        cells = [
            str(entry["id"]),
            f"[{entry['number']}]&nbsp;" + _pre(entry["input"]["raw"]),
            _output_html(entry),
        ]
        if with_err:
            cells.append(_pre((entry.get("stderr") or "").rstrip("\n")))
        rows.append("<tr>" + "".join(f"<td {_CELL}>{c}</td>" for c in cells) + "</tr>")
    return (
        '<table class="pxcluster-results"><caption style="text-align:left">'
        "&lt;Results List&gt;</caption>" + "".join(rows) + "</table>"
    )
