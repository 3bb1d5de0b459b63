"""CLI layer: ``pxengine``, one engine process."""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pxcluster._errors import NoClusterRunning
from pxcluster.cli._common import add_profile_flags, add_version_flag, profile_from, setup_logging
from pxcluster.engine import Engine, MpiStartupError, rank_from_environment, start_mpi
from pxcluster.profile import (
    ARRAY_INDEX_ENV,
    ENGINE_CONNECTION_ENV,
    EngineConnection,
    engine_connection_from_json,
    read_engine_connection,
)
from pxcluster.relay import RelayAddresses

#: Set by ``pxrelay --engines`` for the engines it starts: its pid. Such an engine asks to be
#: killed when the relay dies (so the relay takes its engines with it).
RELAY_PID_ENV = "PXCLUSTER_RELAY_PID"


def _die_with_relay() -> None:
    """Be killed when the relay that started us dies (Linux ``PR_SET_PDEATHSIG``); exit now
    if it is gone already."""
    relay = os.environ.pop(RELAY_PID_ENV, "")
    if not relay.isdigit() or not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != int(relay):
        sys.exit("pxengine: the relay that started this engine is gone")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pxengine",
        description="Run one pxcluster engine: connect to a controller, register, and run "
        "the code clients send, until the controller stops it.",
    )
    add_profile_flags(p)
    add_version_flag(p)
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
        "--relay",
        type=Path,
        default=None,
        metavar="FOLDER",
        help="connect through the per-host relay listening in FOLDER (pxrelay --folder) "
        "instead of to the controller directly",
    )
    p.add_argument(
        "--exit-when-declared-dead",
        action="store_true",
        help="exit (code 3) if the controller declared this engine dead while it was stopped "
        "or cut off, instead of joining again as a new engine (its namespace kept)",
    )
    p.add_argument(
        "--mpi",
        metavar="MODULE",
        default=None,
        help="initialise MPI before any user code by importing MODULE: mpi4py (then "
        "`from mpi4py import MPI` works on the engines), pytrilinos, or any module that "
        "initialises MPI on import. Under mpiexec, engine ids follow the MPI ranks.",
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


def connection_from(
    args: argparse.Namespace, default_file: Path, wait: float = 0.0
) -> EngineConnection:
    """Where the controller is: ``--file``, else the connection the launcher put in the
    environment (``PXCLUSTER_ENGINE_CONNECTION``: no shared filesystem needed), else the
    profile's engine file; with ``--controller-ip/--controller-port`` applied.

    An engine started before its controller waits up to ``wait`` seconds for the file.
    """
    # Taken out of the environment: user code and its subprocesses (a nested pxcluster,
    # say) neither see the key nor mistake this connection for their own.
    text = os.environ.pop(ENGINE_CONNECTION_ENV, "")
    path = args.file or default_file
    try:
        if text and args.file is None:
            conn = engine_connection_from_json(text, f"${ENGINE_CONNECTION_ENV}")
        else:
            conn = _wait_for_file(path, wait)
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
        # Only the address changes: the key, the heartbeat ports and the controller's
        # CurveZMQ public key stay those of the file.
        conn = dataclasses.replace(conn, url=f"{scheme}://{host}:{port}")
    return conn


def _wait_for_file(path: Path, wait: float) -> EngineConnection:
    """Read the engine file at ``path``, waiting up to ``wait`` s for it to appear."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return read_engine_connection(path)
        except NoClusterRunning:
            if path.exists() or time.monotonic() >= deadline:
                raise
        time.sleep(0.1)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    paths, config = profile_from(args)
    log_file = args.log_file
    if args.log_to_file and log_file is None:
        log_file = paths.log / f"engine-{os.getpid()}.log"
    setup_logging(args.log_level, log_file, redirect_output=args.log_to_file)
    timeout = args.controller_timeout or config.controller_timeout
    world = rank_from_environment()
    if args.mpi:
        try:
            world = start_mpi(args.mpi)  # MPI_Init, in the main thread, before user code
        except MpiStartupError as exc:
            sys.exit(f"pxengine: {exc}")
    connection = connection_from(args, paths.engine_file, wait=timeout)
    requested = world.rank if world is not None else -1
    if requested >= 0:  # the rank is this engine's index in its launcher's job
        os.environ.setdefault(ARRAY_INDEX_ENV, str(requested))
    heartbeat_urls = None
    if args.relay is not None:
        _die_with_relay()  # the relay is local: no CurveZMQ on its Unix sockets
        engine_url, ping_url, pong_url = RelayAddresses(args.relay).urls()
        connection = dataclasses.replace(connection, url=engine_url, curve_serverkey="")
        heartbeat_urls = (ping_url, pong_url)
    return Engine(
        connection,
        controller_timeout=timeout,
        requested_id=requested,
        rejoin_when_declared_dead=not args.exit_when_declared_dead,
        heartbeat_urls=heartbeat_urls,
    ).run()


if __name__ == "__main__":
    raise SystemExit(main())
