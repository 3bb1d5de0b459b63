"""Latency of one blocking call, and the CPU it costs in each process (steadier than time).

Run: ``python benchmarks/call_cpu.py [execute|pull|apply]``. Starts its own 2-engine
cluster and makes 3,000 calls to engine 0 twice; prints the median latency and the CPU
microseconds per call spent by the client, the controller and the engine. Where the CPU goes
(not the wall time, which other processes on the machine disturb) is what a change to the
hot path should move.

``--relay``: the engines behind a per-host relay (``pxrelay``), whose CPU is shown too.
"""

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from pxcluster import Cluster
from pxcluster.profile import LauncherConfig

CALLS = 3000


def noop() -> None:
    return None


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def main(kind: str, relay: bool = False) -> None:
    options = {"local": LauncherConfig(extra={"relay": "1"})} if relay else None
    if relay:  # calls to engines on this host would go to them directly, past the relay
        os.environ.setdefault("PXCLUSTER_DIRECT", "0")
    with Cluster(
        n=2, profile="bench", profile_dir=Path(tempfile.mkdtemp()) / "p", options=options
    ) as cluster:
        mec = cluster.client()
        one = mec[0]
        one.execute("a = 1")
        pid = one.apply(os.getpid)
        calls: dict[str, Callable[[], object]] = {
            "execute": lambda: one.execute("a = 1"),
            "pull": lambda: one.pull("a"),
            "apply": lambda: one.apply(noop),
        }
        call = calls[kind]
        processes = {
            "client": psutil.Process(os.getpid()),
            "controller": psutil.Process(cluster.controller_pid),
            "engine": psutil.Process(pid),
        }
        if relay:
            processes["relay"] = psutil.Process(pid).parent() or processes["engine"]
        for _ in range(300):  # warm-up
            call()
        for _ in range(2):
            before = {name: cpu_seconds(p) for name, p in processes.items()}
            latencies = []
            for _ in range(CALLS):
                began = time.perf_counter()
                call()
                latencies.append(time.perf_counter() - began)
            used = {
                name: (cpu_seconds(p) - before[name]) / CALLS * 1e6 for name, p in processes.items()
            }
            relayed = os.environ.get("PXCLUSTER_DIRECT") == "0"
            path = "through the controller" if relayed else "direct"
            median = statistics.median(latencies) * 1e6
            print(
                f"{kind} ({path}): median {median:.0f} us; CPU per call: "
                + ", ".join(f"{name} {us:.0f} us" for name, us in used.items())
                + f", total {sum(used.values()):.0f} us"
            )


if __name__ == "__main__":
    words = [a for a in sys.argv[1:] if a != "--relay"]
    main(words[0] if words else "execute", relay="--relay" in sys.argv)
