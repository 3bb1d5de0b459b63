"""Benchmarks: the speed goals of issues 5 and 13, checked against the ratios of one run."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from benchmarks.metrics import Value


@dataclasses.dataclass(frozen=True)
class Goal:
    """``key`` of pxcluster, divided by ``other``'s when given, compared with ``target``."""

    text: str
    key: str
    other: str | None
    op: Literal["<=", ">="]
    target: float

    def check(self, values: dict[str, dict[str, Value]]) -> dict[str, Any]:
        """This goal's row: the measured figure and whether it is met (None: not measured)."""
        px = values.get("pxcluster", {}).get(self.key)
        base = values.get(self.other, {}).get(self.key) if self.other else None
        measured: float | None = None
        if px is not None and px.status == "ok" and px.value is not None:
            if self.other is None:
                measured = px.value
            elif base is not None and base.status == "ok" and base.value:
                measured = px.value / base.value
        met = None
        if measured is not None:
            met = measured <= self.target if self.op == "<=" else measured >= self.target
        return {
            "goal": self.text,
            "key": self.key,
            "other": self.other,
            "target": f"{self.op} {self.target:g}",
            "measured": measured,
            "met": met,
        }


#: Idle CPU counts as unmeasurable below one 10 ms clock tick in a 5 s window.
IDLE_CPU_NOISE = 0.2

GOALS: tuple[Goal, ...] = (
    Goal("remote call latency <= 1/10 of ipyparallel's", "call", "ipyparallel", "<=", 0.1),
    Goal("remote call latency within 2x of the bare relay", "call", "relay", "<=", 2.0),
    Goal(
        "tiny-task throughput >= 20x ipyparallel (one call each)",
        "tasks_each",
        "ipyparallel",
        ">=",
        20.0,
    ),
    Goal(
        "tiny-task throughput >= 20x ipyparallel (one map)", "tasks_map", "ipyparallel", ">=", 20.0
    ),
    Goal("tiny-task throughput >= 5x Dask (one call each)", "tasks_each", "dask", ">=", 5.0),
    Goal("tiny-task throughput >= 5x Dask (one map)", "tasks_map", "dask", ">=", 5.0),
    Goal(
        "tiny-task throughput >= 50% of the relay (one call each)", "tasks_each", "relay", ">=", 0.5
    ),
    Goal("tiny-task throughput >= 50% of the relay (one map)", "tasks_map", "relay", ">=", 0.5),
    Goal("100 MB push >= 2x Dask's default", "push_big", "dask", ">=", 2.0),
    Goal("100 MB pull >= 2x Dask's default", "pull_big", "dask", ">=", 2.0),
    Goal("start -n 4 <= 1/5 of ipyparallel's", "start_4", "ipyparallel", "<=", 0.2),
    Goal("32 engines: start <= 1/4 of ipyparallel's", "start_many", "ipyparallel", "<=", 0.25),
    Goal(
        "32 engines: execute on all <= 1/3 of ipyparallel's",
        "execute_many",
        "ipyparallel",
        "<=",
        1 / 3,
    ),
    Goal("idle engine <= 30 MB RSS", "idle_rss", None, "<=", 30.0),
    Goal("idle engine: no measurable CPU (% of a core)", "idle_cpu", None, "<=", IDLE_CPU_NOISE),
    # issue 13, items 5 and 6 (the tasks/s figure is absolute: it depends on the machine)
    Goal("issue 13: 10,000 tiny tasks/s (one call each)", "tasks_each", None, ">=", 10_000.0),
    Goal("issue 13: 10,000 tiny tasks/s (one map)", "tasks_map", None, ">=", 10_000.0),
    Goal(
        "issue 13: tiny tasks >= 25x ipyparallel (one call each)",
        "tasks_each",
        "ipyparallel",
        ">=",
        25.0,
    ),
    Goal(
        "issue 13: tiny tasks >= 25x ipyparallel (one map)", "tasks_map", "ipyparallel", ">=", 25.0
    ),
    Goal("issue 13: tiny tasks >= 15x Dask (one call each)", "tasks_each", "dask", ">=", 15.0),
    Goal("issue 13: tiny tasks >= 15x Dask (one map)", "tasks_map", "dask", ">=", 15.0),
    Goal("issue 13: remote call within 1.5x of the bare relay", "call", "relay", "<=", 1.5),
)


def check_all(values: dict[str, dict[str, Value]]) -> list[dict[str, Any]]:
    return [goal.check(values) for goal in GOALS]
