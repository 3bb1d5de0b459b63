"""Fuzz each controller port with real sockets (a bounded count; benchmarks/fuzz.py runs
100,000 a port): the controller survives, answers, loses no engine, runs no fuzzed code,
and its memory stays within twice its idle size."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from pxcluster.testing import cluster_in

_FUZZ = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz.py"


def load_fuzz():
    spec = importlib.util.spec_from_file_location("px_bench_fuzz", _FUZZ)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(240)
def test_hostile_messages_on_every_port_change_nothing(tmp_path):
    fuzz = load_fuzz()
    with cluster_in(tmp_path / "profile", n=2) as cluster:
        figures = fuzz.fuzz_ports(cluster, 1500, seed=11)
        log = (cluster.paths.log / "controller.log").read_text(errors="replace")
    for port, row in figures["ports"].items():
        assert row["alive"], f"controller died from fuzz on the {port} port"
        assert row["answered"], f"a good request after the {port} port's fuzz failed"
    assert not figures["code_ran"]
    assert figures["engines_same"]
    assert figures["rss_after"] <= 2 * figures["idle_rss"], figures
    # 4,500 dropped messages, but a rate-limited log: a few lines per kind of drop
    assert log.count("dropped a message") < 100, log[-3000:]
