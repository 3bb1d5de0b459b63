"""Chaos, test-sized (benchmarks/chaos.py runs 10,000 tasks): tasks with retries while a
random engine is SIGKILLed every second and a new one started. Every task finishes with the
right value and is recorded."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from pxcluster.testing import cluster_in

_CHAOS = Path(__file__).resolve().parents[2] / "benchmarks" / "chaos.py"


def load_chaos():
    spec = importlib.util.spec_from_file_location("px_bench_chaos", _CHAOS)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(240)
def test_tasks_survive_engines_killed_and_replaced(tmp_path):
    chaos = load_chaos()
    spawned = []
    try:
        with cluster_in(tmp_path / "profile", n=3, heartbeat_timeout=1.5) as cluster:
            figures = chaos.run_chaos(cluster, 1000, "kill", period=1.0, seed=3)
            spawned = figures.pop("spawned")
    finally:
        chaos.stop_spawned(spawned)
    assert figures["killed"] >= 1, figures  # the chaos happened
    assert figures["wrong_or_failed"] == 0, figures
    # every task recorded (settled-once is pinned by test_hub: late replies settle nothing)
    assert figures["rows_stored"] == figures["distinct_stored"] == 1000, str(figures)


@pytest.mark.timeout(240)
def test_tasks_survive_engines_stopped_past_their_timeout_and_resumed(tmp_path):
    chaos = load_chaos()
    spawned = []
    try:
        with cluster_in(tmp_path / "profile", n=3, heartbeat_timeout=1.5) as cluster:
            figures = chaos.run_chaos(cluster, 600, "stop", period=1.0, seed=5)
            spawned = figures.pop("spawned")
    finally:
        chaos.stop_spawned(spawned)
    assert figures["stopped"] >= 1, figures
    assert figures["wrong_or_failed"] == 0, str(figures)
    assert figures["rows_stored"] == figures["distinct_stored"] == 600, str(figures)
