"""CLI layer: ``pxcontroller``, the controller process."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from pxcluster._errors import NoClusterRunning
from pxcluster.cli._common import add_profile_flags, add_version_flag, profile_from, setup_logging
from pxcluster.cli._dashboard import start_dashboard, stop_dashboard
from pxcluster.controller import ControllerServer
from pxcluster.launchers import ProcessRef
from pxcluster.profile import (
    ProfilePaths,
    default_location,
    read_client_connection,
    resolve_ip,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pxcontroller",
        description="Run a pxcluster controller in the foreground. It binds one port for "
        "clients and one for engines, and writes their connection files (mode 0600) into "
        "the profile's security/ folder. If it finds files left by a controller that was "
        "killed, it takes over that controller's ports and keys, so its engines and clients "
        "reconnect to this one.",
    )
    add_profile_flags(p)
    add_version_flag(p)
    p.add_argument(
        "--ip",
        default=None,
        help="address to listen on (default 127.0.0.1: this machine only; "
        "0.0.0.0: every interface), or an interface name (eth1, ib0)",
    )
    p.add_argument(
        "--location",
        default=None,
        help="the address engines and clients should use, written into the connection "
        "files (default: the --ip address; with 0.0.0.0, this host's first non-loopback "
        "address); an interface name works too",
    )
    p.add_argument("--client-port", type=int, default=None, help="client port (default: any free)")
    p.add_argument("--engine-port", type=int, default=None, help="engine port (default: any free)")
    p.add_argument(
        "--heartbeat-period",
        type=float,
        default=None,
        help="seconds between heartbeat pings (default 0.5)",
    )
    p.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=None,
        help="an engine silent this many seconds is declared dead (default 3)",
    )
    p.add_argument(
        "--curve",
        action="store_true",
        default=None,
        help="encrypt every connection with CurveZMQ (engines and clients learn the "
        "controller's public key from the connection files); use it between hosts on a "
        "network you do not trust",
    )
    p.add_argument(
        "--dashboard",
        action="store_true",
        default=None,
        help="also serve the live web dashboard (a process of its own; `pxcluster list` "
        "prints its address with its token)",
    )
    p.add_argument(
        "--dashboard-port",
        type=int,
        default=None,
        help="the dashboard's port (default: any free one)",
    )
    p.add_argument(
        "--log-file",
        type=Path,
        default=None,
        help="log here (default: the profile's log/controller.log)",
    )
    return p


def refuse_if_live(paths: ProfilePaths) -> None:
    """Exit if the profile's connection file names a controller that still runs: a second
    one would replace its connection files (and remove them on exit), leaving the live
    cluster unreachable. A controller that is gone is taken over instead (see the server)."""
    try:
        connection = read_client_connection(paths.client_file)
    except NoClusterRunning:
        return
    pid = connection.controller_pid
    if pid <= 0 or pid == os.getpid() or not ProcessRef.of(pid).alive():
        return
    usual = ProfilePaths.for_profile(paths.name).dir == paths.dir
    where = f"--profile {paths.name}" if usual else f"--profile-dir {paths.dir}"
    sys.exit(
        f"pxcontroller: a controller (pid {pid}) already runs in this profile ({paths.dir}); "
        f"use it, stop it first (`pxcluster stop {where}`), or choose another profile"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    paths, config = profile_from(args)
    config = config.replace(
        ip=args.ip,
        location=args.location,
        client_port=args.client_port,
        engine_port=args.engine_port,
        heartbeat_period=args.heartbeat_period,
        heartbeat_timeout=args.heartbeat_timeout,
        curve=args.curve,
        dashboard=args.dashboard,
        dashboard_port=args.dashboard_port,
    )
    try:
        ip = resolve_ip(config.ip)
        location = resolve_ip(config.location) if config.location else default_location(ip)
    except ValueError as exc:
        sys.exit(f"pxcontroller: {exc}")
    config = config.replace(ip=ip, location=location)
    refuse_if_live(paths)
    setup_logging(args.log_level, args.log_file or paths.log / "controller.log")
    server = ControllerServer(config, paths)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: server.request_stop())
    print(
        f"pxcontroller: clients at {server.client_url}, engines at {server.engine_url}", flush=True
    )
    dashboard = start_dashboard(paths, config) if config.dashboard else None
    try:
        server.serve_forever()
    finally:
        stop_dashboard(dashboard)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
