"""Benchmarks: the catalogue of measured quantities (one table row each) and their records."""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from typing import Any, Literal

Better = Literal["lower", "higher"]
Status = Literal["ok", "n/a", "failed", "timeout", "wrong"]


@dataclasses.dataclass(frozen=True)
class Spec:
    """One row of the results table: what is measured, in which unit, which way is better."""

    key: str
    workload: str
    title: str
    unit: str
    better: Better


SPECS: tuple[Spec, ...] = (
    Spec("call", "1", "Remote no-op call on one engine", "µs", "lower"),
    Spec("execute_one", "2", "execute('a=1') on one engine", "µs", "lower"),
    Spec("execute_all", "2", "execute('a=1') on all engines", "µs", "lower"),
    Spec(
        "tasks_each", "3", "{tasks} no-op load-balanced tasks, one call each", "tasks/s", "higher"
    ),
    Spec("tasks_map", "3", "{tasks} no-op load-balanced tasks, as one map", "tasks/s", "higher"),
    Spec(
        "tasks_map_default",
        "3",
        "The same map with the default chunking",
        "tasks/s",
        "higher",
    ),
    Spec("map_squares", "4", "map(lambda x: x*x) over {items} items, all engines", "ms", "lower"),
    Spec("push_big", "5", "Push a {big} numpy array to one engine", "GB/s", "higher"),
    Spec("pull_big", "5", "Pull a {big} numpy array from one engine", "GB/s", "higher"),
    Spec("push_small", "5", "Push a 1 KB dict to one engine", "µs", "lower"),
    Spec("pull_small", "5", "Pull a 1 KB dict from one engine", "µs", "lower"),
    Spec("scatter", "6", "Scatter {scatter} float64 across all engines", "ms", "lower"),
    Spec("gather", "6", "Gather them back", "ms", "lower"),
    Spec("start_2", "7", "Start 2 engines until ready (fresh process)", "s", "lower"),
    Spec("stop_2", "7", "Stop 2 engines (until the process exits)", "s", "lower"),
    Spec("start_4", "7", "Start 4 engines until ready (fresh process)", "s", "lower"),
    Spec("stop_4", "7", "Stop 4 engines (until the process exits)", "s", "lower"),
    Spec("start_8", "7", "Start 8 engines until ready (fresh process)", "s", "lower"),
    Spec("stop_8", "7", "Stop 8 engines (until the process exits)", "s", "lower"),
    Spec("cli_start", "7", "Command line: start -n {cli} until it returns ready", "s", "lower"),
    Spec("cli_stop", "7", "Command line: stop ({cli} engines)", "s", "lower"),
    Spec("start_many", "8", "Start {many} engines until ready (fresh process)", "s", "lower"),
    Spec("stop_many", "8", "Stop {many} engines (until the process exits)", "s", "lower"),
    Spec("execute_many", "8", "execute('a=1') on all {many} engines", "µs", "lower"),
    Spec("idle_rss", "9", "Idle engine resident memory (largest engine)", "MB", "lower"),
    Spec("idle_cpu", "9", "Idle engine CPU (busiest engine, % of one core)", "%", "lower"),
    Spec("idle_rest_rss", "9", "Other cluster processes' memory, total", "MB", "lower"),
    Spec("idle_rest_cpu", "9", "Other cluster processes' idle CPU, total", "%", "lower"),
    Spec("idle_client_cpu", "9", "Client process idle CPU", "%", "lower"),
)

SPEC_BY_KEY: dict[str, Spec] = {s.key: s for s in SPECS}

WORKLOADS: dict[str, str] = {
    "1": "remote no-op call",
    "2": "execute",
    "3": "load-balanced tasks",
    "4": "map",
    "5": "push and pull",
    "6": "scatter and gather",
    "7": "cluster start and stop",
    "8": "many engines",
    "9": "idle engines",
}


@dataclasses.dataclass
class Value:
    """The outcome of one measurement on one system.

    ``value`` is the figure in the table (a median, or derived from the median time);
    ``p99`` is given for latencies. ``status`` is ``ok`` only when every timed result was
    checked and right.
    """

    status: Status
    value: float | None = None
    p99: float | None = None
    samples: int = 0
    how: str = ""
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Value:
        return cls(**data)


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def p99(samples: Sequence[float]) -> float:
    """The 99th percentile (nearest rank): the largest sample when there are under 100."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def latency_us(samples: Sequence[float], how: str) -> Value:
    """A latency record in microseconds from samples in seconds."""
    return Value("ok", median(samples) * 1e6, p99(samples) * 1e6, len(samples), how)


def rate(count: float, samples: Sequence[float], how: str) -> Value:
    """``count`` per second, from the median of samples in seconds."""
    return Value("ok", count / median(samples), None, len(samples), how)


def duration(samples: Sequence[float], how: str, scale: float = 1.0) -> Value:
    """The median of samples in seconds, times ``scale`` (1e3 for ms)."""
    return Value("ok", median(samples) * scale, None, len(samples), how)
