"""Benchmarks: start (and stop) time of 4 and 16 engines through each launcher.

For each launcher it times ``Cluster(n, engines=NAME).start()`` (controller local, engines
through the launcher, until every engine is registered) and then ``stop()`` (until every
process and job is gone), ``--repeats`` times, and prints the median of each. Batch
launchers run against the same single-node daemons the tests use (tests/services/: a
private Slurm, Debian's SGE cell, Slurm's Torque wrappers for PBS), which this script starts
and stops itself; run it as root on a machine where tests/services/install.sh ran.

Run: ``python -m benchmarks.launchers [--launchers local,slurm,sge,pbs] [--sizes 4,16]``.
Results go to stdout as a markdown table and to ``benchmarks/results/launchers-DATE.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from pxcluster import Cluster  # noqa: E402

PBS_WRAPPERS = Path("/opt/pxcluster-test/pbs/usr/bin")


@contextlib.contextmanager
def scheduler_for(name: str) -> Iterator[None]:
    """The daemons a launcher needs, running for the duration."""
    if name in ("slurm", "pbs"):
        from services.slurm import running_slurm

        with running_slurm():
            if name == "pbs":
                path = os.environ["PATH"]
                os.environ["PATH"] = f"{PBS_WRAPPERS}:{path}"
                try:
                    yield
                finally:
                    os.environ["PATH"] = path
            else:
                yield
    elif name == "sge":
        from services.sge import running_sge

        with running_sge():
            yield
    else:
        yield


def time_one(name: str, n: int) -> tuple[float, float]:
    """Seconds to start ``n`` engines through ``name`` and to stop them again."""
    folder = Path(tempfile.mkdtemp(prefix="pxbench-launch-"))
    cluster = Cluster(n, profile="bench", profile_dir=folder / "p", engines=name, timeout=180)
    began = time.perf_counter()
    try:
        cluster.start()
        started = time.perf_counter() - began
        if len(cluster.engine_ids()) != n:
            raise RuntimeError(f"{name}: {len(cluster.engine_ids())} engines, not {n}")
    finally:
        stop_began = time.perf_counter()
        cluster.stop()
    return started, time.perf_counter() - stop_began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--launchers", default="local,slurm,sge,pbs")
    parser.add_argument("--sizes", default="4,16")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for name in args.launchers.split(","):
        with scheduler_for(name):
            time_one(name, 1)  # warm-up: the first job after bring-up is slower
            for n in sizes:
                runs = [time_one(name, n) for _ in range(args.repeats)]
                rows.append(
                    {
                        "launcher": name,
                        "engines": n,
                        "start_s": statistics.median(r[0] for r in runs),
                        "stop_s": statistics.median(r[1] for r in runs),
                        "runs": runs,
                    }
                )
                print(f"{name} {n}: {rows[-1]['start_s']:.2f} s start", file=sys.stderr)
    print(f"| launcher | engines | start (median of {args.repeats}) | stop |")
    print("|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['launcher']} | {row['engines']} | {row['start_s']:.2f} s "
            f"| {row['stop_s']:.2f} s |"
        )
    out = ROOT / "benchmarks" / "results" / f"launchers-{time.strftime('%Y-%m-%d-%H%M%S')}.json"
    out.write_text(json.dumps({"cores": os.cpu_count(), "rows": rows}, indent=2))
    print(f"\n(written to {out.relative_to(ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
