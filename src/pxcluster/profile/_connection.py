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


def write_connection(path: Path, conn: ClientConnection | EngineConnection) -> None:
    """Write ``conn`` to ``path`` atomically, readable by the owner only."""
    data: dict[str, Any] = dataclasses.asdict(conn)
    data["key"] = conn.key.decode("ascii")
    data["role"] = "client" if isinstance(conn, ClientConnection) else "engine"
    data["signature_scheme"] = "hmac-sha256"
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    os.replace(tmp, path)


def _read(path: Path, role: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise NoClusterRunning(
            f"no connection file at {path}: is a cluster running? "
            "Start one with `pxcluster start -n 4`."
        ) from None
    except (OSError, ValueError) as exc:
        raise NoClusterRunning(f"cannot read connection file {path}: {exc}") from exc
    if data.get("role") != role:
        raise NoClusterRunning(f"{path} is a {data.get('role')!r} connection file, not {role!r}")
    return data


def read_client_connection(path: Path) -> ClientConnection:
    """Load a client connection file.

    Raises:
        NoClusterRunning: the file is missing, unreadable, or not a client file.
    """
    data = _read(path, "client")
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
    data = _read(path, "engine")
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
