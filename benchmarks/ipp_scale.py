"""ipyparallel's controller at scale: one real ``ipcontroller`` and N simulated engines.

The ipyparallel side of ``scale.py`` (issue 13), with the same figures under the same keys:
``.venv-bench/bin/python benchmarks/ipp_scale.py 100 1000`` (``--json FILE`` writes them).
For each N it starts ``ipcontroller`` alone (its defaults: hub, heart monitor and schedulers
in processes of their own, heartbeat every 3 s), then simulator processes
(``ipp_simulator.py``, ``--per-process`` engines each, every engine with an ``ipengine``'s
sockets and registration timeout) and measures from outside, on the controller's processes
only (all of them: the figures are sums over the tree):

- registration: launch of the simulators until ``Client.wait_for_engines(N)``; engines
  lost = N minus those registered (and how many gave up waiting for a registration reply,
  as an ``ipengine`` does after 5 s);
- heartbeat CPU: the controller's CPU (% of a core) over ``--idle`` s of idle cluster;
- controller memory per engine: its RSS with N engines registered minus before, over N;
- execute on all: ``rc[:].execute('a = 1', block=True)`` (median of 5); scatter of N*4
  ints and gather of them back from all N, checked;
- the controller's CPU per no-op load-balanced task (``apply_async`` ``--tasks`` times),
  heartbeats taken out, and the tasks' rate.

Where a step breaks (a timeout, engines lost), the error is written down with the figures
and the steps after it are still tried.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipyparallel as ipp
import psutil

HERE = Path(__file__).resolve().parent


def noop() -> None:
    return None


class Tree:
    """The controller's processes (fixed once it has started), summed."""

    def __init__(self, pid: int) -> None:
        root = psutil.Process(pid)
        self.procs = [root, *root.children(recursive=True)]

    def cpu(self) -> float:
        total = 0.0
        for proc in self.procs:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def each_cpu(self) -> list[float]:
        """CPU seconds of each process, the hub (the root) first."""
        out = []
        for proc in self.procs:
            try:
                times = proc.cpu_times()
                out.append(times.user + times.system)
            except psutil.Error:
                out.append(0.0)
        return out

    def rss(self) -> int:
        total = 0
        for proc in self.procs:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total


def wait_file(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout} s")
        time.sleep(0.1)


