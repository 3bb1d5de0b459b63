"""Chaos: tasks with retries while a random engine is killed (or stopped) and replaced.

Run: ``python benchmarks/chaos.py [TASKS] [kill|stop] [PERIOD_S]`` (default 10,000 tasks,
kill, every 2 s). Starts a 4-engine cluster (heartbeat timeout 1.5 s), submits TASKS
MapTasks (each sleeps 1-20 ms and returns its argument squared, retries=10), and while they
run, every PERIOD_S seconds: ``kill`` SIGKILLs a random engine and starts a new one;
``stop`` SIGSTOPs one for twice the heartbeat timeout (so it is declared dead), SIGCONTs it
(it must drop what it held and join under a new id) and starts a new one besides. Then
checks that every task finished with the right value, and that the record store holds
exactly one record per task (a task settled twice would be written twice). Prints the
figures; exits non-zero if a check failed.

``run_chaos`` is also used, with a small count, by ``tests/integration/test_chaos.py``.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from pxcluster import Cluster, MapTask, TaskClient


def run_chaos(
    cluster: Cluster, tasks: int, mode: str = "kill", period: float = 2.0, seed: int = 0
) -> dict[str, Any]:
    """Run ``tasks`` tasks on ``cluster`` while engines are killed or stopped; figures."""
    from pxcluster.client import MultiEngineClient

    def work(x: int, pause: float) -> int:  # nested: travels by value to the engines
        import time

        time.sleep(pause)
        return x * x

    rng = random.Random(seed)
    profile = cluster.paths.dir
    spawned: list[subprocess.Popen[bytes]] = []
    done = threading.Event()
    events = {"killed": 0, "stopped": 0, "started": 0}
    errors: list[str] = []
    timers: list[threading.Timer] = []  # each stopped engine is resumed by one

    def chaos() -> None:
        mec = MultiEngineClient(profile_dir=profile, timeout=30)
        try:
            while not done.wait(period):
                try:
                    pids = [int(p) for p in mec.apply(os.getpid)]
                except Exception as exc:  # an engine died under the call: try next time
                    errors.append(f"{type(exc).__name__}")
                    continue
                victim = rng.choice(pids)
                if mode == "kill":
                    os.kill(victim, signal.SIGKILL)
                    events["killed"] += 1
                else:
                    os.kill(victim, signal.SIGSTOP)
                    events["stopped"] += 1
                    resume = threading.Timer(3.5, os.kill, (victim, signal.SIGCONT))
                    resume.start()
                    timers.append(resume)
                spawned.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "pxcluster.cli.engine",
                            "--profile-dir",
                            str(profile),
                            "--controller-timeout",
                            "10",
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
                events["started"] += 1
        finally:
            mec.close()

    began = time.perf_counter()
    thread = threading.Thread(target=chaos, daemon=True)
    with TaskClient(profile_dir=profile, timeout=30) as tc:
        tc.clear()
        thread.start()
        try:
            ids = [
                tc.run(MapTask(work, args=(i, rng.uniform(0.001, 0.02)), retries=10))
                for i in range(tasks)
            ]
            results = [tc.get_task_result(t, block=True, timeout=600) for t in ids]
        finally:
            done.set()
            thread.join(timeout=30)
            for resume in timers:
                resume.join(timeout=10)  # no engine is left stopped
        seconds = time.perf_counter() - began
        wrong = [
            i
            for i, r in enumerate(results)
            if r is None or r.failure is not None or r.result != i * i
        ]
        status = tc.queue_status(timeout=30)
        tc.close()
    for proc in spawned:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
    def stored_rows() -> tuple[int, int]:
        db = sqlite3.connect(profile / "db.sqlite3")
        try:
            row = db.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM tasks").fetchone()
            return int(row[0]), int(row[1])
        finally:
            db.close()

    deadline = time.monotonic() + 30  # the store writes every 0.2 s: wait for the last batch
    stored = stored_rows()
    while stored[0] < tasks and time.monotonic() < deadline:
        time.sleep(0.2)
        stored = stored_rows()
    return {
        "tasks": tasks,
        "mode": mode,
        "seconds": round(seconds, 1),
        "wrong_or_failed": len(wrong),
        "records_counted": int(status.get("records", -1)),
        "rows_stored": int(stored[0]),
        "distinct_stored": int(stored[1]),
        **events,
        "chaos_errors": len(errors),
        "spawned": spawned,
    }


def stop_spawned(spawned: list[subprocess.Popen[bytes]]) -> None:
    for proc in spawned:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
    for proc in spawned:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(tasks: int, mode: str, period: float) -> int:
    profile = Path(tempfile.mkdtemp()) / "p"
    args = ["--heartbeat-period", "0.3", "--heartbeat-timeout", "1.5"]
    with Cluster(n=4, profile="chaos", profile_dir=profile, controller_args=args) as cluster:
        figures = run_chaos(cluster, tasks, mode, period)
        stop_spawned(figures.pop("spawned"))
    print(
        f"{figures['tasks']} tasks, {mode} every {period} s: {figures['seconds']} s, "
        f"{figures['killed']} killed, {figures['stopped']} stopped, {figures['started']} "
        f"started; wrong or failed: {figures['wrong_or_failed']}; records "
        f"{figures['records_counted']} counted, {figures['rows_stored']} rows "
        f"({figures['distinct_stored']} distinct)"
    )
    ok = figures["wrong_or_failed"] == 0 and figures["rows_stored"] == tasks
    return 0 if ok else 1


if __name__ == "__main__":
    argv = sys.argv[1:]
    raise SystemExit(
        main(
            int(argv[0]) if argv else 10_000,
            argv[1] if len(argv) > 1 else "kill",
            float(argv[2]) if len(argv) > 2 else 2.0,
        )
    )
