"""Profile layer: the connection files, which are the capabilities to use a controller.

The controller writes one file for clients and one for engines, each with its own random key,
so an engine's key cannot be used to act as a client. Both are JSON with mode 0600.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from pxcluster._errors import NoClusterRunning


@dataclasses.dataclass(frozen=True)
class ClientConnection:
    """How a client reaches the controller."""

    url: str
    key: bytes
    controller_pid: int = 0
    profile: str = "default"
    #: The controller's CurveZMQ public key (Z85 text) when it encrypts (``--curve``).
    curve_serverkey: str = ""


@dataclasses.dataclass(frozen=True)
class EngineConnection:
    """How an engine reaches the controller (heartbeat addresses come with registration;
    their ports are kept here too, for a controller that restarts to listen on them again)."""

    url: str
    key: bytes
    controller_pid: int = 0
    profile: str = "default"
    hb_ping_port: int = 0
    hb_pong_port: int = 0
    curve_serverkey: str = ""


#: An engine started where the profile's files are not (ssh, a batch job on a host without a
#: shared filesystem) finds its connection here: the engine file's JSON text. The
#: environment is readable by the process's owner only, as the file is.
ENGINE_CONNECTION_ENV = "PXCLUSTER_ENGINE_CONNECTION"


def connection_json(conn: ClientConnection | EngineConnection) -> str:
    """``conn`` as the JSON text of its connection file."""
    data: dict[str, Any] = dataclasses.asdict(conn)
    data["key"] = conn.key.decode("ascii")
    data["role"] = "client" if isinstance(conn, ClientConnection) else "engine"
    data["signature_scheme"] = "hmac-sha256"
    return json.dumps(data, indent=2)


def write_connection(path: Path, conn: ClientConnection | EngineConnection) -> None:
    """Write ``conn`` to ``path`` atomically, readable by the owner only."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(connection_json(conn))
    os.replace(tmp, path)


def _read(path: Path, role: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise NoClusterRunning(
            f"no connection file at {path}: is a cluster running? "
            "Start one with `pxcluster start -n 4`."
        ) from None
    except OSError as exc:
        raise NoClusterRunning(f"cannot read connection file {path}: {exc}") from exc
    check_private(Path(path))
    return _parse(text, role, str(path))


def check_private(path: Path) -> None:
    """Refuse a key file that other users can read: its key lets anyone run code here.

    Raises:
        NoClusterRunning: the file is readable by others (the message says how to fix it).
    """
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return
    if mode & 0o004:
        raise NoClusterRunning(
            f"{path} is readable by other users (mode {mode:03o}), and its key lets anyone "
            f"who reads it run code on the engines: refusing it. Run `chmod 600 {path}` "
            "if it is yours and nobody else read it, or restart the cluster for new keys."
        )


def _parse(text: str, role: str, source: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise NoClusterRunning(f"cannot read connection {source}: {exc}") from exc
    if not isinstance(data, dict):
        raise NoClusterRunning(f"{source} is not a connection file (not a JSON object)")
    if data.get("role") != role:
        raise NoClusterRunning(f"{source} is a {data.get('role')!r} connection file, not {role!r}")
    return data


def read_client_connection(path: Path) -> ClientConnection:
    """Load a client connection file.

    Raises:
        NoClusterRunning: the file is missing, unreadable, or not a client file.
    """
    return _client_connection(_read(path, "client"))


def client_connection_from_json(text: str, source: str) -> ClientConnection:
    """A client connection from the JSON text of its file (fetched from another host).

    Raises:
        NoClusterRunning: the text is not a client connection.
    """
    return _client_connection(_parse(text, "client", source))


def _client_connection(data: dict[str, Any]) -> ClientConnection:
    return ClientConnection(
        url=data["url"],
        key=data["key"].encode("ascii"),
        controller_pid=int(data.get("controller_pid", 0)),
        profile=data.get("profile", "default"),
        curve_serverkey=str(data.get("curve_serverkey", "")),
    )


def read_engine_connection(path: Path) -> EngineConnection:
    """Load an engine connection file.

    Raises:
        NoClusterRunning: the file is missing, unreadable, or not an engine file.
    """
    return _engine_connection(_read(path, "engine"))


def engine_connection_from_json(text: str, source: str) -> EngineConnection:
    """An engine connection from the JSON text of its file (``source`` names where the
    text came from, for errors: an environment variable, say).

    Raises:
        NoClusterRunning: the text is not an engine connection.
    """
    return _engine_connection(_parse(text, "engine", source))


def _engine_connection(data: dict[str, Any]) -> EngineConnection:
    return EngineConnection(
        url=data["url"],
        key=data["key"].encode("ascii"),
        controller_pid=int(data.get("controller_pid", 0)),
        profile=data.get("profile", "default"),
        hb_ping_port=int(data.get("hb_ping_port", 0)),
        hb_pong_port=int(data.get("hb_pong_port", 0)),
        curve_serverkey=str(data.get("curve_serverkey", "")),
    )


def write_curve_keys(path: Path, public: bytes, secret: bytes) -> None:
    """Keep the controller's CurveZMQ key pair (mode 0600), for a controller that takes
    over after a crash; clients and engines only ever see the public key."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"public": public.decode("ascii"), "secret": secret.decode("ascii")}, handle)


def read_curve_keys(path: Path) -> tuple[bytes, bytes] | None:
    """The key pair ``write_curve_keys`` kept, or None if there is none (or it is bad)."""
    try:
        data = json.loads(Path(path).read_text())
        return data["public"].encode("ascii"), data["secret"].encode("ascii")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
