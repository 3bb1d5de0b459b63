"""Benchmarks: every workload on one system, in a process of its own (``run.py`` starts it).

Workloads 1-6 and 9 share one cluster of ``plan.engines``, started once and restarted after
a measurement fails or times out (its state is then unknown). Workloads 7 and 8 start their
own clusters in fresh processes. The record is rewritten after every measurement, so that
what was measured survives if ``run.py`` has to kill this process.

Run: ``python -m benchmarks.runner SYSTEM PLAN OUT_JSON [WORKLOADS]``.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks.lifecycle import lifecycle_measurements
from benchmarks.metrics import Value
from benchmarks.plans import PLANS, Plan
from benchmarks.systems import NotAvailable, System, load
from benchmarks.timing import WorkloadTimeout, WrongResult, time_limit
from benchmarks.workloads import ON_CLUSTER, Measurement


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Record:
    """What this runner found, as written to the output JSON."""

    def __init__(self, name: str, out: Path) -> None:
        self.out = out
        self.data: dict[str, Any] = {
            "system": name,
            "versions": {},
            "how": {},
            "metrics": {},
            "load_before": list(os.getloadavg()),
        }

    def set(self, key: str, value: Value) -> None:
        self.data["metrics"][key] = value.to_json()

    def set_all(self, keys: tuple[str, ...], value: Value) -> None:
        for key in keys:
            self.set(key, value)

    def save(self) -> None:
        self.data["load_after"] = list(os.getloadavg())
        tmp = self.out.with_name(self.out.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.out)


def measure(system: System, plan: Plan, m: Measurement, limit_s: float, record: Record) -> bool:
    """Run one measurement into ``record``; False when the system may now be broken."""
    log(f"{system.name}: workload {m.workload}: {', '.join(m.keys)}")
    gc.collect()
    try:
        with time_limit(limit_s):
            rows = m.run(system, plan)
    except NotAvailable as exc:
        record.set_all(m.keys, Value("n/a", note=str(exc)))
        return True
    except WrongResult as exc:
        record.set_all(m.keys, Value("wrong", note=str(exc)))
        return False
    except WorkloadTimeout as exc:
        record.set_all(m.keys, Value("timeout", note=str(exc)))
        return False
    except Exception as exc:
        log(traceback.format_exc())
        record.set_all(m.keys, Value("failed", note=f"{type(exc).__name__}: {exc}"[:300]))
        return False
    for key, value in rows.items():
        record.set(key, value)
    return True


def run_on_cluster(system: System, plan: Plan, todo: list[Measurement], record: Record) -> None:
    running = False
    try:
        for m in todo:
            if not running:
                try:
                    with time_limit(plan.limit_s):
                        system.start(plan.engines)
                    running = True
                except Exception as exc:
                    note = f"the cluster did not start: {type(exc).__name__}: {exc}"[:300]
                    record.set_all(m.keys, Value("failed", note=note))
                    _stop(system, plan)
                    continue
            running = measure(system, plan, m, plan.limit_s, record)
            if not running:
                _stop(system, plan)
            record.save()
    finally:
        if running:
            _stop(system, plan)


def _stop(system: System, plan: Plan) -> None:
    try:
        with time_limit(plan.limit_s):
            system.stop()
    except Exception as exc:  # run.py kills whatever is left
        log(f"{system.name}: stop failed: {type(exc).__name__}: {exc}")


def main(argv: list[str]) -> int:
    name, plan_name, out = argv[0], argv[1], Path(argv[2])
    plan = PLANS[plan_name]
    only = set(argv[3].split(",")) if len(argv) > 3 and argv[3] else None
    if len(argv) > 4:
        plan = dataclasses.replace(plan, engines=int(argv[4]))
    record = Record(name, out)
    on_cluster = [m for m in ON_CLUSTER if only is None or m.workload in only]
    lifecycle = [m for m in lifecycle_measurements(plan) if only is None or m.workload in only]
    try:
        system = load(name)
    except NotAvailable as exc:
        for m in [*on_cluster, *lifecycle]:
            record.set_all(m.keys, Value("n/a", note=str(exc)))
        record.data["error"] = str(exc)
        record.save()
        return 0
    record.data["versions"] = system.versions()
    record.data["how"] = dict(system.how)
    record.save()
    if on_cluster:
        run_on_cluster(system, plan, on_cluster, record)
    for m in lifecycle:
        measure(system, plan, m, plan.start_budget_s + plan.limit_s + 10, record)
        record.save()
    record.save()
    log(f"{name}: done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
