"""Magics layer: running code on the engines while their output shows, and Ctrl-C stops it.

Theory of operation
-------------------
The client's I/O thread receives the engines' output; it only puts each piece in a queue.
The thread that ran the magic (IPython's main thread) takes the pieces from that queue and
shows them, so notebooks attribute them to the running cell and Ctrl-C (SIGINT, which
Python delivers to the main thread) lands while it waits. A marker put in the queue when
the call is done ends the wait: it comes after all the output, because each engine's
output reaches the client before its reply.

On Ctrl-C the call is stopped (its engines' queues cleared, then their running code
interrupted), and the wait goes on, for a few seconds at most, until the engines have
answered, so that the prompt comes back with the engines free, and then KeyboardInterrupt
is raised again, as IPython and Jupyter expect of an interrupted cell.

When the call is done, the output is shown once more, finished: in a notebook the cell's
live lines are replaced by the grouped form (``--group-outputs``, see ``_output.grouped``),
values included; elsewhere the values follow the live lines. A call that failed shows the
values of the engines where it did not fail, then raises its CompositeError.
"""

from __future__ import annotations

import queue
import sys
import time
from collections.abc import Callable

from pxcluster._errors import CompositeError
from pxcluster.client import EngineOutput, MultiEngineClient, ResultList
from pxcluster.client._progress import in_jupyter_kernel
from pxcluster.client._targets import TargetSpec
from pxcluster.magics._output import LiveOutput

#: Seconds to wait for interrupted engines to answer before giving the prompt back anyway.
STOP_TIMEOUT = 5.0
#: How often a waiting loop wakes up; only matters where signals cannot wake a wait.
_TICK = 0.1
#: Seconds of output gathered before it is shown, sorted by engine (see ``_drain``).
ORDER_WINDOW = 0.2

_DONE = object()


class EnginesInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a magic's command: a KeyboardInterrupt (so a notebook's "run all"
    stops there too) that IPython shows as one line, not the magics' own frames."""

    def __init__(self, engines: list[int]) -> None:
        super().__init__(f"interrupted the command on engine(s) {engines}")
        self.engines = engines

    def _render_traceback_(self) -> list[str]:
        return [
            f"KeyboardInterrupt: interrupted the command on engine(s) {self.engines}; "
            "%result shows where each one stopped"
        ]


def _drain(items: queue.Queue[object], output: LiveOutput, timeout: float | None) -> bool:
    """Show queued output until the done marker; False if ``timeout`` ran out first.

    Output is shown in batches: what arrives within ``ORDER_WINDOW`` of a batch's first
    piece is shown together, in engine order (each engine's pieces keep their order). A
    short command's output therefore reads engine by engine, ``[0]`` before ``[1]``,
    whichever engine answered first; a long one's still shows as it comes.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    batch: list[EngineOutput] = []
    batch_began = 0.0
    try:
        while True:
            now = time.monotonic()
            left = _TICK if deadline is None else min(_TICK, deadline - now)
            if batch:
                left = min(left, batch_began + ORDER_WINDOW - now)
            if deadline is not None and deadline - now <= 0:
                return False
            try:
                item = items.get(timeout=max(0.0, left))
            except queue.Empty:
                if batch and time.monotonic() >= batch_began + ORDER_WINDOW:
                    _show(batch, output)
                continue
            if item is _DONE:
                return True
            assert isinstance(item, EngineOutput)
            if not batch:
                batch_began = time.monotonic()
            batch.append(item)
    finally:
        _show(batch, output)  # also on Ctrl-C: nothing received is lost


def _show(batch: list[EngineOutput], output: LiveOutput) -> None:
    """Show ``batch`` in engine order (stable: each engine's pieces keep their order)."""
    batch.sort(key=lambda item: item.engine)
    for item in batch:
        output.show(item)
    batch.clear()


def run_live(
    client: MultiEngineClient,
    code: str,
    targets: TargetSpec | None,
    meanwhile: Callable[[], object] | None = None,
    grouping: str = "type",
) -> ResultList:
    """Execute ``code`` on ``targets``, showing each engine's output as it comes, then
    each engine's value; in a notebook the cell's output is then shown again, grouped as
    ``grouping`` says (not with ``meanwhile``, whose own output would go with it).

    ``meanwhile`` runs here once the code is sent (``%%px --local``).

    Raises:
        CompositeError: the code failed on one or more engines (shown after the output
            and the values of the engines where it did not fail).
        EnginesInterrupted: Ctrl-C (a KeyboardInterrupt); the engines were stopped.
    """
    items: queue.Queue[object] = queue.Queue()
    output = LiveOutput(notebook=in_jupyter_kernel())
    pending = client.execute(code, targets=targets, block=False, on_output=items.put)
    pending.add_done_callback(lambda _: items.put(_DONE))
    try:
        if meanwhile is not None:
            meanwhile()
        _drain(items, output, None)
    except KeyboardInterrupt:
        pending.interrupt()
        if not _drain(items, output, STOP_TIMEOUT):
            sys.stderr.write(
                f"pxcluster: the engines did not stop within {STOP_TIMEOUT:.0f} s; their "
                "code may be catching KeyboardInterrupt (mec.queue_status() shows them)\n"
            )
        raise EnginesInterrupted(sorted({t for _, t in pending.keys})) from None
    finally:
        output.close()
    error = pending.exception()
    partial = pending.partial if isinstance(pending.partial, list) else []
    values = pending.result() if error is None else [e for e in partial if "error" not in e]
    output.finish(values, grouping, regroup=meanwhile is None)
    if error is not None:
        raise error
    result: ResultList = pending.result()
    return result


def last_results(client: MultiEngineClient, targets: TargetSpec | None) -> ResultList:
    """What ``%result`` shows: the last execute on each target, as ``get_result`` gives it,
    except that an execute that failed shows in the list too, each engine with its output
    and error (``"error"``), rather than raising its CompositeError again, which would stop
    a notebook's "run all" at a cell that only looks."""
    try:
        found: ResultList = client.get_result(targets=targets, block=True)
        return found
    except CompositeError:
        pass
    ids = client._resolve(targets)
    entries = ResultList()
    for engine in ids:
        pending = client._last_execute.get(engine)
        if pending is None:
            continue
        error = pending.exception()
        if error is None:
            rows = pending.result()
        else:
            rows = pending.partial if isinstance(pending.partial, list) else []
            if not any(row["id"] == engine for row in rows):
                rows = [_error_only_entry(engine, error)]
        entries += [row for row in rows if row["id"] == engine]
    return entries


def _error_only_entry(engine: int, error: BaseException) -> dict[str, object]:
    """An engine's row when its reply never came (it died): only the error."""
    errors = error.elist if isinstance(error, CompositeError) else [error]
    mine = [e for e in errors if getattr(e, "engine_id", None) == engine] or [error]
    return {
        "id": engine,
        "number": None,
        "input": {"raw": "", "translated": ""},
        "stdout": "",
        "stderr": "",
        "display": None,
        "error": mine[0],
    }
