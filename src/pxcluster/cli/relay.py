"""CLI layer: ``pxrelay``, the per-host relay between this host's engines and the controller.

``pxrelay --engines 8`` starts the relay and eight engines behind it (its children, which
die with it); ``pxrelay --folder DIR`` alone relays for engines started by hand with
``pxengine --relay DIR``. Where the controller is comes as for ``pxengine`` (``--file``,
the connection in the environment, or the profile's engine file).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from pxcluster.cli._common import add_profile_flags, add_version_flag, profile_from, setup_logging
from pxcluster.cli.engine import RELAY_PID_ENV, connection_from
from pxcluster.profile import ENGINE_CONNECTION_ENV, EngineConnection, connection_json
from pxcluster.relay import Relay, RelayAddresses

#: Seconds stopping engines get before they are killed, when the relay stops.
_STOP_GRACE = 5.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pxrelay",
        description="Relay between the engines of this host and the controller: one "
        "connection of each kind to the controller for all of them, and a push to many "
        "of them crosses the network once. Arguments after `--` go to each engine.",
    )
    add_profile_flags(p)
    add_version_flag(p)
    p.add_argument(
        "--file", type=Path, default=None, help="the controller's engine connection file"
    )
    p.add_argument("--controller-ip", default=None, help="controller address override")
    p.add_argument("--controller-port", type=int, default=None, help="engine port override")
    p.add_argument(
        "--controller-timeout",
        type=float,
        default=None,
        help="stop after this many seconds without a controller (default 30)",
    )
    p.add_argument(
        "--folder",
        type=Path,
        default=None,
        help="where to listen for engines (Unix sockets; default: a new private folder in "
        "the temporary directory). Engines started by hand: pxengine --relay FOLDER",
    )
    p.add_argument(
        "--engines",
        type=int,
        default=0,
        metavar="N",
        help="start N engines behind this relay (they stop with it)",
    )
    p.add_argument("--log-file", type=Path, default=None, help="log to this file")
    p.add_argument(
        "--log-to-file",
        action="store_true",
        help="log (and stdout, stderr) to the profile's log/relay-PID.log",
    )
    return p


class EngineStarter(threading.Thread):
    """Starts the relay's engines in the background, so the relay serves the first ones
    (their registrations) while the others are still being started.

    Each engine gets ``RELAY_PID_ENV``: ``pxengine --relay`` then asks the kernel to kill
    it when the relay dies (Linux), so a relay that dies takes its engines with it, as the
    controller declares them dead with it. The kernel sends that signal when the *thread*
    that started the engine ends, so this thread lives until the engines are stopped
    (``release``).
    """

    def __init__(
        self, count: int, folder: Path, connection: EngineConnection, engine_args: Sequence[str]
    ) -> None:
        super().__init__(name="pxrelay-starter", daemon=True)
        self.count = count
        self.children: list[subprocess.Popen[bytes]] = []
        self._env = {
            **os.environ,
            ENGINE_CONNECTION_ENV: connection_json(connection),
            RELAY_PID_ENV: str(os.getpid()),
        }
        self._argv = [
            sys.executable,
            "-m",
            "pxcluster.cli.engine",
            "--relay",
            str(folder),
            *engine_args,
        ]
        self._no_more = threading.Event()
        self._release = threading.Event()
        self.done_starting = threading.Event()

    def run(self) -> None:
        try:
            for _ in range(self.count):
                if self._no_more.is_set():
                    break
                # A session of its own, as the local launcher gives each engine: the
                # scheduler's autogroups then share the CPU between engines, not between
                # the relay's whole group and everything else (measured: 32 engines behind
                # a relay on a loaded machine took several times longer to start).
                child = subprocess.Popen(
                    self._argv, env=self._env, stdin=subprocess.DEVNULL, start_new_session=True
                )
                self.children.append(child)
        finally:
            self.done_starting.set()
        self._release.wait()

    def all_exited(self) -> bool:
        """Every engine was started and has exited."""
        return self.done_starting.is_set() and all(c.poll() is not None for c in self.children)

    def stop_starting(self) -> list[subprocess.Popen[bytes]]:
        """Start no more; the engines started."""
        self._no_more.set()
        self.done_starting.wait()
        return self.children

    def release(self) -> None:
        """End the thread (after its engines were stopped: they would be killed now)."""
        self._release.set()
        self.join()


def _stop_engines(children: list[subprocess.Popen[bytes]], told: bool) -> None:
    """End the engines: those the controller told to stop (``told``) get time to."""
    if told:
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=_STOP_GRACE)
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=_STOP_GRACE)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    engine_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, engine_args = argv[:cut], argv[cut + 1 :]
    args = parser().parse_args(argv)
    if args.engines < 0:
        sys.exit("pxrelay: --engines must be 0 or more")
    paths, config = profile_from(args)
    log_file = args.log_file
    if args.log_to_file and log_file is None:
        log_file = paths.log / f"relay-{os.getpid()}.log"
    setup_logging(args.log_level, log_file, redirect_output=args.log_to_file)
    timeout = args.controller_timeout or config.controller_timeout
    connection = connection_from(args, paths.engine_file, wait=timeout)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="pxrelay-"))
    try:
        relay = Relay(connection, RelayAddresses(folder), controller_timeout=timeout)
    except OSError as exc:
        sys.exit(f"pxrelay: {exc}")
    signal.signal(signal.SIGTERM, lambda *_: relay.request_stop())
    signal.signal(signal.SIGINT, lambda *_: relay.request_stop())
    print(f"pxrelay: engines connect with pxengine --relay {folder}", flush=True)
    starter = EngineStarter(args.engines, folder, connection, engine_args)
    starter.start()
    try:
        stats = relay.serve(until=starter.all_exited if args.engines else lambda: False)
    finally:
        _stop_engines(starter.stop_starting(), relay.controller_stopped)
        starter.release()
        relay.close()
        if args.folder is None:
            folder.rmdir() if folder.exists() and not any(folder.iterdir()) else None
    print(json.dumps(dataclasses.asdict(stats)), flush=True)  # the last line: counts
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
