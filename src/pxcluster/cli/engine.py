"""CLI layer: ``pxengine``, one engine process."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pxcluster._errors import NoClusterRunning
from pxcluster.cli._common import add_profile_flags, profile_from, setup_logging
from pxcluster.engine import Engine
from pxcluster.profile import EngineConnection, read_engine_connection


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pxengine",
        description="Run one pxcluster engine: connect to a controller, register, and run "
        "the code clients send, until the controller stops it.",
    )
    add_profile_flags(p)
    p.add_argument(
        "--file",
        type=Path,
        default=None,
        help="the controller's engine connection file "
        "(default: the profile's security/engine.json)",
    )
    p.add_argument(
        "--controller-ip",
        default=None,
        help="controller address, overriding the one in the connection file",
    )
    p.add_argument(
        "--controller-port",
        type=int,
        default=None,
        help="controller engine port, overriding the one in the connection file",
    )
    p.add_argument(
        "--controller-timeout",
        type=float,
        default=None,
        help="exit after this many seconds without a controller (default 30)",
    )
    p.add_argument(
        "--log-file",
        type=Path,
        default=None,
        help="log to this file (default: stderr, or log/engine-PID.log with --log-to-file)",
    )
    p.add_argument(
        "--log-to-file",
        action="store_true",
        help="send log, stdout and stderr to the profile's log/engine-PID.log",
    )
    return p


def connection_from(args: argparse.Namespace, default_file: Path) -> EngineConnection:
    """The connection file's settings, with ``--controller-ip/--controller-port`` applied."""
    try:
        conn = read_engine_connection(args.file or default_file)
    except NoClusterRunning as exc:
        sys.exit(
            f"pxengine: {exc}\n(the engine needs the key in that file; "
            "pass --file with a copy of the controller's security/engine.json)"
        )
    if args.controller_ip or args.controller_port:
        scheme, rest = conn.url.split("://", 1)
        host, port = rest.rsplit(":", 1)
        host = args.controller_ip or host
        port = str(args.controller_port or port)
        conn = EngineConnection(
            f"{scheme}://{host}:{port}", conn.key, conn.controller_pid, conn.profile
        )
    return conn


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    paths, config = profile_from(args)
    log_file = args.log_file
    if args.log_to_file and log_file is None:
        log_file = paths.log / f"engine-{os.getpid()}.log"
    setup_logging(args.log_level, log_file, redirect_output=args.log_to_file)
    connection = connection_from(args, paths.engine_file)
    timeout = args.controller_timeout or config.controller_timeout
    return Engine(connection, controller_timeout=timeout).run()


if __name__ == "__main__":
    raise SystemExit(main())
