"""Benchmarks: timed loops whose every result is checked, and hard time limits."""

from __future__ import annotations

import contextlib
import gc
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class WrongResult(Exception):
    """A system returned a wrong result: its time does not count."""


class WorkloadTimeout(Exception):
    """A measurement ran past its hard time limit."""


def expect(ok: bool, what: str) -> None:
    """Raise WrongResult saying ``what`` was wrong unless ``ok``."""
    if not ok:
        raise WrongResult(what)


def timed_loop(
    op: Callable[[], T],
    check: Callable[[T], None],
    *,
    warmup: int,
    repeats: int,
    budget_s: float,
    min_samples: int,
) -> list[float]:
    """Seconds taken by each call of ``op`` after ``warmup`` untimed calls.

    Every result is passed to ``check`` (outside the timed part) before its time counts.
    Stops after ``repeats`` samples, or once ``budget_s`` is spent and at least
    ``min_samples`` were taken.
    """
    for _ in range(warmup):
        check(op())
    gc.collect()
    samples: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(samples) < repeats:
        t0 = time.perf_counter()
        result = op()
        elapsed = time.perf_counter() - t0
        check(result)
        samples.append(elapsed)
        if len(samples) >= min_samples and time.perf_counter() > deadline:
            break
    return samples


def paired_loop(
    first: Callable[[], Any],
    second: Callable[[], T],
    check: Callable[[T], None],
    *,
    warmup: int,
    repeats: int,
    budget_s: float,
    min_samples: int,
) -> tuple[list[float], list[float]]:
    """Like ``timed_loop`` for two operations in turn (push then pull, scatter then gather);
    the result of ``second`` checks both."""
    for _ in range(warmup):
        first()
        check(second())
    gc.collect()
    one: list[float] = []
    two: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(one) < repeats:
        t0 = time.perf_counter()
        first()
        t1 = time.perf_counter()
        result = second()
        t2 = time.perf_counter()
        check(result)
        one.append(t1 - t0)
        two.append(t2 - t1)
        if len(one) >= min_samples and time.perf_counter() > deadline:
            break
    return one, two


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise WorkloadTimeout in the main thread once ``seconds`` have passed.

    A blocking wait in Python (a lock, a zmq poll) is interrupted by the signal; the
    caller must then treat the system as broken and restart it.
    """

    def on_alarm(signum: int, frame: object) -> None:
        raise WorkloadTimeout(f"ran past its limit of {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
