"""How the dashboard holds up: (1) the page's render time in headless Chromium for a
snapshot of 256 engines with a full task stream and error list; (2) tiny-task throughput of
a real 2-engine cluster with and without a monitor polling it 10 times a second (10x the
dashboard's rate), alternated, so the cost of being watched shows.

    .venv/bin/python benchmarks/dashboard_load.py
"""

import asyncio
import statistics
import tempfile
import threading
import time
from pathlib import Path

import tornado.httpserver
import tornado.netutil
from playwright.sync_api import sync_playwright

from pxcluster import TaskClient
from pxcluster.dashboard._server import SnapshotFeed, make_app
from pxcluster.monitor import MonitorSource
from pxcluster.testing import cluster_in

SYNTHETIC = """
() => {
  const now = Date.now() / 1000;
  const engines = [];
  for (let i = 0; i < 256; i++) engines.push({id: i, hostname: "node" + (i >> 4), pid: 1000 + i,
    state: i % 3 ? "busy" : "idle", queue: i % 3, last_seen: 0.2, memory: 5e7, cpu: 97.5,
    why: "", job: "slurm 1234_" + i});
  const events = [];
  for (let i = 0; i < 100; i++) events.push({seq: i, engine: i % 256, kind: "TASK",
    id: "cli1-abcdef-" + i, done: now, took: 0.0001, status: "OK"});
  const errors = [];
  for (let i = 0; i < 32; i++) errors.push({seq: i, engine: i, kind: "TASK", id: "t" + i,
    time: now, ename: "ValueError", evalue: "bad", traceback: "x".repeat(8000)});
  const throughput = [];
  for (let i = 0; i < 300; i++) throughput.push([now - 300 + i, 10000 + i]);
  const snap = {taken: now, profile: "big", controller_url: "tcp://h:1", answering: true,
    engines, clients: [], queued: 5000, waiting: 0, assigned: 512, store_records: 100000,
    store_bytes: 1e8, store_file_bytes: 2e8, finished: 1e7, errors_total: 32, throughput,
    events, errors, problem: ""};
  const times = [];
  for (let k = 0; k < 30; k++) { const t = performance.now(); render(snap);
    times.push(performance.now() - t); }
  return [times, JSON.stringify(snap).length];
}
"""


def page_render_ms() -> tuple[list[float], int]:
    feed_ready = threading.Event()
    holder: dict[str, object] = {}

    def serve() -> None:
        async def main() -> None:
            app = make_app("t" * 32, SnapshotFeed())
            sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
            tornado.httpserver.HTTPServer(app).add_sockets(sockets)
            holder["port"] = sockets[0].getsockname()[1]
            holder["stop"] = asyncio.Event()
            feed_ready.set()
            await holder["stop"].wait()  # type: ignore[attr-defined]

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    feed_ready.wait(10)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        # bypass_csp: the page's policy forbids the eval that page.evaluate of a string needs
        page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        page.goto(f"http://127.0.0.1:{holder['port']}/?token={'t' * 32}")
        page.wait_for_function("typeof render === 'function' && typeof uPlot === 'function'")
        times, size = page.evaluate(SYNTHETIC)
        browser.close()
    return times, size


def tiny_task_rate(tc: TaskClient, n: int = 4000) -> float:
    began = time.perf_counter()
    tc.map(lambda x: x, range(n), chunksize=1)
    return n / (time.perf_counter() - began)


def _poll_until(source: MonitorSource, stop: threading.Event) -> None:
    while not stop.wait(0.1):
        source.poll()


def watched_vs_not() -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory() as tmp, cluster_in(Path(tmp) / "p", n=2):
        tc = TaskClient(profile_dir=Path(tmp) / "p")
        tiny_task_rate(tc, 1000)  # warm-up
        plain, watched = [], []
        for _ in range(3):
            plain.append(tiny_task_rate(tc))
            stop = threading.Event()
            with MonitorSource(profile_dir=Path(tmp) / "p") as source:
                poller = threading.Thread(target=_poll_until, args=(source, stop))
                poller.start()
                watched.append(tiny_task_rate(tc))
                stop.set()
                poller.join()
        tc.close()
    return plain, watched


def main() -> None:
    times, size = page_render_ms()
    print(
        f"page render, 256 engines + 100 events + 32 errors ({size / 1024:.0f} KiB JSON): "
        f"median {statistics.median(times):.1f} ms, max {max(times):.1f} ms over {len(times)}"
    )
    plain, watched = watched_vs_not()
    print(
        f"tiny tasks/s, not watched: {[round(r) for r in plain]}, "
        f"watched at 10 Hz: {[round(r) for r in watched]}"
    )


if __name__ == "__main__":
    main()
