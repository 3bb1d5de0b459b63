"""Benchmarks: workloads 1-6 and 9, measured on one running cluster of ``plan.engines``.

Each measurement returns the rows it fills (``metrics.SPECS`` keys). It checks every
result before counting its time, and raises ``NotAvailable`` (n/a), ``WrongResult`` or
anything else (failed) instead of returning a figure it cannot vouch for.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import time
from collections.abc import Callable
from typing import Any

import psutil

from benchmarks import payloads
from benchmarks.metrics import Value, duration, latency_us, rate
from benchmarks.plans import Plan
from benchmarks.systems import System
from benchmarks.timing import expect, paired_loop, timed_loop

Rows = dict[str, Value]


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One thing measured: the workload it belongs to, the rows it fills, how to run it."""

    workload: str
    keys: tuple[str, ...]
    run: Callable[[System, Plan], Rows]


def _loop(plan: Plan, repeats: int, budget_s: float) -> dict[str, Any]:
    return {
        "warmup": min(plan.warmup, repeats),
        "repeats": repeats,
        "budget_s": budget_s,
        "min_samples": plan.min_samples,
    }


# -- 1, 2: latency -------------------------------------------------------------------------


def remote_call(system: System, plan: Plan) -> Rows:
    noop = payloads.make_noop()
    samples = timed_loop(
        lambda: system.call(noop),
        lambda r: expect(r is None, f"noop() returned {r!r}"),
        **_loop(plan, plan.call_repeats, plan.call_budget_s),
    )
    return {"call": latency_us(samples, system.how["call"])}


def execute(system: System, plan: Plan) -> Rows:
    system.execute_all("a = 1")
    system.execute_all("assert a == 1, 'execute did not keep a in the namespace'")
    rows: Rows = {}
    for key, op in (("execute_one", system.execute_one), ("execute_all", system.execute_all)):
        samples = timed_loop(
            functools.partial(op, "a=1"),
            lambda r: None,  # a failure on an engine raises
            **_loop(plan, plan.call_repeats, plan.call_budget_s),
        )
        rows[key] = latency_us(samples, system.how[key])
    return rows


# -- 3, 4: tasks and map -------------------------------------------------------------------


_TASK_OPS = {
    "tasks_each": "submit_each",
    "tasks_map": "task_map",
    "tasks_map_default": "task_map_default",
}


def _tasks(key: str) -> Callable[[System, Plan], Rows]:
    def run(system: System, plan: Plan) -> Rows:
        identity = payloads.make_identity()
        op_name = _TASK_OPS[key]
        op: Callable[[Callable[[Any], Any], list[int]], list[Any]] = getattr(system, op_name)
        args = list(range(plan.tasks))
        warm = args[: max(1, min(len(args), 200))]
        expect(op(identity, warm) == warm, "the warm-up tasks returned wrong values")
        samples = timed_loop(
            lambda: op(identity, args),
            lambda r: expect(r == args, "tasks returned wrong values"),
            **{
                **_loop(plan, plan.task_repeats, plan.task_budget_s),
                "warmup": 0,
                "min_samples": plan.task_min_samples,
            },
        )
        return {key: rate(plan.tasks, samples, system.how[op_name])}

    return run


def map_squares(system: System, plan: Plan) -> Rows:
    square = payloads.make_square()
    seq = list(range(plan.map_items))
    expected = [x * x for x in seq]
    samples = timed_loop(
        lambda: system.map_all(square, seq),
        lambda r: expect(r == expected, "map returned wrong values"),
        **_loop(plan, plan.map_repeats, plan.bulk_budget_s),
    )
    return {"map_squares": duration(samples, system.how["map_all"], 1e3)}


# -- 5, 6: data ----------------------------------------------------------------------------


def _same_array(expected: Any) -> Callable[[Any], None]:
    import numpy

    def check(got: Any) -> None:
        ok = (
            isinstance(got, numpy.ndarray)
            and got.shape == expected.shape
            and got.dtype == expected.dtype
            and numpy.array_equal(got, expected)
        )
        expect(ok, "the array came back different")

    return check


