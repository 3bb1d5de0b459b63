"""CPU time per tiny task, summed over client, controller and engines (steadier than tasks/s).

Run: ``python benchmarks/task_cpu.py``. Starts its own 2-engine cluster; prints the CPU
microseconds per no-op MapTask and the tasks/s of three rounds of 5,000 tasks.
"""

import os
import tempfile
import time
from pathlib import Path

import psutil

from pxcluster import Cluster, MapTask, TaskClient


def noop() -> None:
    return None


def cpu_seconds(procs: list[psutil.Process]) -> float:
    return sum(p.cpu_times().user + p.cpu_times().system for p in procs)


def main() -> None:
    with Cluster(n=2, profile="bench", profile_dir=Path(tempfile.mkdtemp()) / "p") as cluster, \
            TaskClient(profile_dir=cluster.paths.dir) as tc:
        procs = [psutil.Process(os.getpid()), psutil.Process(cluster.controller_pid)]
        procs += [psutil.Process(pid) for pid in cluster.engine_pids]
        tc.barrier([tc.run(MapTask(noop)) for _ in range(2000)], timeout=60)  # warm-up
        for _ in range(3):
            used, began = cpu_seconds(procs), time.perf_counter()
            ids = [tc.run(MapTask(noop)) for _ in range(5000)]
            tc.barrier(ids, timeout=120)
            seconds = time.perf_counter() - began
            per_task = (cpu_seconds(procs) - used) / 5000 * 1e6
            print(f"CPU {per_task:.0f} us per task, {5000 / seconds:.0f} tasks/s")


if __name__ == "__main__":
    main()
