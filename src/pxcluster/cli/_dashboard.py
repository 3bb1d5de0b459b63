"""CLI layer: the controller's dashboard process, started and stopped with it.

``pxcontroller --dashboard`` (or ``dashboard = true``) runs ``python -m pxcluster.dashboard``
beside itself: a separate process, so serving pages never takes a turn of the controller's
loop (it asks the controller for one MONITOR snapshot a second, like any client).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import time

from pxcluster.monitor import dashboard_url
from pxcluster.profile import ClusterConfig, ProfilePaths, load_config

log = logging.getLogger("pxcluster.controller")


def start_dashboard(paths: ProfilePaths, config: ClusterConfig) -> subprocess.Popen[bytes] | None:
    """Start the dashboard process of this profile, or None (and say why) when the
    ``dashboard`` extra is not installed."""
    if importlib.util.find_spec("tornado") is None:
        why = "the dashboard needs Tornado: pip install 'pxcluster[dashboard]'"
        log.error(why)
        print(f"pxcontroller: no dashboard: {why}", file=sys.stderr, flush=True)
        return None
    command = [
        sys.executable,
        "-m",
        "pxcluster.dashboard",
        "--profile",
        paths.name,
        "--profile-dir",
        str(paths.dir),
        "--ip",
        config.dashboard_ip,
        "--port",
        str(config.dashboard_port),
        "--controller-pid",
        str(os.getpid()),  # the controller: wait for its own connection file
    ]
    log_file = open(paths.log / "dashboard.log", "ab")  # noqa: SIM115 - the child keeps it
    with log_file:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file)


def stop_dashboard(process: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> None:
    """Stop the dashboard process (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def dashboard_wanted(paths: ProfilePaths, flag: bool | None) -> bool:
    """True if ``--dashboard`` was given or the profile's pxcluster.toml says so."""
    if flag:
        return True
    try:
        return load_config(paths.config_file).dashboard
    except ValueError:
        return False  # the controller itself reports a bad file


def wait_for_dashboard_url(paths: ProfilePaths, timeout: float) -> str | None:
    """The dashboard's address with its token once it listens, or None after ``timeout``
    (at once where the ``dashboard`` extra is missing: none will start)."""
    if importlib.util.find_spec("tornado") is None:
        return None
    deadline = time.monotonic() + timeout
    while True:
        url = dashboard_url(paths)
        if url is not None or time.monotonic() > deadline:
            return url
        time.sleep(0.1)
