"""Benchmarks at scale (issue 13): many simulated engines on one controller, pxcluster beside
ipyparallel, and many real pxcluster engines; the rows of the table's "At scale" section.

Run alone: ``.venv-bench/bin/python benchmarks/at_scale.py`` (7-12 minutes; ``--json
FILE``); ``benchmarks/run.py`` runs it after the side-by-side workloads in a full run
(``--no-scale`` leaves it out). Each case is one process of its own, with a time limit:

- ``scale.py`` (pxcluster's controller with ``pxcluster.testing._simulator`` engines): 100
  and 1,000 engines with a real engine's four connections each; 5,000 with two each
  (``--sockets lean``: four would pass this machine's 20,000 file descriptors) and the
  controller's heartbeat timeout at 30 s, and 5,000 behind one ``pxrelay`` per simulator
  process (``--relay``);
- ``ipp_scale.py`` (a real ``ipcontroller`` with ``ipp_simulator.py`` engines): 100, 1,000
  and 5,000 engines with its defaults (an engine gives up after 5 s without a registration
  reply, as ``ipengine`` does);
- ``real_engines.py 256``: ``pxcluster start -n 256``, ``%px`` on all, ``pxcluster stop``.

A case that fails or passes its limit is written down with its error, not retried.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import dataclasses
import importlib.util
import json
import os
import subprocess
import tempfile
import time
from typing import Any

from benchmarks.proctree import Tracker, kill_tree

HERE = Path(__file__).resolve().parent


@dataclasses.dataclass(frozen=True)
class Case:
    """One run of a scale script: its column in the table."""

    key: str  # the column
    system: str
    engines: int
    script: str
    args: tuple[str, ...] = ()
    limit_s: float = 600.0

    def command(self, json_file: Path) -> list[str]:
        script = str(HERE / self.script)
        return [sys.executable, script, str(self.engines), *self.args, "--json", str(json_file)]

    def shown(self) -> str:
        return " ".join(["python", f"benchmarks/{self.script}", str(self.engines), *self.args])


LEAN_5K = ("--sockets", "lean", "--heartbeat-timeout", "30")
CASES = (
    Case("px-100", "pxcluster", 100, "scale.py", limit_s=300),
    Case("ipp-100", "ipyparallel", 100, "ipp_scale.py", limit_s=300),
    Case("px-1000", "pxcluster", 1000, "scale.py", limit_s=420),
    Case("ipp-1000", "ipyparallel", 1000, "ipp_scale.py", limit_s=420),
    Case("px-5000", "pxcluster", 5000, "scale.py", LEAN_5K, limit_s=600),
    Case("px-5000-relay", "pxcluster", 5000, "scale.py", ("--relay", *LEAN_5K[2:]), limit_s=600),
    Case("ipp-5000", "ipyparallel", 5000, "ipp_scale.py", ("--tasks", "300"), limit_s=600),
    Case("real-256", "pxcluster", 256, "real_engines.py", limit_s=600),
)
SMALL = (  # --small: does every case still run?
    Case("px-100", "pxcluster", 20, "scale.py", ("--idle", "1", "--tasks", "100"), 180),
    Case("ipp-100", "ipyparallel", 20, "ipp_scale.py", ("--idle", "1", "--tasks", "50"), 180),
    Case("real-256", "pxcluster", 4, "real_engines.py", limit_s=180),
)


def run_case(case: Case, workdir: Path) -> dict[str, Any]:
    """One case's figures (its JSON's first run), or its error; nothing of it left running."""
    out = workdir / f"{case.key}.json"
    record: dict[str, Any] = {
        "case": case.key,
        "system": case.system,
        "engines": case.engines,
        "command": case.shown(),
        "load_before": os.getloadavg()[0],
    }
    if case.system == "ipyparallel" and importlib.util.find_spec("ipyparallel") is None:
        record.update(error="n/a: ipyparallel is not installed", wall_s=0.0)
        record["load_after"] = record["load_before"]
        return record
    began = time.perf_counter()
    err = workdir / f"{case.key}.stderr"
    with err.open("w") as stderr:
        proc = subprocess.Popen(
            case.command(out), stdout=subprocess.DEVNULL, stderr=stderr, stdin=subprocess.DEVNULL
        )
        with Tracker(proc.pid) as tracker:
            try:
                proc.wait(timeout=case.limit_s)
            except subprocess.TimeoutExpired:
                kill_tree(proc.pid)
                proc.wait()
                record["error"] = f"stopped at its time limit of {case.limit_s:.0f} s"
            tracker.wait_gone(10.0)
            left = tracker.kill_leftovers()
    if proc.returncode != 0 and "error" not in record:
        tail = err.read_text(errors="replace").strip().splitlines()[-3:]
        record["error"] = f"exited with code {proc.returncode}: " + " / ".join(tail)[-400:]
    if left:
        record["left_running"] = left
    record["wall_s"] = round(time.perf_counter() - began, 1)
    record["load_after"] = os.getloadavg()[0]
    if out.exists():
        doc = json.loads(out.read_text())
        record["figures"] = doc["runs"][0] if "runs" in doc else doc
    return record


def run_all(cases: tuple[Case, ...] = CASES, only: set[str] | None = None) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="pxbench-scale-"))
    records = []
    for case in cases:
        if only and case.system not in only:
            continue
        print(
            f"[{time.strftime('%H:%M:%S')}] at scale: {case.shown()}", file=sys.stderr, flush=True
        )
        records.append(run_case(case, workdir))
    return {"cases": records}


# -- Markdown ------------------------------------------------------------------------------

ROWS: tuple[tuple[str, str, str], ...] = (  # figure key, title, unit
    ("registered", "registered (of N)", ""),
    ("lost", "lost (N minus those a client saw right after)", ""),
    ("registered_after_idle", "registered after 10 s idle", ""),
    ("register_s", "registration: launch until a client sees all", "s"),
    ("simulator_register_s", "registration: launch until the last reply (simulators)", "s"),
    ("heartbeat_cpu_pct", "heartbeat CPU of the controller, idle", "% of a core"),
    ("memory_per_engine_kb", "controller memory per engine", "KB"),
    ("execute_all_ms", "execute('a = 1') on all", "ms"),
    ("scatter_ms", "scatter 4N ints", "ms"),
    ("gather_ms", "gather them from all", "ms"),
    ("gather_ok", "gather correct", ""),
    ("controller_us_per_task_net", "controller CPU per no-op task", "µs"),
    ("tasks_per_s", "no-op tasks, one call each", "tasks/s"),
    ("stop_s", "stop", "s"),
)


COUNTS = {"registered", "lost", "registered_after_idle"}  # no ratio for these


def _cell(value: Any) -> str:
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _title(rec: dict[str, Any]) -> str:
    name = {"pxcluster": "px", "ipyparallel": "ipp"}[rec["system"]]
    extra = (
        " lean" if "lean" in rec["command"] else " relays" if "--relay" in rec["command"] else ""
    )
    return f"{name} {rec['engines']:,}{extra}"


def markdown(scale: dict[str, Any]) -> list[str]:
    """The "At scale" section of the results' Markdown."""
    sims = [r for r in scale["cases"] if not r["case"].startswith("real")]
    real = [r for r in scale["cases"] if r["case"].startswith("real")]
    out = ["", "## At scale (issue 13)", ""]
    if sims:
        out += [
            "One controller and N simulated engines in one run, measured from outside on the "
            "controller's processes (ipyparallel: its whole process tree, hub, heart monitor "
            "and schedulers). Simulated engines speak each system's own protocol over real "
            "sockets (`pxcluster.testing._simulator`, `benchmarks/ipp_simulator.py`). "
            "Heartbeats at each system's default: pxcluster pings every 0.5 s, stretched to "
            "N / 1,000 s past 1,000 engines; ipyparallel every 3 s. px/ipp: pxcluster ÷ "
            "ipyparallel at the same N.",
            "",
        ]
        cols = [_title(r) for r in sims]
        pairs = [
            (i, j)
            for i, a in enumerate(sims)
            for j, b in enumerate(sims)
            if a["system"] == "pxcluster"
            and b["system"] == "ipyparallel"
            and a["engines"] == b["engines"]
            and "relay" not in a["case"]
        ]
        head = ["Measurement", "Unit", *cols, *(f"px/ipp {sims[i]['engines']:,}" for i, _ in pairs)]
        out += ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
        for key, title, unit in ROWS:
            values = [r.get("figures", {}).get(key) for r in sims]
            if all(v is None for v in values):
                continue
            ratios = []
            for i, j in pairs:
                a, b = values[i], values[j]
                numeric = isinstance(a, (int, float)) and isinstance(b, (int, float))
                ok = numeric and not isinstance(a, bool) and b and key not in COUNTS
                ratios.append(f"{a / b:.2g}\u00d7" if ok else "")
            out.append("| " + " | ".join([title, unit, *map(_cell, values), *ratios]) + " |")
        out += ["", "Commands, load average (1 min) before → after, and what broke:", ""]
        for r in sims:
            fig = r.get("figures", {})
            broke = [f"{k}: {v}" for k, v in fig.items() if k.endswith("_error")]
            if r.get("error"):
                broke.append(r["error"])
            if r.get("left_running"):
                broke.append(f"{len(r['left_running'])} processes left running (killed)")
            after = fig.get("registered_after_idle")
            if fig.get("lost") and after == r["engines"]:
                broke.append(
                    f"{fig['lost']} engines missing just after registration were back after "
                    "the idle period (declared dead during the burst for late pongs, they "
                    "registered again)"
                )
            if fig.get("gave_up"):
                broke.append(f"{fig['gave_up']:,} engines gave up waiting for a registration reply")
            if fig.get("controller_log_warnings"):
                sample = (fig.get("controller_log_sample") or [""])[0][:160]
                broke.append(
                    f"{fig['controller_log_warnings']:,} warnings/errors in the "
                    f"controller's log, e.g. `{sample}`"
                )
            line = (
                f"- **{_title(r)}**: `{r['command']}`, load {r['load_before']:.1f} → "
                f"{r['load_after']:.1f}, {r['wall_s']:.0f} s"
            )
            out.append(line + ("; " + "; ".join(broke) if broke else ""))
    for r in real:
        fig = r.get("figures", {})
        out += [
            "",
            f"**{r['engines']} real pxcluster engines** (`{r['command']}`, load "
            f"{r['load_before']:.1f} → {r['load_after']:.1f}): `pxcluster start -n "
            f"{r['engines']}` {_cell(fig.get('start_s'))} s; `%px import os; pid = "
            f"os.getpid()` on all {_cell(fig.get('px_all_ms'))} ms (again: "
            f"{_cell(fig.get('px_again_ms'))} ms); {_cell(fig.get('distinct_engine_pids'))} "
            f"distinct pids answered; `pxcluster stop` {_cell(fig.get('stop_s'))} s; "
            f"{_cell(fig.get('left_running'))} processes left running"
            + (f"; **{r['error']}**" if r.get("error") else "")
            + ".",
        ]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--systems", default="pxcluster,ipyparallel")
    p.add_argument("--small", action="store_true", help="tiny sizes: does every case run?")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    scale = run_all(SMALL if args.small else CASES, set(args.systems.split(",")))
    print("\n".join(markdown(scale)))
    if args.json:
        args.json.write_text(json.dumps(scale, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
