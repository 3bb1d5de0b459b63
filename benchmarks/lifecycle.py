"""Benchmarks: workloads 7 and 8, starting and stopping whole clusters in fresh processes.

Start is the wall time from spawning a new interpreter (``startstop.py``) until it says the
cluster is ready with every engine; stop is from asking it to stop until that process and
every process it started have exited (some systems' engines outlive the call that stops
them by seconds). The many-engine cluster also times ``execute`` on all engines.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from benchmarks.metrics import duration, latency_us
from benchmarks.plans import Plan
from benchmarks.proctree import Tracker, kill_tree
from benchmarks.systems import System
from benchmarks.timing import WorkloadTimeout, expect
from benchmarks.workloads import Measurement, Rows


class ChildFailed(Exception):
    """The start/stop process reported an error or exited early."""


def _lines(stream: IO[bytes], out: queue.Queue[dict[str, Any] | None]) -> None:
    for raw in stream:
        try:
            out.put(json.loads(raw))
        except ValueError:
            continue  # a library printed something of its own
    out.put(None)


def _next(lines: queue.Queue[dict[str, Any] | None], deadline: float) -> dict[str, Any]:
    try:
        message = lines.get(timeout=max(0.0, deadline - time.monotonic()))
    except queue.Empty:
        raise WorkloadTimeout("the start/stop process did not answer in time") from None
    if message is None:
        raise ChildFailed("the start/stop process exited early")
    if "error" in message:
        raise ChildFailed(message["error"])
    return message


def start_stop(
    name: str, n: int, limit_s: float, execute_repeats: int = 0, warmup: int = 3
) -> tuple[float, float, list[float]]:
    """Start and stop ``n`` engines of system ``name`` in a fresh process.

    Returns:
        (seconds to ready, seconds to stopped, execute samples in seconds).
    """
    deadline = time.monotonic() + limit_s
    cmd = [sys.executable, "-m", "benchmarks.startstop", name, str(n)]
    cmd += [str(execute_repeats), str(warmup)]
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None
    assert child.stdout is not None
    lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
    threading.Thread(target=_lines, args=(child.stdout, lines), daemon=True).start()
    tracker = Tracker(child.pid)  # polls rarely: scanning /proc costs CPU during the start
    try:
        with tracker:
            ready = _next(lines, deadline)
            started = time.perf_counter() - t0
            expect(ready.get("ready") == n, f"the cluster said ready with {ready}")
            samples: list[float] = []
            if execute_repeats:
                samples = list(_next(lines, deadline)["execute"])
            tracker.snapshot()
            t1 = time.perf_counter()
            child.stdin.write(b"stop\n")
            child.stdin.close()
            code = child.wait(timeout=max(0.1, deadline - time.monotonic()))
        left = tracker.wait_gone(max(0.1, deadline - time.monotonic()))
        stopped = time.perf_counter() - t1
        if code != 0:
            raise ChildFailed(f"the start/stop process exited with {code}")
        if left:
            raise WorkloadTimeout(f"{len(left)} processes still ran after the cluster stopped")
        return started, stopped, samples
    except subprocess.TimeoutExpired:
        raise WorkloadTimeout("the cluster did not stop in time") from None
    finally:
        if child.poll() is None:
            kill_tree(child.pid)
        child.wait()
        tracker.kill_leftovers()


def _start_stop_rows(n: int, key: str) -> Callable[[System, Plan], Rows]:
    def run(system: System, plan: Plan) -> Rows:
        starts: list[float] = []
        stops: list[float] = []
        budget_end = time.monotonic() + plan.start_budget_s
        while len(starts) < plan.start_repeats:
            started, stopped, _ = start_stop(system.name, n, plan.limit_s)
            starts.append(started)
            stops.append(stopped)
            if time.monotonic() > budget_end:
                break
        return {
            f"start_{key}": duration(starts, system.how["start"]),
            f"stop_{key}": duration(stops, system.how["stop"]),
        }

    return run


def many_engines(system: System, plan: Plan) -> Rows:
    started, stopped, samples = start_stop(
        system.name, plan.many_engines, plan.limit_s, plan.many_execute_repeats
    )
    return {
        "start_many": duration([started], system.how["start"]),
        "stop_many": duration([stopped], system.how["stop"]),
        "execute_many": latency_us(samples, system.how["execute_all"]),
    }


def cli_start_stop(system: System, plan: Plan) -> Rows:
    """The command line's own start (returns when ready) and stop, where there is one."""
    starts: list[float] = []
    stops: list[float] = []
    with tempfile.TemporaryDirectory(prefix="pxbench-cli-") as workdir:
        start_cmd, stop_cmd = system.cli_commands(plan.cli_engines, workdir)
        budget_end = time.monotonic() + plan.start_budget_s
        while len(starts) < plan.start_repeats:
            t0 = time.perf_counter()
            subprocess.run(start_cmd, check=True, capture_output=True, timeout=plan.limit_s)
            t1 = time.perf_counter()
            subprocess.run(stop_cmd, check=True, capture_output=True, timeout=plan.limit_s)
            starts.append(t1 - t0)
            stops.append(time.perf_counter() - t1)
            if time.monotonic() > budget_end:
                break
    how = system.how.get("cli", "")
    return {"cli_start": duration(starts, how), "cli_stop": duration(stops, how)}


def lifecycle_measurements(plan: Plan) -> tuple[Measurement, ...]:
    """Workloads 7 and 8 for the sizes of ``plan``."""
    sizes = [
        Measurement("7", (f"start_{n}", f"stop_{n}"), _start_stop_rows(n, str(n)))
        for n in plan.start_sizes
    ]
    cli = Measurement("7", ("cli_start", "cli_stop"), cli_start_stop)
    many = Measurement("8", ("start_many", "stop_many", "execute_many"), many_engines)
    return (*sizes, cli, many)
