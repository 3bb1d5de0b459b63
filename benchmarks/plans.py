"""Benchmarks: how big and how long each run is (full, quick, smoke)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Plan:
    """Sizes, repeats and time limits of one run.

    Each timed loop stops at ``repeats`` samples or when its budget is spent (keeping at
    least ``min_samples``); each measurement is killed at ``limit_s``.
    """

    name: str
    engines: int = 2
    warmup: int = 20
    min_samples: int = 3
    call_repeats: int = 2000
    call_budget_s: float = 8.0
    tasks: int = 10_000
    task_repeats: int = 3
    task_min_samples: int = 1
    task_budget_s: float = 20.0
    map_items: int = 100_000
    map_repeats: int = 7
    big_bytes: int = 100_000_000
    big_repeats: int = 5
    small_repeats: int = 500
    scatter_items: int = 8_000_000
    scatter_repeats: int = 5
    bulk_budget_s: float = 10.0
    start_sizes: tuple[int, ...] = (2, 4, 8)
    start_repeats: int = 3
    start_budget_s: float = 15.0
    cli_engines: int = 4
    many_engines: int = 32
    many_execute_repeats: int = 50
    idle_settle_s: float = 1.0
    idle_window_s: float = 5.0
    limit_s: float = 120.0
    system_limit_s: float = 420.0


PLANS: dict[str, Plan] = {
    "full": Plan("full"),
    "quick": Plan(
        "quick",
        warmup=5,
        min_samples=2,
        call_repeats=300,
        call_budget_s=2.0,
        tasks=1000,
        task_repeats=2,
        task_min_samples=1,
        task_budget_s=5.0,
        map_items=10_000,
        map_repeats=3,
        big_bytes=10_000_000,
        big_repeats=3,
        small_repeats=50,
        scatter_items=1_000_000,
        scatter_repeats=3,
        bulk_budget_s=3.0,
        start_sizes=(2, 4),
        start_repeats=1,
        start_budget_s=10.0,
        many_engines=8,
        many_execute_repeats=10,
        idle_settle_s=0.5,
        idle_window_s=1.0,
        limit_s=60.0,
        system_limit_s=240.0,
    ),
    "smoke": Plan(
        "smoke",
        warmup=1,
        min_samples=1,
        call_repeats=3,
        call_budget_s=1.0,
        tasks=20,
        task_repeats=1,
        task_min_samples=1,
        task_budget_s=1.0,
        map_items=100,
        map_repeats=1,
        big_bytes=1_000_000,
        big_repeats=1,
        small_repeats=2,
        scatter_items=10_000,
        scatter_repeats=1,
        bulk_budget_s=1.0,
        start_sizes=(2,),
        start_repeats=1,
        start_budget_s=5.0,
        cli_engines=2,
        many_engines=3,
        many_execute_repeats=2,
        idle_settle_s=0.0,
        idle_window_s=0.2,
        limit_s=30.0,
        system_limit_s=90.0,
    ),
}
