"""Client layer: HTML for notebooks: a ResultList as a compact table, rich outputs inline.

The text layout of the seeds stays the plain-text form (and what a terminal shows); in a
notebook the same results read better as one row per engine: the code with its ``[N]``
counter, what it printed (and displayed), its value, and its errors, each in a column of
its own, so printed lines and the value never run together. Rich outputs (a DataFrame's
HTML, a figure) are shown as such rather than as their ``repr``. Text is always escaped;
HTML and SVG that the engine's objects produced are shown as they are, as Jupyter shows
any output.

The table takes the notebook's own styling (JupyterLab's fonts, stripes and colours, read
through its CSS variables, with plain fallbacks elsewhere): its ``<pre>`` blocks are
transparent, so no white boxes sit in the grey rows, and the Err column looks like the
notebook's stderr output.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

_CELL = 'style="text-align:left;vertical-align:top;padding:0.25em 0.75em 0.25em 0"'
_PRE = (
    'style="margin:0;padding:0;border:0;background:transparent;white-space:pre-wrap;'
    "text-align:left;font-family:var(--jp-code-font-family,monospace);"
    'font-size:var(--jp-code-font-size,13px);line-height:var(--jp-code-line-height,1.3)"'
)
_PROMPT = "color:var(--jp-cell-inprompt-font-color,#307fc1)"
_ERR = (
    'style="text-align:left;vertical-align:top;padding:0.25em 0.5em;'
    'background:var(--jp-rendermime-error-background,#fdd)"'
)
#: Column titles, in order (a column that is empty in every row is left out, but In).
COLUMNS = ("engine", "In", "Printed", "Out", "Err")


def _pre(text: str, css_class: str = "") -> str:
    if not text:
        return ""
    cls = f' class="{css_class}"' if css_class else ""
    return f"<pre{cls} {_PRE}>{html.escape(text)}</pre>"


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


def _input_html(entry: Mapping[str, Any]) -> str:
    """``[N]`` on the first line of the code, the code's other lines under its first."""
    number = entry.get("number")
    counter = f"[{'?' if number is None else number}]"
    code = html.escape(str(entry["input"]["raw"]))
    return (
        '<div style="display:flex;align-items:baseline;gap:0.5em">'
        f"<pre {_PRE.replace('white-space:pre-wrap', 'white-space:pre')}>"
        f'<span style="{_PROMPT}">{counter}</span></pre>'
        f'<pre class="pxcluster-code" {_PRE}>{code}</pre></div>'
    )


def _printed_html(entry: Mapping[str, Any]) -> str:
    parts = [_pre((entry.get("stdout") or "").rstrip("\n"), "pxcluster-stdout")]
    parts += [bundle_html(b) for b in entry.get("display_data") or ()]
    return "".join(parts)


def _value_html(entry: Mapping[str, Any]) -> str:
    result = entry.get("execute_result")
    if result:
        return bundle_html(result)
    if entry.get("display") is not None:
        return _pre(str(entry["display"]), "pxcluster-value")
    return ""


def _error_html(entry: Mapping[str, Any]) -> str:
    text = (entry.get("stderr") or "").rstrip("\n")
    error = entry.get("error")
    if error is not None:
        name = getattr(error, "ename", type(error).__name__)
        detail = getattr(error, "traceback", "") or f"{name}: {getattr(error, 'evalue', error)}"
        text = "\n".join(p for p in (text, str(detail).rstrip("\n")) if p)
    return _pre(text, "pxcluster-stderr")


def results_table(entries: Sequence[Mapping[str, Any]]) -> str:
    """A ResultList as an HTML table: engine, ``[N]`` and code, what it printed, its value,
    its stderr and error (columns empty in every row are left out)."""
    rows = [
        {
            "engine": html.escape(str(e["id"])),
            "In": _input_html(e),
            "Printed": _printed_html(e),
            "Out": _value_html(e),
            "Err": _error_html(e),
        }
        for e in entries
    ]
    columns = [c for c in COLUMNS if c in ("engine", "In") or any(r[c] for r in rows)]
    head = "".join(f"<th {_CELL}>{c}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(f"<td {_ERR if c == 'Err' and row[c] else _CELL}>{row[c]}</td>" for c in columns)
        + "</tr>"
        for row in rows
    )
    engines = len({e["id"] for e in entries})
    caption = f"Results List: {engines} engine{'s' if engines != 1 else ''}"
    return (
        '<table class="pxcluster-results">'
        f'<caption style="text-align:left;caption-side:top;padding:0 0 0.25em 0;'
        f'color:var(--jp-ui-font-color2,#616161)">{caption}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )
