"""Smoke test of the benchmark harness (benchmarks/): every workload once, at tiny sizes.

Not a measurement, and no speed is asserted: it keeps ``benchmarks/run.py`` working on
pxcluster and on the bare relay. ipyparallel and Dask are not installed in the test
environment; their runs must then say n/a cleanly (and are skipped where they are installed:
the full run measures them).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
WORKLOADS = set("123456789")


def run_smoke(tmp_path: Path, system: str) -> dict[str, Any]:
    results = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "--systems", system, "--results-dir", str(results)],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    (found,) = results.glob("*.json")
    assert "| # | Measurement |" in (results / "latest.md").read_text()
    doc: dict[str, Any] = json.loads(found.read_text())
    return doc


@pytest.mark.timeout(100)
@pytest.mark.parametrize(
    ("system", "not_applicable"),
    [
        ("pxcluster", set()),
        ("relay", {"tasks_map_default", "cli_start", "cli_stop"}),
    ],
)
def test_every_workload_runs_and_checks_out(
    tmp_path: Path, system: str, not_applicable: set[str]
) -> None:
    doc = run_smoke(tmp_path, system)
    record = doc["systems"][system]
    assert "error" not in record
    assert record["leftover_processes"] == []
    statuses = {key: value["status"] for key, value in record["metrics"].items()}
    assert {k for k, s in statuses.items() if s != "ok"} == not_applicable, record["metrics"]
    measured = {spec["workload"] for spec in doc["specs"] if statuses.get(spec["key"]) == "ok"}
    assert measured == WORKLOADS
    assert record["metrics"]["call"]["p99"] >= record["metrics"]["call"]["value"] > 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("system", "package"), [("ipyparallel", "ipyparallel"), ("dask", "distributed")]
)
def test_a_system_not_installed_is_reported_not_applicable(
    tmp_path: Path, system: str, package: str
) -> None:
    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed here; the full benchmark run measures it")
    record = run_smoke(tmp_path, system)["systems"][system]
    assert record["metrics"]
    for value in record["metrics"].values():
        assert value["status"] == "n/a"
        assert f"{package} is not installed" in value["note"]
