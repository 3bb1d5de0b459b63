"""Launchers layer: which launched process each registered engine is (engine id -> handle).

Engines register with their launcher's ``launch`` information (job id, array index; see
``profile.launch_info``) and the controller reports it in MONITOR. Matched against the
handles in ``pid/cluster.json`` (``match_handle``), it gives per-engine control and logs
whatever the launcher: ``pxcluster logs 3``, ``pxcluster restart 3``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from pxcluster._errors import EngineNotRegistered
from pxcluster.client._core import ClientCore
from pxcluster.launchers._launcher import LaunchHandle, make_launcher, match_handle
from pxcluster.launchers._record import ClusterRecord
from pxcluster.profile import ProfilePaths, load_launcher_config, read_client_connection
from pxcluster.wire import MsgType

#: ``since`` for a MONITOR that wants no activity events, only the engines.
_NO_EVENTS = 2**62


@dataclasses.dataclass(frozen=True)
class RegisteredEngine:
    """An engine as the controller knows it."""

    id: int
    hostname: str
    pid: int
    launch: Mapping[str, Any]


def registered_engines(paths: ProfilePaths, timeout: float = 5.0) -> list[RegisteredEngine]:
    """The engines registered with this profile's controller now, with their launch info.

    Raises:
        NoClusterRunning: there is no connection file.
        PxclusterTimeoutError: the controller did not answer within ``timeout``.
    """
    core = ClientCore(read_client_connection(paths.client_file), timeout)
    try:
        reply = core.call_controller(MsgType.MONITOR, {"since": _NO_EVENTS}, "monitor", timeout)
    finally:
        core.close()
    launch = {int(eid): dict(info) for eid, info in reply.content.get("launch", [])}
    return [
        RegisteredEngine(int(row[0]), str(row[1]), int(row[2]), launch.get(int(row[0]), {}))
        for row in reply.content.get("engine_rows", [])
    ]


def handle_of(engine: RegisteredEngine, handles: Sequence[LaunchHandle]) -> LaunchHandle | None:
    """The launch handle of ``engine``, completed with its host and pid, or None when the
    engine was not started by this cluster's launchers (by hand, say)."""
    handle = match_handle(handles, engine.launch, engine.pid, engine.hostname)
    if handle is None:
        return None
    return dataclasses.replace(handle, host=engine.hostname, pid=engine.pid)


def engine_handle(
    paths: ProfilePaths, engine_id: int, timeout: float = 5.0
) -> tuple[RegisteredEngine, LaunchHandle | None]:
    """Engine ``engine_id`` and its launch handle (None: not launched by this cluster).

    Raises:
        EngineNotRegistered: the controller has no such engine.
    """
    engines = {e.id: e for e in registered_engines(paths, timeout)}
    engine = engines.get(engine_id)
    if engine is None:
        known = ", ".join(str(i) for i in sorted(engines)) or "none"
        raise EngineNotRegistered(
            f"engine {engine_id} is not registered (engines now: {known})", engine_id
        )
    record = ClusterRecord.read(paths.cluster_file)
    handles = record.engines if record is not None else []
    return engine, handle_of(engine, handles)


def engine_logs(paths: ProfilePaths, engine_id: int, lines: int = 50) -> str:
    """Engine ``engine_id``'s state, log and its launcher's output files (a batch job's
    stdout/stderr), the last ``lines`` of each, wherever its launcher keeps them.

    Raises:
        EngineNotRegistered: the controller has no such engine.
        NoClusterRunning: the profile has no running controller.
    """
    engine, handle = engine_handle(paths, engine_id)
    if handle is None:
        log = paths.log / f"engine-{engine.pid}.log"
        try:
            text = "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            text = f"(cannot read {log}: {exc.strerror})"
        return (
            f"engine {engine.id} (pid {engine.pid} on {engine.hostname}) was not started by "
            f"this cluster's launchers; its log, if it logs to the profile:\n"
            f"==> {log} <==\n{text}"
        )
    launcher = make_launcher(
        handle.launcher, paths, load_launcher_config(paths.config_file, handle.launcher)
    )
    (state,) = launcher.poll([handle])
    head = (
        f"engine {engine.id}: {handle.describe()}, pid {engine.pid} on {engine.hostname}, "
        f"{state.describe()}"
    )
    return f"{head}\n{launcher.read_output(handle, lines)}"
