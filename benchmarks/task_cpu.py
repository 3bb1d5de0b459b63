"""CPU time per tiny task, summed over client, controller and engines (steadier than tasks/s).

Run: ``python benchmarks/task_cpu.py [--map]``. Starts its own 2-engine cluster; prints the
CPU microseconds per no-op MapTask (in total, and in the client, the controller and the
engines) and the tasks/s of three rounds of 5,000 tasks submitted one ``tc.run`` each
(``--map``: one ``tc.map(f, seq, chunksize=1)`` of 5,000 items).
"""

import os
import sys
import tempfile
import time
from pathlib import Path

import psutil

from pxcluster import Cluster, MapTask, TaskClient

ROUND = 5000


def noop(x: object = None) -> None:
    return None


def cpu_seconds(procs: list[psutil.Process]) -> list[float]:
    return [p.cpu_times().user + p.cpu_times().system for p in procs]


def main() -> None:
    use_map = "--map" in sys.argv[1:]
    with Cluster(n=2, profile="bench", profile_dir=Path(tempfile.mkdtemp()) / "p") as cluster, \
            TaskClient(profile_dir=cluster.paths.dir) as tc:
        procs = [psutil.Process(os.getpid()), psutil.Process(cluster.controller_pid)]
        procs += [psutil.Process(pid) for pid in cluster.engine_pids]

        def one_round(n: int) -> None:
            if use_map:
                tc.map(noop, range(n), chunksize=1, timeout=120)
            else:
                tc.barrier([tc.run(MapTask(noop)) for _ in range(n)], timeout=120)

        one_round(2000)  # warm-up
        for _ in range(3):
            used, began = cpu_seconds(procs), time.perf_counter()
            one_round(ROUND)
            seconds = time.perf_counter() - began
            spent = [(b - a) / ROUND * 1e6 for a, b in zip(used, cpu_seconds(procs), strict=True)]
            print(
                f"CPU {sum(spent):.0f} us per task (client {spent[0]:.0f}, controller "
                f"{spent[1]:.0f}, engines {sum(spent[2:]):.0f}), {ROUND / seconds:.0f} tasks/s"
            )


if __name__ == "__main__":
    main()