def step(figures: dict[str, Any], name: str, fn: Callable[[], None]) -> None:
    """Run one measurement; what breaks is written down, the next steps still run."""
    try:
        fn()
    except Exception as exc:
        figures[f"{name}_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"


def run_size(
    n: int, idle_s: float, tasks: int, per_process: int, reg_timeout: float
) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="ippscale-"))
    profile = root / "profile"
    figures: dict[str, Any] = {"engines": n, "system": "ipyparallel", "version": ipp.__version__}
    log = (root / "ipcontroller.log").open("w")
    ctl = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ipyparallel.controller",
            f"--profile-dir={profile}",
            "--ip=127.0.0.1",
            "--log-level=WARN",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    sims: list[subprocess.Popen[str]] = []
    rc: ipp.Client | None = None
    try:
        engine_file = profile / "security" / "ipcontroller-engine.json"
        client_file = profile / "security" / "ipcontroller-client.json"
        wait_file(client_file, 120)
        wait_file(engine_file, 120)
        rc = ipp.Client(str(client_file), timeout=120)
        time.sleep(2.0)  # let the fresh controller (and its scheduler processes) settle
        tree = Tree(ctl.pid)
        figures["controller_processes"] = len(tree.procs)
        rss_before = tree.rss()
        cpu_before = tree.each_cpu()
        began = time.perf_counter()
        sizes = [min(per_process, n - i) for i in range(0, n, per_process)]
        sims = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "ipp_simulator.py"),
                    "--file",
                    str(engine_file),
                    "-n",
                    str(size),
                    "--timeout",
                    str(reg_timeout),
                ],
                stdout=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            for size in sizes
        ]
        figures["simulator_processes"] = len(sims)
        client = rc

        def register() -> None:
            client.wait_for_engines(n, timeout=120, interactive=False)
            figures["register_s"] = round(time.perf_counter() - began, 3)

        step(figures, "register", register)
        # who was busy while they registered: the hub, its other processes, the simulators
        spent = [b - a for a, b in zip(cpu_before, tree.each_cpu(), strict=True)]
        sims_cpu = sum(Tree(sim.pid).cpu() for sim in sims if sim.poll() is None)
        figures["registration_cpu_s"] = {
            "wall": round(time.perf_counter() - began, 2),
            "hub": round(spent[0], 2),
            "busiest_other_controller_process": round(max(spent[1:], default=0.0), 2),
            "simulators": round(sims_cpu, 2),
        }
        figures["registered"] = len(rc.ids)
        figures["lost"] = n - figures["registered"]
        sim_stats = []
        for sim in sims:
            assert sim.stdout is not None
            line = sim.stdout.readline()
            if line:
                sim_stats.append(json.loads(line))
        figures["simulator_register_s"] = max(
            (s["seconds"] for s in sim_stats if s.get("seconds")), default=None
        )
        figures["gave_up"] = sum(s.get("gave_up", 0) for s in sim_stats)
        figures["refused"] = sum(s.get("refused", 0) for s in sim_stats)
        # heartbeats alone
        used, t0 = tree.cpu(), time.perf_counter()
        time.sleep(idle_s)
        hb_rate = (tree.cpu() - used) / (time.perf_counter() - t0)
        figures["heartbeat_cpu_pct"] = round(100 * hb_rate, 2)
        figures["registered_after_idle"] = len(rc.ids)
        figures["memory_per_engine_kb_idle"] = round((tree.rss() - rss_before) / n / 1024, 1)
        view = rc[:]
        m = len(rc.ids)

        def execute() -> None:
            times = []
            used = tree.cpu()
            for _ in range(5):
                t0 = time.perf_counter()
                view.execute("a = 1", block=True)
                times.append(time.perf_counter() - t0)
            figures["execute_all_ms"] = round(1000 * statistics.median(times), 2)
            figures["execute_all_controller_cpu_ms"] = round(
                1000 * (tree.cpu() - used - hb_rate * sum(times)) / 5, 2
            )

        def scatter_gather() -> None:
            t0 = time.perf_counter()
            view.scatter("x", list(range(m * 4)), block=True)
            figures["scatter_ms"] = round(1000 * (time.perf_counter() - t0), 2)
            t0 = time.perf_counter()
            back = view.gather("x", block=True)
            figures["gather_ms"] = round(1000 * (time.perf_counter() - t0), 2)
            figures["gather_ok"] = list(back) == list(range(m * 4))

        step(figures, "execute_all", execute)
        step(figures, "scatter_gather", scatter_gather)
        figures["engines_used"] = m
        figures["controller_rss_mb"] = round(tree.rss() / 2**20, 1)
        figures["memory_per_engine_kb"] = round((tree.rss() - rss_before) / n / 1024, 1)

        def task_cost() -> None:
            lview = client.load_balanced_view()
            for ar in [lview.apply_async(noop) for _ in range(200)]:
                ar.get(timeout=120)
            used, t0 = tree.cpu(), time.perf_counter()
            ars = [lview.apply_async(noop) for _ in range(tasks)]
            for ar in ars:
                ar.get(timeout=300)
            seconds = time.perf_counter() - t0
            figures["controller_us_per_task"] = round((tree.cpu() - used) / tasks * 1e6, 1)
            figures["controller_us_per_task_net"] = round(
                (tree.cpu() - used - hb_rate * seconds) / tasks * 1e6, 1
            )
            figures["tasks_per_s"] = round(tasks / seconds)

        if tasks:
            step(figures, "tasks", task_cost)
        figures["registered_at_end"] = len(rc.ids)
    finally:
        t0 = time.perf_counter()
        if rc is not None:
            with contextlib.suppress(Exception):
                rc.shutdown(targets="all", hub=True, block=True)
            rc.close()
        try:
            ctl.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(ctl.pid, signal.SIGKILL)
            ctl.wait()
            figures["controller_killed"] = True
        figures["stop_s"] = round(time.perf_counter() - t0, 2)
        for sim in sims:
            sim.terminate()
            try:
                sim.wait(timeout=30)
            except subprocess.TimeoutExpired:
                sim.kill()
                sim.wait()
        # the controller's scheduler processes are in its session: none may outlive it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(ctl.pid, signal.SIGKILL)
        log.close()
        warnings = [
            line.strip()
            for line in (root / "ipcontroller.log").read_text().splitlines()
            if "purging stalled" in line or "hearts stopped" in line or "Error" in line
        ]
        figures["controller_log_warnings"] = len(warnings)
        figures["controller_log_sample"] = warnings[:3]
        shutil.rmtree(root, ignore_errors=True)
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("sizes", nargs="*", type=int, default=[100, 1000])
    p.add_argument("--idle", type=float, default=10.0, help="seconds of idle for heartbeats")
    p.add_argument("--tasks", type=int, default=1000, help="no-op tasks for the CPU per task")
    p.add_argument(
        "--per-process", type=int, default=1000, help="simulated engines per simulator process"
    )
    p.add_argument(
        "--registration-timeout",
        type=float,
        default=5.0,
        help="each engine's (IPEngine.timeout, default 5 s)",
    )
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("ipp_scale.py: terminated"))
    results = []
    for n in args.sizes:
        figures = run_size(n, args.idle, args.tasks, args.per_process, args.registration_timeout)
        print(json.dumps(figures), flush=True)
        results.append(figures)
    if args.json:
        args.json.write_text(json.dumps({"load": os.getloadavg(), "runs": results}, indent=1))


if __name__ == "__main__":
    main()
