"""A push to all engines: is it serialised and signed once and sent as the same frames?

Run: ``python benchmarks/broadcast.py`` (``-n 100``). A controller alone and N simulated
engines that say they are on another host (so payloads travel as bytes, not through shared
memory). For payloads of 1 KB, 1 MB and 4 MB it pushes to one engine and to all N and
reports the controller's CPU per push and per engine, and the client's. If the controller
copied or signed the payload once per engine, its CPU per engine would grow with the size;
if it forwards the same frames, it stays flat (the bytes still cross N TCP connections, in
libzmq's I/O thread and the kernel).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy
import psutil

from pxcluster import Cluster


def cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-n", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pxbcast-"))
    me = psutil.Process(os.getpid())
    with Cluster(0, profile="bcast", profile_dir=root / "p", timeout=60,
                 controller_args=["--heartbeat-timeout", "60"]) as cluster:
        sim = subprocess.Popen(
            [sys.executable, "-m", "pxcluster.testing._simulator", "--file",
             str(cluster.paths.engine_file), "-n", str(args.n), "--hostname", "elsewhere",
             "--sockets", "lean"],
            stdout=subprocess.DEVNULL,
        )
        try:
            ctl = psutil.Process(cluster.controller_pid)
            mec = cluster.client(timeout=300)
            mec.wait_for_engines(args.n, timeout=120)
            for size in (1_000, 1_000_000, 4_000_000):
                value = numpy.ones(size, dtype=numpy.uint8)
                row: dict[str, object] = {"bytes": size, "engines": args.n}
                for label, targets in (("one", [0]), ("all", "all")):
                    mec.push({"x": value}, targets=targets)  # warm
                    c0, m0, t0 = cpu(ctl), cpu(me), time.perf_counter()
                    s0 = ctl.cpu_times().system
                    for _ in range(args.repeats):
                        mec.push({"x": value}, targets=targets)
                    wall = (time.perf_counter() - t0) / args.repeats
                    per = args.n if label == "all" else 1
                    ctl_ms = 1000 * (cpu(ctl) - c0) / args.repeats
                    row[f"{label}_wall_ms"] = round(1000 * wall, 2)
                    row[f"{label}_controller_cpu_ms"] = round(ctl_ms, 2)
                    row[f"{label}_controller_us_per_engine"] = round(1000 * ctl_ms / per, 1)
                    row[f"{label}_controller_system_share"] = round(  # kernel: TCP sends
                        (ctl.cpu_times().system - s0) / max(1e-9, ctl_ms / 1000 * args.repeats), 2
                    )
                    row[f"{label}_client_cpu_ms"] = round(
                        1000 * (cpu(me) - m0) / args.repeats, 2
                    )
                print(json.dumps(row), flush=True)
            mec.close()
        finally:
            cluster.stop()
            try:
                sim.wait(timeout=30)
            except subprocess.TimeoutExpired:
                sim.kill()
                sim.wait()


if __name__ == "__main__":
    main()
