"""The web dashboard in a real headless Chromium (Playwright driving Debian's chromium),
against a real cluster started with --dashboard: what a user sees, and what a stranger gets.

Set PXCLUSTER_SCREENSHOT=path.png to save the page as the first test last sees it (the
README's docs/screens/dashboard.png is made that way).
"""

import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import pxcluster.dashboard
from pxcluster import CompositeError
from pxcluster.cli._dashboard import wait_for_dashboard_url
from pxcluster.monitor import running_dashboard
from pxcluster.profile import ProfilePaths
from pxcluster.testing import cluster_in, leftover_processes, wait_for

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run tests/services/install.sh (installs chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"],
        )
        yield b
        b.close()


@pytest.fixture
def dashboard(tmp_path):
    """A 2-engine cluster with its dashboard, listed under PXCLUSTER_DIR; yields (cluster,
    url with token); afterwards, the dashboard process must be gone with the cluster."""
    folder = tmp_path / "pxroot" / "profile_dash"
    with cluster_in(folder, n=2, heartbeat_timeout=2.0, controller_args=["--dashboard"]) as c:
        paths = ProfilePaths.for_profile("dash", folder)
        url = wait_for_dashboard_url(paths, timeout=30.0)
        assert url is not None, (folder / "log" / "dashboard.log").read_text()
        dashboard_pid = running_dashboard(paths).pid
        yield c, url
    assert leftover_processes([dashboard_pid]) == []


def test_page_shows_engines_tasks_errors_and_a_dead_engine(dashboard, browser):
    cluster, url = dashboard
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    script_errors = []
    page.on("pageerror", lambda error: script_errors.append(error))
    page.goto(url)
    assert page.url.endswith("/")  # the token went into a cookie, out of the address bar
    page.wait_for_selector('#engines tr[data-state="idle"] >> nth=1', timeout=20_000)
    # read in one go: the rows are redrawn every second
    pids = set(page.eval_on_selector_all("#engines tbody tr", "rs => rs.map(r => +r.dataset.pid)"))
    assert pids == set(cluster.engine_pids)
    assert page.inner_text("#status").startswith("live")

    mec = cluster.client()
    mec.execute("import time; time.sleep(0.2)")
    with pytest.raises(CompositeError):
        mec.execute("1/0", targets=[0])
    page.wait_for_selector('#tasks tr[data-status="ERROR"]', timeout=20_000)
    assert page.locator('#tasks tr[data-status="OK"]').count() >= 2  # the sleep, on each engine
    # the timeline drew a bar for each of the three finished requests
    # (polled from here: the page's CSP forbids the eval that wait_for_function would need)
    wait_for(lambda: int(page.get_attribute("#timeline", "data-bars") or 0) >= 3, timeout=20,
             message="three bars on the timeline")
    summary = page.locator("#errors details summary").first  # a locator: redrawn rows are
    summary.wait_for(timeout=20_000)  # found again at each use
    assert "engine 0 EXECUTE: ZeroDivisionError: division by zero" in summary.inner_text()
    summary.click()
    page.wait_for_selector("#errors details[open] pre", timeout=20_000)
    assert "1/0" in page.locator("#errors details pre").first.text_content()
    assert int(page.inner_text("#finished")) >= 3

    victim = cluster.engine_pids[1]
    os.kill(victim, signal.SIGKILL)
    page.wait_for_selector(f'#engines tr[data-state="dead"][data-pid="{victim}"]',
                           timeout=30_000)
    assert page.locator('#engines tr[data-state="idle"]').count() == 1
    shot = os.environ.get("PXCLUSTER_SCREENSHOT")
    if shot:
        wait_for(lambda: int(page.get_attribute("body", "data-updates") or 0) > 3, timeout=20)
        page.screenshot(path=shot, full_page=True)
    assert "waiting" in page.inner_text("#throughput-chart")  # the chart's second series
    assert script_errors == []
    page.close()
    mec.close()


