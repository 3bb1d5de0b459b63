"""Figures for the core: start-up, call latency and bandwidth of a local cluster.

Run: ``python benchmarks/measure_core.py`` (uses a throw-away PXCLUSTER_DIR).
Prints medians; not a test, and the machine's load moves the numbers: repeat.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from pxcluster import MultiEngineClient

PXCLUSTER = [sys.executable, "-m", "pxcluster.cli.cluster"]


def time_cli_start(n: int, repeats: int = 3) -> tuple[float, float]:
    starts, stops = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([*PXCLUSTER, "start", "-n", str(n), "--profile", "bench"], check=True,
                       capture_output=True)
        t1 = time.perf_counter()
        subprocess.run([*PXCLUSTER, "stop", "--profile", "bench"], check=True,
                       capture_output=True)
        starts.append(t1 - t0)
        stops.append(time.perf_counter() - t1)
    return statistics.median(starts), statistics.median(stops)


def latency(call, repeats: int = 1000) -> tuple[float, float]:
    for _ in range(50):
        call()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    samples.sort()
    return statistics.median(samples) * 1e6, samples[int(len(samples) * 0.99)] * 1e6


def bandwidth(mec: MultiEngineClient, nbytes: int, repeats: int = 5) -> tuple[float, float]:
    arr = np.random.default_rng(0).random(nbytes // 8)
    pushes, pulls = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        mec.push({"big": arr}, targets=0)
        t1 = time.perf_counter()
        back = mec[0].pull("big")
        pulls.append(time.perf_counter() - t1)
        pushes.append(t1 - t0)
        assert np.array_equal(back, arr)
    gb = nbytes / 1e9
    return gb / statistics.median(pushes), gb / statistics.median(pulls)


def main() -> None:
    os.environ["PXCLUSTER_DIR"] = tempfile.mkdtemp(prefix="pxbench-")
    start4, stop4 = time_cli_start(4)
    subprocess.run([*PXCLUSTER, "start", "-n", "2", "--profile", "bench"], check=True,
                   capture_output=True)
    try:
        with MultiEngineClient(profile="bench") as mec:
            exec_med, exec_p99 = latency(lambda: mec.execute("a=1", targets=0))
            pull_med, pull_p99 = latency(lambda: mec[0].pull("a"))
            push_gbs, pull_gbs = bandwidth(mec, 100_000_000)
    finally:
        subprocess.run([*PXCLUSTER, "stop", "--profile", "bench"], check=True,
                       capture_output=True)
    figures = {
        "cores": os.cpu_count(),
        "pxcluster start -n 4 (s)": round(start4, 3),
        "pxcluster stop, 4 engines (s)": round(stop4, 3),
        "execute('a=1', targets=0) median / p99 (us)": [round(exec_med), round(exec_p99)],
        "mec[0].pull('a') median / p99 (us)": [round(pull_med), round(pull_p99)],
        "100 MB numpy push / pull (GB/s)": [round(push_gbs, 3), round(pull_gbs, 3)],
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
