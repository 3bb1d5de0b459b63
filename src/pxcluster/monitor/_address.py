"""Monitor layer: where a profile's dashboard listens, and the token that opens it.

The token is derived from the client connection file's key (HMAC-SHA256 of a fixed label),
so whoever may use the cluster (can read that 0600 file) may watch it, and nobody else; no
second secret needs keeping. The dashboard process writes ``security/dashboard.json`` (its
URL and pid) so that ``pxcluster start`` and ``pxcluster list`` can print the address.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
from pathlib import Path

from pxcluster.profile import ProfilePaths, read_client_connection

_LABEL = b"pxcluster dashboard token"


def dashboard_token(key: bytes) -> str:
    """The dashboard token of the cluster whose client key is ``key``."""
    return hmac.new(key, _LABEL, hashlib.sha256).hexdigest()[:32]


def dashboard_file(paths: ProfilePaths) -> Path:
    return paths.security / "dashboard.json"


@dataclasses.dataclass(frozen=True)
class DashboardAddress:
    """A running dashboard: its base URL (no token) and its process id."""

    url: str
    pid: int

    def write(self, path: Path) -> None:
        """Write atomically, readable by the owner only."""
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(dataclasses.asdict(self), handle)
        os.replace(tmp, path)


def running_dashboard(paths: ProfilePaths) -> DashboardAddress | None:
    """The profile's dashboard if its process still runs, else None."""
    try:
        data = json.loads(dashboard_file(paths).read_text())
        address = DashboardAddress(str(data["url"]), int(data["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(address.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return address


def dashboard_url(paths: ProfilePaths) -> str | None:
    """The profile's dashboard address with its token (what a user opens), or None when
    no dashboard runs."""
    address = running_dashboard(paths)
    if address is None:
        return None
    key = read_client_connection(paths.client_file).key
    return f"{address.url}/?token={dashboard_token(key)}"
