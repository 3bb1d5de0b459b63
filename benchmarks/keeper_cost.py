"""What the engine keeper (``--restart``) costs: its memory and CPU while idle, and the
controller CPU its MONITOR polling adds.

Run: ``python benchmarks/keeper_cost.py [--engines 4] [--seconds 30]``. Starts its own local
cluster with ``restart=3`` in a temporary profile and prints JSON. Not a test; the
machine's load moves the numbers.
"""

import argparse
import json
import tempfile
import time

import psutil

from pxcluster import Cluster


def cpu_percent(proc: psutil.Process, seconds: float) -> float:
    """Percent of one core ``proc`` used over the next ``seconds``."""
    before, began = proc.cpu_times(), time.monotonic()
    time.sleep(seconds)
    after = proc.cpu_times()
    used = (after.user + after.system) - (before.user + before.system)
    return round(100 * used / (time.monotonic() - began), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engines", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as folder,
        Cluster(args.engines, profile_dir=f"{folder}/p", restart=3) as cluster,
    ):
        assert cluster.keeper is not None
        assert cluster.controller_pid is not None
        keeper = psutil.Process(cluster.keeper.pid)
        controller = psutil.Process(cluster.controller_pid)
        time.sleep(2)  # past its start
        keeper_cpu = cpu_percent(keeper, args.seconds)
        memory = keeper.memory_full_info()
        with_keeper = cpu_percent(controller, args.seconds)
        keeper.suspend()
        try:
            without = cpu_percent(controller, args.seconds)
        finally:
            keeper.resume()
    print(
        json.dumps(
            {
                "engines": args.engines,
                "keeper_rss_mib": round(memory.rss / 2**20, 1),
                "keeper_uss_mib": round(memory.uss / 2**20, 1),
                "keeper_cpu_percent": keeper_cpu,
                "controller_cpu_percent_with_keeper": with_keeper,
                "controller_cpu_percent_keeper_paused": without,
            }
        )
    )


if __name__ == "__main__":
    main()
