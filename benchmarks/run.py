"""Benchmarks: run every workload on every system and write the table of medians and ratios.

    .venv-bench/bin/python benchmarks/run.py            # the full run (about 10 minutes)
    .venv-bench/bin/python benchmarks/run.py --quick    # small sizes, few repeats
    python benchmarks/run.py --systems pxcluster,relay --only 1,2

Each system runs in a process of its own (``runner.py``), one after another, on its own
local cluster; every process it starts is watched and killed if it outlives the system's
run. A full run writes ``results/<date>.json`` and ``results/latest.md``; ``--quick`` and
``--smoke`` write to ``results/quick/`` (not committed). See ``benchmarks/README.md``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import dataclasses
import datetime
import json
import os
import shutil
import subprocess
import tempfile
import time
from typing import Any

from benchmarks import at_scale, report
from benchmarks.machine import describe
from benchmarks.plans import PLANS, Plan
from benchmarks.proctree import Tracker, kill_tree
from benchmarks.systems import ADAPTERS

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
#: How long processes may take to exit after their system's runner is done before they count
#: as left running.
LINGER_S = 10.0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description="pxcluster against ipyparallel, Dask and a bare pyzmq relay",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        action="store_const",
        const="quick",
        dest="plan",
        help="small sizes and few repeats (about 2 minutes)",
    )
    size.add_argument(
        "--smoke",
        action="store_const",
        const="smoke",
        dest="plan",
        help="tiny sizes, one repeat: does every workload still work?",
    )
    parser.add_argument(
        "--systems",
        default=",".join(ADAPTERS),
        help="comma-separated, from: " + ", ".join(ADAPTERS),
    )
    parser.add_argument(
        "--only", default="", help="comma-separated workload numbers (1-9); default: all"
    )
    parser.add_argument(
        "--engines",
        type=int,
        default=None,
        help="engines (workers) per cluster for the workloads that use the plan's size "
        "(default: the plan's, 2); start-up and many-engine rows keep their own sizes",
    )
    parser.add_argument(
        "--no-scale",
        action="store_true",
        help="leave out the 'At scale' cases (benchmarks/at_scale.py: 7-12 minutes), "
        "which a full run without --only runs after the workloads",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help="default: results/ for a full run, results/quick/ otherwise",
    )
    args = parser.parse_args(argv)
    args.plan = args.plan or "full"
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in args.systems if s not in ADAPTERS]
    if unknown:
        parser.error(f"unknown systems {unknown}; choose from {list(ADAPTERS)}")
    return args


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_system(name: str, plan: Plan, only: str, workdir: Path) -> dict[str, Any]:
    """Run ``runner.py`` for one system; its record, with what it left running."""
    home = workdir / name
    home.mkdir()
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p),
        TMPDIR=str(home),
        IPYTHONDIR=str(home / "ipython"),
        PXCLUSTER_DIR=str(home / "pxcluster"),
        DASK_TEMPORARY_DIRECTORY=str(home),
    )
    out, log_file = home / "result.json", home / "runner.log"
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.runner",
        name,
        plan.name,
        str(out),
        only,
        str(plan.engines),
    ]
    error = None
    t0 = time.perf_counter()
    with open(log_file, "wb") as log_out:
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=home,
            stdin=subprocess.DEVNULL,
            stdout=log_out,
            stderr=subprocess.STDOUT,
        )
        with Tracker(proc.pid) as tracker:
            try:
                proc.wait(timeout=plan.system_limit_s)
            except subprocess.TimeoutExpired:
                kill_tree(proc.pid)
                proc.wait()
                error = f"stopped at its time limit of {plan.system_limit_s:.0f} s"
        tracker.wait_gone(LINGER_S)  # some systems' processes exit seconds after stop
        leftovers = tracker.kill_leftovers()
    record: dict[str, Any] = {"system": name, "metrics": {}}
    if out.exists():
        record = json.loads(out.read_text())
    if error is None and proc.returncode != 0:
        error = f"runner exited with code {proc.returncode}"
    if error:
        tail = log_file.read_text(errors="replace").splitlines()[-15:]
        record["error"] = error
        record["log_tail"] = tail
        log(f"{name}: {error}; last lines of its log:\n  " + "\n  ".join(tail))
    record["wall_s"] = time.perf_counter() - t0
    record["leftover_processes"] = leftovers
    counts: dict[str, int] = {}
    for value in record["metrics"].values():
        counts[value["status"]] = counts.get(value["status"], 0) + 1
    log(
        f"{name}: {record['wall_s']:.0f} s; "
        + ", ".join(f"{n} {s}" for s, n in counts.items())
        + (f"; LEFT {len(leftovers)} PROCESSES RUNNING (killed)" if leftovers else "")
    )
    return record


def command_line(argv: list[str]) -> str:
    """The command as run, the interpreter shown by its environment's name (.venv-bench)."""
    python = Path(sys.executable)
    env = python.parent.parent.name
    shown = f"{env}/bin/python" if env.startswith(".venv") else "python"
    return " ".join([shown, "benchmarks/run.py", *argv])


def main(argv: list[str]) -> int:
    args = parse(argv)
    plan = PLANS[args.plan]
    if args.engines is not None:
        if args.engines < 1:
            raise SystemExit("benchmarks/run.py: --engines must be at least 1")
        plan = dataclasses.replace(plan, engines=args.engines)
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.perf_counter()
    doc: dict[str, Any] = {
        "plan": plan.name,
        "engines": plan.engines,
        "command": command_line(argv),
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": describe(REPO),
        "idle_window_s": plan.idle_window_s,
        "systems": {},
    }
    workdir = Path(tempfile.mkdtemp(prefix="pxbench-run-"))
    try:
        for name in args.systems:
            log(f"{name}: running the {plan.name} plan")
            doc["systems"][name] = run_system(name, plan, args.only, workdir)
        scaled = {"pxcluster", "ipyparallel"} & set(args.systems)
        if plan.name == "full" and not args.only and not args.no_scale and scaled:
            doc["scale"] = at_scale.run_all(only=scaled)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    doc["wall_s"] = time.perf_counter() - t0
    report.complete(doc)
    directory = args.results_dir or (RESULTS if plan.name == "full" else RESULTS / "quick")
    stem = started.strftime("%Y-%m-%d-%H%M%S") + ("" if plan.name == "full" else f"-{plan.name}")
    js, md = report.write(doc, directory, stem)
    print(report.markdown(doc))
    log(f"wrote {js} and {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
