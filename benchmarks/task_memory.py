"""Task interface figures: tiny-task throughput and the controller's memory after many tasks.

Run: ``python benchmarks/task_memory.py [--tasks 100000]``. Starts its own 2-engine cluster
in a temporary profile; prints JSON. Not a test; the machine's load moves the numbers.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import psutil

from pxcluster import Cluster, MapTask, TaskClient


def rate(count: int, seconds: float) -> float:
    return round(count / seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--tasks",
        type=int,
        default=100_000,
        help="tasks to run before reading the controller's memory",
    )
    args = parser.parse_args()
    with Cluster(n=2, profile="bench", profile_dir=Path(tempfile.mkdtemp()) / "p") as cluster:
        controller = psutil.Process(cluster.controller_pid)
        rss_start = controller.memory_info().rss
        with TaskClient(profile_dir=cluster.paths.dir) as tc:
            tc.barrier([tc.run(MapTask(int)) for _ in range(1000)], timeout=60)  # warm-up
            t0 = time.perf_counter()
            ids = [tc.run(MapTask(int)) for _ in range(10_000)]
            tc.barrier(ids, timeout=300)
            one_by_one = rate(10_000, time.perf_counter() - t0)
            t0 = time.perf_counter()
            assert tc.map(int, range(10_000), chunksize=1) == list(range(10_000))
            map_each = rate(10_000, time.perf_counter() - t0)
            t0 = time.perf_counter()
            assert tc.map(int, range(10_000)) == list(range(10_000))
            map_chunked = rate(10_000, time.perf_counter() - t0)
            tc.clear()
            done = 0
            while done < args.tasks:
                batch = [tc.run(MapTask(int)) for _ in range(min(10_000, args.tasks - done))]
                tc.barrier(batch, timeout=300)
                tc.clear()  # the client forgets; the controller's store keeps its records
                done += len(batch)
            status = tc.queue_status()
        rss_end = controller.memory_info().rss
        db = cluster.paths.dir / "db.sqlite3"
        print(
            json.dumps(
                {
                    "engines": 2,
                    "tasks/s, 10,000 MapTasks submitted one by one": one_by_one,
                    "tasks/s, 10,000 items through map(chunksize=1)": map_each,
                    "items/s, 10,000 items through map (auto chunks)": map_chunked,
                    f"controller RSS before / after {args.tasks:,} tasks (MB)": [
                        round(rss_start / 2**20, 1),
                        round(rss_end / 2**20, 1),
                    ],
                    "record store after clear(): records, db file MB": [
                        status["records"],
                        round(db.stat().st_size / 2**20, 1),
                    ],
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
