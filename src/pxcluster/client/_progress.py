"""Client layer: a progress bar while waiting on the engines (tqdm, optional, notebook-aware).

tqdm is optional: it is imported only when a bar is asked for. In a Jupyter kernel that has
ipywidgets the bar is a widget; everywhere else (a terminal, or a notebook without
ipywidgets) it is tqdm's text bar on stderr, which notebooks also redraw in place. We choose
the class ourselves rather than through ``tqdm.auto``, which warns in a notebook that lacks
ipywidgets instead of falling back quietly.

A widget lives only as long as its kernel: a saved notebook keeps only a reference to the
widget's model (and a text fallback frozen at 0%), so reopened it says "Error displaying
widget: model not found". So the widget is displayed under a display id, and when its bar
closes that output is replaced by the bar's final text (``map: 100%|██████████| 48/48
[...]``), which is what the saved notebook keeps.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pxcluster.client._results import PendingResult


def in_jupyter_kernel() -> bool:
    """True when this process is a Jupyter kernel (ipykernel's shell is running)."""
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def progress_bar(total: int, desc: str, unit: str = "it", delay: float = 0.0) -> Any:
    """A new tqdm bar counting to ``total``; ``delay``: seconds before it first shows.

    Raises:
        ImportError: tqdm is not installed (``pip install tqdm``).
    """
    try:
        from tqdm.std import tqdm
    except ImportError as exc:
        raise ImportError("progress bars need tqdm: pip install tqdm") from exc
    options: dict[str, Any] = {"total": total, "desc": desc, "unit": unit, "delay": delay}
    if in_jupyter_kernel() and importlib.util.find_spec("ipywidgets") is not None:
        return _widget_bar(options)
    if not in_jupyter_kernel() and not _is_terminal(sys.stderr):
        return LogLine(total, desc, unit)  # a log or a pipe: one line, no redrawn bar
    return tqdm(file=sys.stderr, **options)


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty()) if callable(isatty) else False


class LogLine:
    """A progress "bar" for output that is not a terminal (a log file, a pipe, CI): it
    counts like tqdm and writes one line when closed, instead of a bar redrawn with
    carriage returns that a log would keep as one long garbled line."""

    def __init__(self, total: int, desc: str, unit: str) -> None:
        self.n = 0
        self.total = total
        self.desc = desc
        self.unit = unit
        self._began = time.monotonic()
        self._closed = False

    def update(self, count: int = 1) -> None:
        self.n += count

    def write(self, text: str, file: Any = None) -> None:
        (file or sys.stderr).write(text + "\n")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        seconds = time.monotonic() - self._began
        sys.stderr.write(f"{self.desc}: {self.n}/{self.total} {self.unit}s in {seconds:.1f} s\n")
        sys.stderr.flush()


def _widget_bar(options: dict[str, Any]) -> Any:
    """tqdm's notebook bar, displayed under a display id that ``close`` fills with the
    bar's final text, so a saved notebook keeps a readable bar instead of a dead widget."""
    # IPython's display, as tqdm's notebook module holds it: this layer never imports
    # IPython itself (only the magics do); in a kernel tqdm has imported it already.
    from tqdm.notebook import display
    from tqdm.notebook import tqdm as notebook_tqdm

    class FinishedAsText(notebook_tqdm):  # type: ignore[misc]
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(display=False, **kwargs)
            self.handle = None
            if self.delay <= 0:
                self._show()

        def _show(self) -> None:
            self.handle = display(self.container, display_id=True)
            self.displayed = True

        def display(self, *args: Any, **kwargs: Any) -> Any:
            if not self.displayed and self.delay > 0 and kwargs.get("check_delay", True):
                self._show()  # the delay passed: show it now, under our display id
            return super().display(*args, **kwargs)

        def close(self) -> None:
            closed = self.disable
            super().close()
            if closed or self.handle is None:
                return
            self.handle.update({"text/plain": finished_text(self)}, raw=True)
            self.container.close()  # the widget's model goes; nothing refers to it now

    return FinishedAsText(**options)


def finished_text(bar: Any) -> str:
    """The text form of ``bar`` as it stands (``desc: 100%|██████████| 4/4 [...]``)."""
    from tqdm.std import tqdm

    return str(tqdm.format_meter(**{**bar.format_dict, "ncols": None}))


def show_progress(
    pending: PendingResult[Any],
    desc: str,
    unit: str,
    interval: float,
    timeout: float | None,
) -> bool:
    """Wait for ``pending`` while a bar follows its ``progress()``; True once it is done.

    The bar is redrawn every ``interval`` seconds (it is a display, not a synchronisation:
    the wait itself returns as soon as the call is done). Ctrl-C interrupts the call.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    bar = progress_bar(pending.progress()[1], desc, unit)
    try:
        while True:
            step = interval if deadline is None else min(interval, deadline - time.monotonic())
            finished = pending.wait(max(0.0, step))
            bar.update(pending.progress()[0] - bar.n)
            if finished:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
    except KeyboardInterrupt:
        pending.interrupt()
        raise
    finally:
        bar.close()
