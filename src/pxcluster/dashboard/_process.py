"""Dashboard layer: the dashboard process (``python -m pxcluster.dashboard``).

A small process of its own, a client of the controller, so the controller's loop serves
one MONITOR request a period and nothing else of the page's work. ``pxcontroller`` starts
it when the profile asks for a dashboard (``--dashboard`` or ``dashboard = true``).

It writes ``security/dashboard.json`` (its URL and pid) once it listens, and exits, removing
the file, on SIGTERM or SIGINT, when the controller's connection file goes (a clean stop),
when the controller has been gone for ``ORPHAN_GRACE`` seconds (killed and not restarted
in its place), or when another dashboard has taken the file (a restarted controller started
its own).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence

import tornado.httpserver
import tornado.netutil

from pxcluster._errors import NoClusterRunning, PxclusterError
from pxcluster.dashboard._server import SnapshotFeed, make_app, poll_forever
from pxcluster.monitor import (
    ClusterSnapshot,
    DashboardAddress,
    MonitorSource,
    dashboard_file,
    dashboard_token,
    running_dashboard,
)
from pxcluster.profile import ProfilePaths, read_client_connection

log = logging.getLogger("pxcluster.dashboard")

#: Seconds a dashboard outlives a controller that is gone (a restarted one takes its place
#: within this time, and the dashboard carries on with it).
ORPHAN_GRACE = 30.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pxcluster.dashboard",
        description="Serve a live web dashboard of a running cluster (started by pxcontroller "
        "with --dashboard; run it by hand to watch a cluster that was started without one).",
    )
    p.add_argument("--profile", default="default", help="profile name (default: %(default)s)")
    p.add_argument("--profile-dir", default=None, help="the profile's folder, instead")
    p.add_argument(
        "--ip",
        default="127.0.0.1",
        help="address to listen on (default %(default)s: this machine only)",
    )
    p.add_argument("--port", type=int, default=0, help="port (default: any free one)")
    p.add_argument("--period", type=float, default=1.0, help="seconds between updates (default 1)")
    p.add_argument(
        "--controller-pid",
        type=int,
        default=0,
        help="wait for the connection file of this controller (pxcontroller passes its own "
        "pid, so files a gone controller left are not taken for its)",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=60.0,
        help="seconds to wait for the controller's connection file (default 60)",
    )
    return p


def _wait_for_connection_file(paths: ProfilePaths, seconds: float, controller_pid: int) -> None:
    """Wait for the controller (started at the same moment) to write its connection file
    (that of controller ``controller_pid``, unless it is 0).

    Raises:
        NoClusterRunning: no such file within ``seconds``.
    """
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(PxclusterError, OSError, ValueError, KeyError):
            pid = read_client_connection(paths.client_file).controller_pid
            if controller_pid in (0, pid):
                return
        if time.monotonic() > deadline:
            raise NoClusterRunning(f"no controller wrote {paths.client_file} in {seconds} s")
        time.sleep(0.1)


class ControllerWatch:
    """Says when the dashboard should exit: see the module docstring."""

    def __init__(self, paths: ProfilePaths, stop: asyncio.Event) -> None:
        self.paths = paths
        self.stop = stop
        self._gone_since: float | None = None

    async def keep_going(self, snapshot: ClusterSnapshot) -> bool:
        if self.stop.is_set():
            return False
        if not self.paths.client_file.exists():
            log.info("the controller's connection file is gone: stopping")
            return False
        current = running_dashboard(self.paths)
        if current is None or current.pid != os.getpid():
            log.info("another dashboard serves this profile now: stopping")
            return False
        if snapshot.answering:
            self._gone_since = None
            return True
        now = time.monotonic()
        if self._controller_running():
            self._gone_since = None
        elif self._gone_since is None:
            self._gone_since = now
        elif now - self._gone_since > ORPHAN_GRACE:
            log.info("the controller has been gone for %.0f s: stopping", ORPHAN_GRACE)
            return False
        return True

    def _controller_running(self) -> bool:
        try:
            pid = read_client_connection(self.paths.client_file).controller_pid
            os.kill(pid, 0)
        except (PxclusterError, ValueError, KeyError, ProcessLookupError):
            return False
        except PermissionError:
            return True
        return True


async def serve(args: argparse.Namespace, paths: ProfilePaths) -> None:
    key = read_client_connection(paths.client_file).key
    feed = SnapshotFeed()
    app = make_app(dashboard_token(key), feed)
    sockets = tornado.netutil.bind_sockets(args.port, args.ip, family=socket.AF_INET)
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    host = socket.gethostname() if args.ip in ("0.0.0.0", "") else args.ip
    address = DashboardAddress(f"http://{host}:{port}", os.getpid())
    address.write(dashboard_file(paths))
    print(f"pxcluster dashboard: {address.url}", flush=True)
    log.info("dashboard of profile %r at %s", paths.name, address.url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    source = MonitorSource(paths.name, paths.dir)
    watch = ControllerWatch(paths, stop)
    poller = asyncio.ensure_future(poll_forever(source.poll, feed, args.period, watch.keep_going))
    try:
        await asyncio.wait(
            [poller, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        poller.cancel()
        server.stop()
        still_ours = running_dashboard(paths)
        if still_ours is not None and still_ours.pid == os.getpid():
            with contextlib.suppress(OSError):
                dashboard_file(paths).unlink()
        source.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
    )
    paths = ProfilePaths.for_profile(args.profile, args.profile_dir)
    try:
        _wait_for_connection_file(paths, args.wait, args.controller_pid)
        asyncio.run(serve(args, paths))
    except (PxclusterError, OSError) as exc:
        print(f"pxcluster dashboard: {exc}", file=sys.stderr)
        return 1
    return 0
