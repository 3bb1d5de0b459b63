"""Monitor layer: a snapshot as lines of text, for ``pxcluster top`` (pure: no terminal I/O).

The screen is cut to fit: the summary and the engines first (as many as there is room for,
busy ones before idle ones before dead ones), then recent errors, then the task stream.
"""

from __future__ import annotations

import time

from pxcluster.monitor._snapshot import ClusterSnapshot, EngineRow

_BARS = " ▁▂▃▄▅▆▇█"
_ASCII_BARS = " _.-:=+*#@"


def human_bytes(n: int | None) -> str:
    """``n`` bytes in B, kB, MB, GB (``-`` for unknown)."""
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def sparkline(values: list[float], width: int, unicode: bool = True) -> str:
    """The last ``width`` values as a row of bar characters, scaled to their maximum."""
    bars = _BARS if unicode else _ASCII_BARS
    values = values[-width:]
    top = max(values, default=0.0)
    if top <= 0:
        return bars[1] * len(values)
    return "".join(bars[max(1, round(v / top * (len(bars) - 1)))] for v in values)


def _engine_line(e: EngineRow) -> str:
    cpu = "-" if e.cpu is None else f"{e.cpu:.0f}"
    state = e.state.upper() if e.state in ("dead", "stopped") else e.state
    seen = f"{e.last_seen:.1f}s" + (" ago" if e.state in ("dead", "stopped") else "")
    return (
        f"{e.id:>6}  {state:<7} {e.hostname[:18]:<18} {e.pid:>7}  {e.queue:>5}  "
        f"{human_bytes(e.memory):>9}  {cpu:>4}  {seen:<10} {e.job}"
    ).rstrip()


def render_text(
    snap: ClusterSnapshot, width: int = 100, height: int = 40, unicode: bool = True
) -> list[str]:
    """The lines of one ``top`` screen, each at most ``width`` characters, at most ``height``
    (``unicode`` False: ASCII only, for terminals that cannot show block characters)."""
    clock = time.strftime("%H:%M:%S", time.localtime(snap.taken or time.time()))
    live = snap.live_engines
    busy = sum(1 for e in live if e.state == "busy")
    gone = len(snap.engines) - len(live)
    lines = [
        f"pxcluster top - profile {snap.profile!r} - controller {snap.controller_url} - "
        f"{clock}   (q quits)",
        f"engines: {len(live)} live ({busy} busy, {len(live) - busy} idle), {gone} dead   "
        f"tasks: {snap.queued} queued, {snap.waiting} waiting, {snap.assigned} assigned",
        f"throughput: {snap.rate:.1f}/s   waiting: {snap.backlog[-1][1] if snap.backlog else 0}"
        f"   finished: {snap.finished}   errors: "
        f"{snap.errors_total}   clients: {len(snap.clients)}   record store: "
        f"{snap.store_records} records, {human_bytes(snap.store_bytes)} "
        f"(file {human_bytes(snap.store_file_bytes)})",
    ]
    if not snap.answering:
        lines.append(f"!! {snap.problem}")
    rates = [rate for _, rate in snap.throughput]
    spark_width = max(10, width - 30)
    shown = min(len(rates), spark_width)
    lines.append(f"rate, last {shown} polls: {sparkline(rates, spark_width, unicode)}")
    lines.append("")
    lines.append(
        f"{'ENGINE':>6}  {'STATE':<7} {'HOST':<18} {'PID':>7}  {'QUEUE':>5}  {'MEMORY':>9}  "
        f"{'CPU%':>4}  LAST HEARD"
    )
    order = {"busy": 0, "idle": 1, "dead": 2, "stopped": 3}
    engines = sorted(snap.engines, key=lambda e: (order.get(e.state, 4), e.id))
    errors = list(snap.errors)[-3:]
    reserve = 1 + (2 + 2 * len(errors) if errors else 0) + (4 if snap.events else 0)
    room = max(1, height - len(lines) - reserve)
    for e in engines[:room]:
        lines.append(_engine_line(e))
    if len(engines) > room:
        lines.append(f"   ... and {len(engines) - room} more engines")
    if errors:
        lines.append("")
        lines.append("RECENT ERRORS")
        for err in errors:
            when = time.strftime("%H:%M:%S", time.localtime(err.time))
            lines.append(
                f"  {when} engine {err.engine} {err.kind} {err.id}: {err.ename}: {err.evalue}"
            )
            code = [t for t in err.traceback.splitlines() if t.strip(" ~^")][-2:-1]
            lines.append(f"      {code[0].strip() if code else ''}")
    room = height - len(lines) - 2
    if room > 0 and snap.events:
        lines.append("")
        lines.append(f"{'DONE':<9} {'ENGINE':>6}  {'WHAT':<8} {'TOOK':>9}  {'STATUS':<8} ID")
        for ev in list(snap.events)[-room:]:
            when = time.strftime("%H:%M:%S", time.localtime(ev.done))
            lines.append(
                f"{when:<9} {ev.engine:>6}  {ev.kind:<8} {ev.took * 1000:>7.1f}ms  "
                f"{ev.status:<8} {ev.id}"
            )
    return [line[:width] for line in lines[:height]]
