"""Client layer: a progress bar while waiting on the engines (tqdm, optional, notebook-aware).

tqdm is optional: it is imported only when a bar is asked for. In a Jupyter kernel that has
ipywidgets the bar is a widget; everywhere else (a terminal, or a notebook without
ipywidgets) it is tqdm's text bar on stderr, which notebooks also redraw in place. We choose
the class ourselves rather than through ``tqdm.auto``, which warns in a notebook that lacks
ipywidgets instead of falling back quietly.
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
        from tqdm.notebook import tqdm as notebook_tqdm

        return notebook_tqdm(**options)
    return tqdm(file=sys.stderr, **options)


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
