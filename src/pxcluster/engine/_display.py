"""Engine layer: rich outputs: mime bundles of values, ``display()`` and matplotlib figures.

What a Jupyter kernel's display machinery does, reduced to what an engine needs. An object
becomes a mime bundle (``{"text/plain": repr, "text/html": ...}``) from its ``_repr_*_``
methods. While a request runs, a ``DisplayCapture`` collects what it displays: each
``display(obj)`` call (``display`` is a builtin on engines, as in IPython) and each
matplotlib figure the code shows or leaves open. Every bundle goes into the reply, and when
the client asked for streaming it is also sent at once, as a STREAM message named
``display`` whose text is the bundle as JSON (Jupyter's own encoding of a bundle), so a
notebook shows a figure while the loop that draws the next one still runs.

matplotlib stays optional: figures are looked for only once user code imported pyplot, and
engines default to this package's backend (``_mpl_backend``), whose ``show()`` sends them.
"""

from __future__ import annotations

import base64
import builtins
import io
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, ClassVar

log = logging.getLogger("pxcluster.engine")

Bundle = dict[str, Any]

#: Mime types and the IPython repr methods that produce them, richest first.
_REPR_METHODS = (
    ("text/html", "_repr_html_"),
    ("text/markdown", "_repr_markdown_"),
    ("text/latex", "_repr_latex_"),
    ("image/svg+xml", "_repr_svg_"),
    ("image/png", "_repr_png_"),
    ("image/jpeg", "_repr_jpeg_"),
    ("application/json", "_repr_json_"),
)
_BINARY = frozenset({"image/png", "image/jpeg"})

#: The matplotlib backend engines use unless MPLBACKEND says otherwise.
MPL_BACKEND = "module://pxcluster.engine._mpl_backend"


class DisplayCapture:
    """The bundles one request displays; while active, where ``display()`` sends them.

    Args:
        on_write: called with ``("display", bundle as JSON)`` as each bundle is made, to
            stream it to the client; None when the client did not ask for streaming.
    """

    current: ClassVar[DisplayCapture | None] = None  # the one of the running request

    def __init__(self, on_write: Callable[[str, str], None] | None = None) -> None:
        self.bundles: list[Bundle] = []
        self._on_write = on_write
        self._saved: DisplayCapture | None = None

    def publish(self, bundle: Bundle) -> None:
        self.bundles.append(bundle)
        if self._on_write is not None:
            self._on_write("display", json.dumps(bundle))

    def __enter__(self) -> DisplayCapture:
        self._saved, DisplayCapture.current = DisplayCapture.current, self
        return self

    def __exit__(self, *exc_info: object) -> None:
        DisplayCapture.current = self._saved


def display(*objs: object, raw: bool = False) -> None:
    """Show each object in the client's notebook or terminal, richly where it can be.

    The engines' ``display``, like IPython's: ``raw=True`` takes ready mime bundles (dicts).
    Outside a request it prints each object's repr.
    """
    capture = DisplayCapture.current
    for obj in objs:
        bundle = dict(obj) if raw and isinstance(obj, dict) else mime_bundle(obj)
        if capture is None:
            sys.stdout.write(f"{bundle.get('text/plain', '')}\n")
        else:
            capture.publish(bundle)


def mime_bundle(obj: object, text: str | None = None) -> Bundle:
    """Every form of ``obj`` its repr methods give, always with ``text/plain``.

    ``text`` is the repr when the caller has it already. A repr method that fails or returns
    something that is not JSON-safe is left out, as IPython leaves it out.
    """
    bundle: Bundle = {"text/plain": repr(obj) if text is None else text}
    if _is_figure(obj):
        bundle["image/png"] = _figure_png(obj)
        return bundle
    if isinstance(obj, type):
        return bundle  # a class's _repr_*_ attributes are unbound methods, not its reprs
    bundle.update(_from_mimebundle_method(obj))
    for mime, name in _REPR_METHODS:
        if mime in bundle:
            continue
        data = _call_repr(obj, name)
        if data is not None:
            bundle[mime] = data
    return bundle


def rich_bundle(obj: object, text: str) -> Bundle | None:
    """``obj``'s bundle when it has a rich form (HTML, an image...), else None, so that plain
    values travel as their repr only and replies stay small."""
    bundle = mime_bundle(obj, text)
    return bundle if len(bundle) > 1 else None


def _call_repr(obj: object, name: str) -> Any:
    method = getattr(obj, name, None)
    if not callable(method):
        return None
    try:
        data = method()
    except Exception:
        log.debug("%s of %s failed", name, type(obj).__name__, exc_info=True)
        return None
    if isinstance(data, tuple) and data:
        data = data[0]  # (data, metadata)
    return _json_safe(data, binary=name in ("_repr_png_", "_repr_jpeg_"))


def _from_mimebundle_method(obj: object) -> Bundle:
    method = getattr(obj, "_repr_mimebundle_", None)
    if not callable(method):
        return {}
    try:
        found = method(include=None, exclude=None)
    except Exception:
        log.debug("_repr_mimebundle_ of %s failed", type(obj).__name__, exc_info=True)
        return {}
    if isinstance(found, tuple) and found:
        found = found[0]
    if not isinstance(found, dict):
        return {}
    out: Bundle = {}
    for mime, data in found.items():
        safe = _json_safe(data, binary=mime in _BINARY)
        if isinstance(mime, str) and safe is not None:
            out[mime] = safe
    return out


def _json_safe(data: Any, binary: bool) -> Any:
    """``data`` as it can travel in JSON (images base64), or None when it cannot."""
    if data is None:
        return None
    if binary and isinstance(data, bytes | bytearray):
        return base64.b64encode(data).decode("ascii")
    try:
        json.dumps(data)
    except (TypeError, ValueError):
        return None
    return data


def _is_figure(obj: object) -> bool:
    figure_module = sys.modules.get("matplotlib.figure")
    return figure_module is not None and isinstance(obj, figure_module.Figure)


def _figure_png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def flush_figures() -> list[object]:
    """Display every open matplotlib figure into the running request, then close them all.

    Called by the backend's ``show()`` and after each execute, as a notebook's inline
    backend does. Does nothing when pyplot was never imported or no request is running.

    Returns:
        the figures displayed.
    """
    pyplot = sys.modules.get("matplotlib.pyplot")
    capture = DisplayCapture.current
    if pyplot is None or capture is None:
        return []
    shown: list[object] = []
    try:
        for number in pyplot.get_fignums():
            figure = pyplot.figure(number)
            capture.publish(mime_bundle(figure))
            shown.append(figure)
    except Exception:
        log.exception("could not render a matplotlib figure")
    finally:
        pyplot.close("all")
    return shown


def install() -> None:
    """Engine start-up: ``display`` becomes a builtin and matplotlib uses the engine backend.

    Done in the engine process when it starts, never on import, as a kernel sets up its own
    process; an MPLBACKEND the user set is kept (figures still come back after each execute).
    """
    builtins.display = display  # type: ignore[attr-defined]
    os.environ.setdefault("MPLBACKEND", MPL_BACKEND)
