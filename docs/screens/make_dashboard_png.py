"""Make docs/screens/dashboard.png: a 4-engine cluster with its dashboard, a few seconds of
tasks (some failing), one engine killed, the page shot in headless Chromium.

    .venv/bin/python docs/screens/make_dashboard_png.py
"""

import os
import signal
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from pxcluster import TaskClient
from pxcluster.cli._dashboard import wait_for_dashboard_url
from pxcluster.client import MapTask
from pxcluster.profile import ProfilePaths
from pxcluster.testing import cluster_in

OUT = Path(__file__).with_name("dashboard.png")


def work(x: int) -> int:
    import time

    time.sleep(0.002 * (x % 7))
    if x % 97 == 0:
        raise ValueError(f"input {x} is not welcome here")
    return x * x


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "profile_demo"
        with cluster_in(folder, n=4, heartbeat_timeout=2.0, controller_args=["--dashboard"]) as c:
            url = wait_for_dashboard_url(ProfilePaths.for_profile("demo", folder), 30.0)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(url)
                tc = TaskClient(profile_dir=folder)
                began = time.monotonic()
                x = 1
                while time.monotonic() - began < 14:
                    ids = [tc.run(MapTask(work, args=(x + i,))) for i in range(200)]
                    tc.barrier(ids, timeout=60)
                    x += 200
                    if x == 1601:
                        os.kill(c.engine_pids[3], signal.SIGKILL)
                page.click("#errors details summary")
                page.screenshot(path=str(OUT), full_page=True)
                browser.close()
                tc.close()
    print(f"wrote {OUT}")  # noqa: T201 - a script: its output is the point


if __name__ == "__main__":
    main()