def test_requests_without_the_token_are_refused(dashboard, browser):
    _, url = dashboard
    base, token = re.fullmatch(r"(http://127\.0\.0\.1:\d+)/\?token=([0-9a-f]{32})", url).groups()
    for path in ("/", "/api/snapshot", "/events", "/static/app.js", "/?token=" + "0" * 32):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + path, timeout=10)
        assert refused.value.code == 403, path
        assert b"needs its token" in refused.value.read()
    bearer = urllib.request.Request(base + "/api/snapshot",
                                    headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(bearer, timeout=10) as answer:
        assert answer.status == 200
    page = browser.new_page()
    page.goto(base + "/")
    assert "403" in page.inner_text("body")
    page.close()


def test_list_prints_the_address_with_the_token(dashboard):
    _, url = dashboard
    listed = subprocess.run([sys.executable, "-m", "pxcluster.cli.cluster", "list"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert listed.returncode == 0, listed.stderr
    assert f"dashboard: {url}" in listed.stdout


def test_page_loads_nothing_from_the_network():
    """Everything the page loads comes from the dashboard itself (no CDN), and the vendored
    chart library keeps its licence."""
    static = Path(pxcluster.dashboard.__file__).parent / "static"
    for name in ("index.html", "app.js", "style.css"):
        assert not re.search(r"https?://", (static / name).read_text()), name
    assert (static / "vendor" / "uplot" / "LICENSE").read_text().startswith("The MIT License")


def test_a_second_dashboard_replaces_the_first(dashboard, tmp_path):
    """As when a restarted controller starts its own: the old one leaves, none is orphaned."""
    paths = ProfilePaths.for_profile("dash", tmp_path / "pxroot" / "profile_dash")
    first = running_dashboard(paths).pid
    second = subprocess.Popen([sys.executable, "-m", "pxcluster.dashboard", "--profile-dir",
                               str(paths.dir)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        # it is the controller's child: gone means a zombie until the controller reaps it
        wait_for(lambda: leftover_processes([first]) == [], timeout=30,
                 message="the first dashboard to exit")
        address = running_dashboard(paths)
        assert address is not None
        assert address.pid == second.pid
    finally:
        second.terminate()
        second.wait(timeout=30)
    assert running_dashboard(paths) is None  # it removed its file on the way out


def test_start_with_dashboard_true_in_the_config_prints_the_address_and_stop_ends_it(tmp_path):
    folder = tmp_path / "pxroot" / "profile_cfg"
    folder.mkdir(parents=True)
    (folder / "pxcluster.toml").write_text("[controller]\ndashboard = true\n")
    cli = [sys.executable, "-m", "pxcluster.cli.cluster"]
    try:
        started = subprocess.run([*cli, "start", "-n", "1", "--profile", "cfg"],
                                 capture_output=True, text=True, timeout=90, check=False)
        assert started.returncode == 0, started.stderr
        paths = ProfilePaths.for_profile("cfg", folder)
        dashboard_pid = running_dashboard(paths).pid
        url = re.search(r"Dashboard: (\S+)", started.stdout)[1]
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url.replace("/?", "/api/snapshot?"), timeout=10) as answer:
            assert answer.status == 200
    finally:
        stopped = subprocess.run([*cli, "stop", "--profile", "cfg"], capture_output=True,
                                 text=True, timeout=90, check=False)
    assert stopped.returncode == 0, stopped.stderr
    wait_for(lambda: leftover_processes([dashboard_pid]) == [], timeout=30,
             message="the dashboard to stop with the cluster")
    assert running_dashboard(paths) is None


def test_a_dashboard_outlives_a_gone_controller_only_for_the_grace_period(tmp_path, monkeypatch):
    """ControllerWatch on files a killed controller left: no answer and no such process for
    longer than ORPHAN_GRACE means stop; a clean stop (files gone) means stop at once."""
    import asyncio
    import concurrent.futures

    from pxcluster.dashboard import _process
    from pxcluster.monitor import ClusterSnapshot, DashboardAddress, dashboard_file
    from pxcluster.profile import ClientConnection, write_connection

    paths = ProfilePaths.for_profile("gone", tmp_path / "profile_gone").ensure()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True, timeout=30)
    write_connection(paths.client_file,
                     ClientConnection("tcp://127.0.0.1:1", b"k" * 32, int(dead.stdout)))
    DashboardAddress("http://127.0.0.1:1", os.getpid()).write(dashboard_file(paths))
    silent = ClusterSnapshot(0.0, "gone", "tcp://127.0.0.1:1", False, problem="no answer")
    watch = _process.ControllerWatch(paths, asyncio.Event())
    monkeypatch.setattr(_process, "ORPHAN_GRACE", 0.0)
    def keep_going(watch):  # in a thread: Playwright's loop runs in this one
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, watch.keep_going(silent)).result(timeout=30)

    assert keep_going(watch)  # the grace starts now
    assert not keep_going(watch)  # ... and has passed
    fresh = _process.ControllerWatch(paths, asyncio.Event())
    paths.client_file.unlink()
    assert not keep_going(fresh)
