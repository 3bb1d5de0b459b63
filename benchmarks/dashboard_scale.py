"""The dashboard against 256 simulated engines (pxcluster.testing._simulator: one process,
the real protocol) while a client floods tiny tasks: the MONITOR round trip, /api/snapshot,
how often the page really updates in headless Chromium, and the flood's rate.

    PXCLUSTER_DIR=$(mktemp -d) .venv/bin/python benchmarks/dashboard_scale.py
"""

import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

from pxcluster.cli._dashboard import wait_for_dashboard_url
from pxcluster.monitor import MonitorSource
from pxcluster.profile import ProfilePaths

ENGINES = 256
PY = sys.executable
FLOOD = """
import time
from pxcluster import TaskClient
tc = TaskClient(profile="big")
began, n = time.time(), 0
while time.time() - began < 25:
    tc.map(lambda x: x, range(2000), chunksize=1)
    n += 2000
print(f"flood: {n / (time.time() - began):.0f} tasks/s")
"""
#: Mean time between the page's updates, over five of them (it counts them in data-updates).
UPDATE_PERIOD = """async () => {
  const n0 = Number(document.body.dataset.updates);
  const t0 = performance.now();
  while (Number(document.body.dataset.updates) < n0 + 5) {
    await new Promise((r) => setTimeout(r, 50));
  }
  return (performance.now() - t0) / 5;
}"""


def run(*args: str) -> None:
    subprocess.run(
        [PY, "-m", "pxcluster.cli.cluster", *args], check=True, capture_output=True, timeout=120
    )


def measure(url: str) -> None:
    with MonitorSource("big") as source:
        began = time.time()
        while len(source.poll().live_engines) < ENGINES and time.time() - began < 120:
            time.sleep(1)
        flood = subprocess.Popen([PY, "-c", FLOOD], stdout=subprocess.PIPE, text=True)
        time.sleep(3)
        took = []
        for _ in range(20):
            start = time.perf_counter()
            snap = source.poll()
            took.append((time.perf_counter() - start) * 1000)
            time.sleep(0.3)
    print(
        f"MONITOR under load: median {statistics.median(took):.1f} ms, max {max(took):.1f} ms;"
        f" {len(snap.live_engines)} engines, {len(snap.events)} events, {snap.rate:.0f}/s"
    )
    base, token = url.split("/?token=")
    request = urllib.request.Request(
        base + "/api/snapshot", headers={"Authorization": "Bearer " + token}
    )
    took = []
    for _ in range(10):
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = answer.read()
        took.append((time.perf_counter() - start) * 1000)
    print(f"GET /api/snapshot: median {statistics.median(took):.1f} ms, {len(body) // 1024} KiB")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        # bypass_csp: the page's policy forbids the eval that page.evaluate of a string needs
        page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        page.goto(url)
        period = page.evaluate(UPDATE_PERIOD)
        rows = page.locator("#engines tbody tr").count()
        print(f"page: {rows} engine rows, an update every {period:.0f} ms (the poll period: 1 s)")
        browser.close()
    print(flood.communicate(timeout=120)[0].strip())


def main() -> None:
    profile = Path(os.environ["PXCLUSTER_DIR"]) / "profile_big"
    run("start", "-n", "0", "--profile", "big", "--dashboard")
    simulator = subprocess.Popen(
        [
            PY,
            "-m",
            "pxcluster.testing._simulator",
            "--file",
            str(profile / "security" / "engine.json"),
            "-n",
            str(ENGINES),
            "--sockets",
            "lean",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = wait_for_dashboard_url(ProfilePaths.for_profile("big", profile), 30)
        assert url is not None, "the dashboard did not start"
        measure(url)
    finally:
        simulator.terminate()
        simulator.wait(30)
        run("stop", "--profile", "big")


if __name__ == "__main__":
    main()
