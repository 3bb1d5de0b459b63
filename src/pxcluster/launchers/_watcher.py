"""Launchers layer: the keeper process, which relaunches a cluster's engines that die and
signals, through their launcher, engines the controller cannot reach.

``pxcluster start --restart N`` returns once the engines are ready, and a script or notebook
that made ``Cluster(restart=N)`` may end or leave; something must stay to watch. That is
one small process per cluster, started detached (its own session, output to
``log/keeper.log``)::

    python -m pxcluster.launchers._keeperd     # its settings as JSON on stdin

It holds the launchers (made from the settings the cluster was started with: queue,
walltime, hosts, ...) and runs ``EngineKeeper.check_once`` every ``period`` seconds. It
records itself in ``pid/keeper.json`` (``KeeperStatus``: pid, start time, restarts used,
what it relaunched), which ``pxcluster list`` shows and ``stop_keeper`` reads.

It ends on SIGTERM (``pxcluster stop`` / ``Cluster.stop`` send it first, and wait, so it
cannot relaunch anything while the cluster stops; a launch under way is finished and
recorded first, so stop cancels it too), when the cluster's record is gone or belongs to
another cluster, and when neither the controller nor any engine is left. It survives the
controller's restart: while the controller does not answer it relaunches nothing and waits.

Clusters whose engines run on other hosts (ssh, slurm, sge, pbs; no relay) get a keeper
even without ``--restart``: it sends the kills and interrupts the controller could not
(MONITOR's ``signal_wanted``) through the launcher and reports kills back (LAUNCHER_ENDED).

Cost: one Python process with pyzmq (30 MiB RSS, 17 MiB of its own; 0.15-0.3 % of a core:
``benchmarks/keeper_cost.py``), waking every ``period`` seconds (0.5 where it signals
engines on other hosts, else 1) for one MONITOR request; launchers are asked only when an
engine is missing from the controller's list.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pxcluster._errors import LaunchFailed, PxclusterError
from pxcluster.client._core import ClientCore
from pxcluster.launchers._keeper import EngineKeeper
from pxcluster.launchers._keeper_files import KeeperStatus, keeper_file
from pxcluster.launchers._launcher import LaunchHandle
from pxcluster.launchers._processes import ProcessRef, log_tail, terminate, wait_gone
from pxcluster.profile import LauncherConfig, ProfilePaths, read_client_connection
from pxcluster.wire import MsgType

if TYPE_CHECKING:
    from pxcluster.launchers._cluster import Cluster

log = logging.getLogger("pxcluster.keeper")

#: ``since`` for a MONITOR that wants no activity events: engines and lost engines only.
_NO_EVENTS = 2**62
#: Seconds a MONITOR may take before the controller counts as not answering.
_MONITOR_TIMEOUT = 5.0


class ControllerMonitor:
    """MONITOR requests to a profile's controller over one kept connection, made again
    after any failure (the controller restarted, maybe on new ports)."""

    def __init__(self, paths: ProfilePaths) -> None:
        self.paths = paths
        self._core: ClientCore | None = None

    def __call__(self) -> Mapping[str, Any] | None:
        try:
            if self._core is None:
                self._core = ClientCore(read_client_connection(self.paths.client_file), 5.0)
            reply = self._core.call_controller(
                MsgType.MONITOR, {"since": _NO_EVENTS}, "monitor", _MONITOR_TIMEOUT
            )
        except (PxclusterError, OSError) as exc:
            log.debug("the controller does not answer: %s", exc)
            self.close()
            return None
        return reply.content

    def launcher_ended(self, engines: list[int], how: str) -> None:
        """Tell the controller its launcher killed these engines (LAUNCHER_ENDED)."""
        try:
            if self._core is None:
                self._core = ClientCore(read_client_connection(self.paths.client_file), 5.0)
            content = {"engines": engines, "how": how}
            self._core.call_controller(MsgType.LAUNCHER_ENDED, content, "ended", _MONITOR_TIMEOUT)
        except (PxclusterError, OSError) as exc:
            log.warning("could not tell the controller of engines %s ended: %s", engines, exc)
            self.close()

    def close(self) -> None:
        if self._core is not None:
            with contextlib.suppress(Exception):
                self._core.close()
            self._core = None


# -- the keeper process ----------------------------------------------------------------------


def main() -> int:
    """The keeper process: settings on stdin (see ``start_keeper``)."""
    from pxcluster.launchers._cluster import Cluster

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s keeper %(levelname)s %(message)s", stream=sys.stderr
    )
    spec = json.loads(sys.stdin.read())
    stop = threading.Event()
    keeper: EngineKeeper | None = None

    def on_term(signum: int, frame: object) -> None:
        stop.set()
        if keeper is not None:
            keeper.stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # its own session; stop sends SIGTERM
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    options = {name: _launcher_config(opts) for name, opts in spec["options"].items()}
    cluster = Cluster.attach(spec["profile"], spec["profile_dir"], spec["timeout"], options)
    cluster.engine_args = list(spec["engine_args"])
    monitor = ControllerMonitor(cluster.paths)
    keeper = EngineKeeper(cluster, monitor, int(spec["restart"]))
    me = ProcessRef.of(os.getpid())
    written: KeeperStatus | None = None
    try:
        while not stop.is_set():
            status = KeeperStatus(
                me.pid,
                me.started,
                keeper.max_restarts,
                keeper.restarts,
                list(keeper.relaunched),
                keeper.given_up,
            )
            if status != written:
                status.write(cluster.paths)
                written = status
            if stop.wait(float(spec["period"])):
                break
            try:
                if not keeper.check_once():
                    break
            except Exception:  # a launcher's hiccup must not end the watch
                log.exception("could not check the engines; trying again")
    finally:
        monitor.close()
        cluster.close_clients()
        if KeeperStatus.read(cluster.paths) == written:
            keeper_file(cluster.paths).unlink(missing_ok=True)
        log.info("keeper stopping (%d engines relaunched)", keeper.restarts)
    return 0


def _launcher_config(data: Mapping[str, Any]) -> LauncherConfig:
    """The ``LauncherConfig`` that ``dataclasses.asdict`` made ``data`` of."""
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return LauncherConfig(**values)


# -- from the cluster's side -----------------------------------------------------------------


class KeeperProcess:
    """The keeper of a cluster, seen from the process that started it (``Cluster.keeper``)."""

    def __init__(self, paths: ProfilePaths, proc: subprocess.Popen[bytes] | None = None) -> None:
        self.paths = paths
        self.proc = proc

    @property
    def status(self) -> KeeperStatus | None:
        return KeeperStatus.read(self.paths)

    @property
    def restarts(self) -> int:
        """Engines relaunched so far."""
        status = self.status
        return status.restarts if status else 0

    @property
    def relaunched(self) -> list[tuple[LaunchHandle, LaunchHandle]]:
        """(ended engine, its replacement) handles, oldest first."""
        status = self.status
        return list(status.relaunched) if status else []

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    def stop(self, timeout: float = 10.0) -> None:
        stop_keeper(self.paths, timeout)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)  # reap it


def start_keeper(
    cluster: Cluster, restart: int, period: float = 0.5, timeout: float = 30.0
) -> KeeperProcess:
    """Start ``cluster``'s keeper process and wait until it has recorded itself.

    Raises:
        LaunchFailed: it exited or did not record itself within ``timeout`` (the message
            has the end of its log).
    """
    stop_keeper(cluster.paths)  # one keeper per cluster: a stale one is ended first
    names = {cluster.engine_launcher, *(h.launcher for h in cluster.engine_handles)}
    spec = {
        "profile": cluster.paths.name,
        "profile_dir": str(cluster.paths.dir),
        "timeout": cluster.timeout,
        "engine_args": cluster.engine_args,
        "restart": restart,
        "period": period,
        "options": {name: dataclasses.asdict(cluster.launcher(name).options) for name in names},
    }
    log_path = cluster.paths.log / "keeper.log"
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pxcluster.launchers._keeperd"],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(spec).encode())
    proc.stdin.close()
    deadline = time.monotonic() + timeout
    while True:
        status = KeeperStatus.read(cluster.paths)
        if status is not None and status.pid == proc.pid:
            return KeeperProcess(cluster.paths, proc)
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            raise LaunchFailed(
                f"the engine keeper (--restart) did not start; {log_path}:\n{log_tail(log_path)}"
            )
        time.sleep(0.02)


def stop_keeper(paths: ProfilePaths, timeout: float = 10.0) -> bool:
    """End the profile's keeper (SIGTERM, then SIGKILL after ``timeout``) and wait for it;
    True if one was running. Afterwards nothing relaunches engines of this profile."""
    status = KeeperStatus.read(paths)
    if status is None:
        return False
    ref = ProcessRef(status.pid, status.started)
    running = ref.alive()
    if running:
        ref.signal(signal.SIGTERM)
        if wait_gone([ref], timeout):
            log.warning("the keeper (pid %d) did not stop within %.0f s: killed", ref.pid, timeout)
            terminate([ref], grace=1.0)
    keeper_file(paths).unlink(missing_ok=True)
    return running


def keeper_running(paths: ProfilePaths) -> KeeperStatus | None:
    """The profile's keeper status while its process runs, else None."""
    status = KeeperStatus.read(paths)
    if status is None or not ProcessRef(status.pid, status.started).alive():
        return None
    return status
