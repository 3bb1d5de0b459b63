"""Pytest plugin: a real JupyterLab server and headless Chromium, for notebook page tests.

One JupyterLab per test session, on 127.0.0.1 with a random token, its config, data,
runtime and notebook folders all in a temporary directory; stopped (and waited for) at the
end of the session, even when a test failed. Chromium is Debian's (``/usr/bin/chromium``,
installed by ``tests/services/install.sh``), driven by Playwright with ``executable_path``:
Playwright's own browser download is never used.

The server's kernels inherit ``PXCLUSTER_DIR`` = ``<tmp>/pxroot``, so a cluster started
in ``jupyter_server.pxroot / "profile_default"`` is the one a notebook's
``MultiEngineClient()`` connects to.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
#: Chromium flags that work on this machine (see shared/notes/real-components.md, section 6).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT = 90.0  # a loaded 2-core machine takes 5-20 s to bring JupyterLab up


@dataclasses.dataclass(frozen=True)
class JupyterServer:
    """A running JupyterLab: where it listens, its token and the folder it serves."""

    url: str
    token: str
    root: Path
    pxroot: Path

    def lab_url(self, notebook: str) -> str:
        return f"{self.url}/lab/tree/{notebook}?token={self.token}"

    def api(self, path: str) -> Any:
        request = urllib.request.Request(
            f"{self.url}{path}", headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


def _require(module: str) -> None:
    """Fail (never skip) with what to install when ``module`` is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        pytest.fail(f"{module} is missing: pip install -e '.[test]'")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_up(server: JupyterServer, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited ({process.returncode}):\n{log.read_text()}")
        try:
            server.api("/api/status")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            process_wait = min(0.5, deadline - time.monotonic())
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(process_wait, 0.01))
    raise RuntimeError(f"jupyter lab did not answer within {START_TIMEOUT} s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def jupyter_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """A JupyterLab server for the whole session (started on first use)."""
    _require("jupyterlab")
    base = tmp_path_factory.mktemp("jupyter")
    root, pxroot = base / "notebooks", base / "pxroot"
    root.mkdir()
    pxroot.mkdir()
    token = secrets.token_hex(16)
    port = _free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_DATA_DIR": str(base / "data"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "IPYTHONDIR": str(base / "ipython"),
        "PXCLUSTER_DIR": str(pxroot),
    }
    log = base / "jupyter.log"
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=",
        "--LabServerApp.workspaces_dir=" + str(base / "workspaces"),
        "--allow-root",  # tests and CI run as root here
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    server = JupyterServer(f"http://127.0.0.1:{port}", token, root, pxroot)
    try:
        _wait_until_up(server, process, log)
        yield server
    finally:
        _stop(server, process)


def _stop(server: JupyterServer, process: subprocess.Popen[bytes]) -> None:
    """Shut the kernels and the server down; kill them if they do not go."""
    if process.poll() is None:
        try:
            for kernel in server.api("/api/kernels"):
                request = urllib.request.Request(
                    f"{server.url}/api/kernels/{kernel['id']}",
                    method="DELETE",
                    headers={"Authorization": f"token {server.token}"},
                )
                urllib.request.urlopen(request, timeout=10).close()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Headless Chromium (Debian's) through Playwright, for one test module: Playwright's
    sync API cannot run twice at once in a thread, and other modules start their own."""
    _require("playwright")
    from playwright import sync_api

    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: run tests/services/install.sh (as root)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()