def push_pull_big(system: System, plan: Plan) -> Rows:
    array = payloads.big_array(plan.big_bytes)
    try:
        pushes, pulls = paired_loop(
            lambda: system.push("big", array),
            lambda: system.pull("big"),
            _same_array(array),
            **{**_loop(plan, plan.big_repeats, plan.bulk_budget_s), "warmup": 1},
        )
    finally:
        with contextlib.suppress(Exception):
            system.push("big", None)  # free the engine's copy before the next workload
    gb = plan.big_bytes / 1e9
    return {
        "push_big": rate(gb, pushes, system.how["push"]),
        "pull_big": rate(gb, pulls, system.how["pull"]),
    }


def push_pull_small(system: System, plan: Plan) -> Rows:
    value = payloads.small_dict()
    pushes, pulls = paired_loop(
        lambda: system.push("small", value),
        lambda: system.pull("small"),
        lambda got: expect(got == value, "the dict came back different"),
        **_loop(plan, plan.small_repeats, plan.call_budget_s),
    )
    return {
        "push_small": latency_us(pushes, system.how["push"]),
        "pull_small": latency_us(pulls, system.how["pull"]),
    }


def scatter_gather(system: System, plan: Plan) -> Rows:
    array = payloads.range_array(plan.scatter_items)
    try:
        scatters, gathers = paired_loop(
            lambda: system.scatter("x", array),
            lambda: system.gather("x"),
            _same_array(array),
            **{**_loop(plan, plan.scatter_repeats, plan.bulk_budget_s), "warmup": 1},
        )
    finally:
        with contextlib.suppress(Exception):  # free the engines' parts
            system.scatter("x", payloads.range_array(plan.engines))
    return {
        "scatter": duration(scatters, system.how["scatter"], 1e3),
        "gather": duration(gathers, system.how["gather"], 1e3),
    }


# -- 9: idle -------------------------------------------------------------------------------


def _cpu_seconds(proc: psutil.Process) -> float:
    """User + system CPU seconds of ``proc`` (0 once it is gone)."""
    try:
        times = proc.cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def _rss(proc: psutil.Process) -> int:
    try:
        return int(proc.memory_info().rss)
    except psutil.Error:
        return 0


def idle(system: System, plan: Plan) -> Rows:
    """Memory and CPU of a cluster doing nothing, after one request per engine."""
    engine_pids = system.engine_pids()
    expect(len(engine_pids) == plan.engines, f"{len(engine_pids)} engine pids")
    time.sleep(plan.idle_settle_s)
    me = psutil.Process(os.getpid())
    engines = [psutil.Process(pid) for pid in engine_pids]
    rest = [p for p in me.children(recursive=True) if p.pid not in engine_pids]
    procs = [*engines, *rest, me]
    before = [_cpu_seconds(p) for p in procs]
    t0 = time.perf_counter()
    time.sleep(plan.idle_window_s)
    window = time.perf_counter() - t0
    used = [max(0.0, _cpu_seconds(p) - b) for p, b in zip(procs, before, strict=True)]
    cpu = [100.0 * u / window for u in used]
    n_eng = len(engines)
    mb = 1024 * 1024
    note = f"over {window:.1f} s; CPU clock ticks are 10 ms"
    how = f"psutil: {n_eng} engines, {len(rest)} other cluster processes"
    return {
        "idle_rss": Value("ok", max(_rss(p) for p in engines) / mb, None, n_eng, how),
        "idle_cpu": Value("ok", max(cpu[:n_eng]), None, n_eng, how, note),
        "idle_rest_rss": Value("ok", sum(_rss(p) for p in rest) / mb, None, len(rest), how),
        "idle_rest_cpu": Value("ok", sum(cpu[n_eng:-1]), None, len(rest), how, note),
        "idle_client_cpu": Value("ok", cpu[-1], None, 1, "this process", note),
    }


ON_CLUSTER: tuple[Measurement, ...] = (
    Measurement(
        "9",
        ("idle_rss", "idle_cpu", "idle_rest_rss", "idle_rest_cpu", "idle_client_cpu"),
        idle,
    ),
    Measurement("1", ("call",), remote_call),
    Measurement("2", ("execute_one", "execute_all"), execute),
    Measurement("3", ("tasks_each",), _tasks("tasks_each")),
    Measurement("3", ("tasks_map",), _tasks("tasks_map")),
    Measurement("3", ("tasks_map_default",), _tasks("tasks_map_default")),
    Measurement("4", ("map_squares",), map_squares),
    Measurement("5", ("push_big", "pull_big"), push_pull_big),
    Measurement("5", ("push_small", "pull_small"), push_pull_small),
    Measurement("6", ("scatter", "gather"), scatter_gather),
)
