"""The controller at scale: one real controller and N simulated engines (issue 13).

Run: ``python benchmarks/scale.py 1000`` (several sizes: ``python benchmarks/scale.py 1000
5000``; ``--json FILE`` writes the figures). For each N it starts a controller alone
(``Cluster(n=0)``), then one simulator process (``pxcluster.testing._simulator``) with N
engines, and measures from outside:

- registration: launch of the simulator until a client sees N engines (and the simulator's
  own launch-to-last-reply time); engines lost = N minus those registered;
- heartbeat CPU: the controller's CPU (% of a core) over 10 s of idle cluster, which is then
  all heartbeats (N pongs per period) and liveness checks;
- controller memory per engine: its RSS with N engines registered (after an execute and a
  gather on all), minus its RSS before, over N;
- execute on all: ``mec.execute('a=1')`` on N engines (median of 5); scatter of N*4 ints and
  gather of them back from all N;
- the scheduler's cost per task: the controller's CPU per no-op task over 3,000 tasks, with
  N engines, beside the same with 2 simulated engines (so the growth with N shows).

Every figure comes from the real controller process; the simulator's own CPU is not counted.

``--relay``: each simulator process stands for one host and goes through a real per-host
relay (``pxrelay``, started here, one per simulator process): the controller then holds
three connections per relay instead of four per engine. The relays' own memory is reported
beside (``relay_rss_mb``), as it is on the engines' hosts, not the controller's.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from pxcluster import Cluster, MapTask, TaskClient
from pxcluster.profile import ProfilePaths


def noop() -> None:
    return None


def cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def start_relay(engine_file: Path, folder: Path) -> subprocess.Popen[str]:
    """A real ``pxrelay`` (no engines of its own) listening in ``folder``."""
    return subprocess.Popen(
        [sys.executable, "-m", "pxcluster.cli.relay", "--file", str(engine_file),
         "--folder", str(folder), "--log-level", "WARNING"],
        stdout=subprocess.DEVNULL,
        text=True,
    )


def run_size(
    n: int,
    idle_s: float,
    tasks: int,
    sockets: str,
    per_process: int,
    hb_timeout: float | None,
    relay: bool = False,
) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="pxscale-"))
    figures: dict[str, Any] = {
        "engines": n, "sockets": sockets, "heartbeat_timeout": hb_timeout, "relays": relay
    }
    args = ["--heartbeat-timeout", str(hb_timeout)] if hb_timeout else []
    with Cluster(
        0, profile="scale", profile_dir=root / "p", timeout=60, controller_args=args
    ) as cluster:
        ctl = psutil.Process(cluster.controller_pid)
        mec = cluster.client(timeout=120)
        time.sleep(1.0)  # let the fresh controller settle before its baseline
        rss_before = ctl.memory_info().rss
        engine_file = ProfilePaths.for_profile("scale", root / "p").engine_file
        began = time.perf_counter()
        sizes = [min(per_process, n - i) for i in range(0, n, per_process)]
        folders = [root / f"r{i}" for i in range(len(sizes))] if relay else []
        relays = [start_relay(engine_file, folder) for folder in folders]
        sims = [
            subprocess.Popen(
                [sys.executable, "-m", "pxcluster.testing._simulator", "--file",
                 str(engine_file), "-n", str(size), "--sockets", sockets,
                 *(["--relay", str(folders[i])] if relay else [])],
                stdout=subprocess.PIPE,
                text=True,
            )
            for i, size in enumerate(sizes)
        ]
        figures["simulator_processes"] = len(sims)
        try:
            try:
                mec.wait_for_engines(n, timeout=120)
                figures["register_s"] = round(time.perf_counter() - began, 3)
            except Exception as exc:  # report what holds and what breaks
                figures["register_error"] = repr(exc)
            figures["registered"] = len(mec.get_ids())
            figures["lost"] = n - figures["registered"]
            seconds = []
            for sim in sims:
                assert sim.stdout is not None
                line = sim.stdout.readline()
                if line:
                    seconds.append(json.loads(line).get("seconds"))
            figures["simulator_register_s"] = max(seconds, default=None)
            # heartbeats alone
            used, t0 = cpu(ctl), time.perf_counter()
            time.sleep(idle_s)
            figures["heartbeat_cpu_pct"] = round(
                100 * (cpu(ctl) - used) / (time.perf_counter() - t0), 2
            )
            figures["registered_after_idle"] = len(mec.get_ids())
            figures["memory_per_engine_kb_idle"] = round(
                (ctl.memory_info().rss - rss_before) / n / 1024, 1
            )
            hb_rate = (cpu(ctl) - used) / (time.perf_counter() - t0)
            # execute on all
            times = []
            used = cpu(ctl)
            for _ in range(5):
                t0 = time.perf_counter()
                mec.execute("a = 1", block=True)
                times.append(time.perf_counter() - t0)
            figures["execute_all_ms"] = round(1000 * statistics.median(times), 2)
            figures["execute_all_controller_cpu_ms"] = round(
                1000 * (cpu(ctl) - used - hb_rate * sum(times)) / 5, 2
            )
            t0 = time.perf_counter()
            mec.scatter("x", list(range(n * 4)))
            figures["scatter_ms"] = round(1000 * (time.perf_counter() - t0), 2)
            t0 = time.perf_counter()
            back = mec.gather("x")
            figures["gather_ms"] = round(1000 * (time.perf_counter() - t0), 2)
            figures["gather_ok"] = list(back) == list(range(n * 4))
            figures["controller_rss_mb"] = round(ctl.memory_info().rss / 2**20, 1)
            figures["controller_fds"] = ctl.num_fds()
            if relays:
                figures["relay_rss_mb"] = [
                    round(psutil.Process(r.pid).memory_info().rss / 2**20, 1) for r in relays
                ]
            figures["memory_per_engine_kb"] = round(
                (ctl.memory_info().rss - rss_before) / n / 1024, 1
            )
            # tasks: the controller's CPU per task
            with TaskClient(profile_dir=cluster.paths.dir, timeout=120) as tc:
                tc.barrier([tc.run(MapTask(noop)) for _ in range(500)], timeout=120)
                used, t0 = cpu(ctl), time.perf_counter()
                ids = [tc.run(MapTask(noop)) for _ in range(tasks)]
                tc.barrier(ids, timeout=300)
                seconds = time.perf_counter() - t0
                figures["controller_us_per_task"] = round((cpu(ctl) - used) / tasks * 1e6, 1)
                figures["controller_us_per_task_net"] = round(  # heartbeats' share taken out
                    (cpu(ctl) - used - hb_rate * seconds) / tasks * 1e6, 1
                )
                figures["tasks_per_s"] = round(tasks / seconds)
        finally:
            mec.close()
            t0 = time.perf_counter()
            cluster.stop(timeout=60)
            figures["stop_s"] = round(time.perf_counter() - t0, 2)
            for sim in [*sims, *relays]:
                try:
                    sim.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    sim.kill()
                    sim.wait()
                    figures["simulator_killed"] = True
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("sizes", nargs="*", type=int, default=[2, 1000])
    p.add_argument("--idle", type=float, default=10.0, help="seconds of idle for heartbeats")
    p.add_argument("--tasks", type=int, default=3000)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--sockets", choices=["engine", "lean"], default="engine",
                   help="simulated engines' connections: a real engine's four, or two")
    p.add_argument("--per-process", type=int, default=1000,
                   help="simulated engines per simulator process")
    p.add_argument("--relay", action="store_true",
                   help="each simulator process behind a real pxrelay (one per 'host')")
    p.add_argument("--heartbeat-timeout", type=float, default=None,
                   help="the controller's (default: its own, 3 s); simulators echo pings "
                   "from Python, late on a loaded machine")
    args = p.parse_args()
    # stopped from outside (timeout, Ctrl-C): still stop the cluster and the simulators
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("scale.py: terminated"))
    results = []
    for n in args.sizes:
        figures = run_size(
            n, args.idle, args.tasks, args.sockets, args.per_process, args.heartbeat_timeout,
            args.relay,
        )
        print(json.dumps(figures), flush=True)
        results.append(figures)
    if args.json:
        args.json.write_text(json.dumps({"load": os.getloadavg(), "runs": results}, indent=1))


if __name__ == "__main__":
    main()
