"""Client layer: a client on a laptop reaching a controller through an SSH tunnel.

``MultiEngineClient(ssh="user@gateway")`` (and ``TaskClient``) log in to ``gateway`` and
tunnel the client's connection to the controller's address as the gateway sees it. The
connection file is this profile's (copied from the cluster), or, when there is none here,
read over the same ssh login from ``~/.pxcluster/profile_NAME/security/client.json``
there, so a client needs nothing but the login.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from pxcluster._errors import NoClusterRunning
from pxcluster.profile import (
    ClientConnection,
    client_connection_from_json,
    read_client_connection,
)
from pxcluster.transport import SshTunnel, read_remote_file


@dataclasses.dataclass(frozen=True)
class SshRoute:
    """How to log in to the host the tunnel goes through.

    Attributes:
        server: ``[user@]host[:port]``.
        keyfile: the private key (None: ssh's own choice, an agent, ``~/.ssh/config``).
        options: more ssh arguments.
    """

    server: str
    keyfile: str | None = None
    options: tuple[str, ...] = ()

    @classmethod
    def of(cls, server: str | None, keyfile: str | None, options: Sequence[str]) -> SshRoute | None:
        return cls(server, keyfile, tuple(options)) if server else None


def tunnelled_connection(
    route: SshRoute, path: Path, profile: str, explicit_file: bool, timeout: float
) -> tuple[ClientConnection, SshTunnel]:
    """The connection to use through ``route``, and the tunnel that carries it.

    Raises:
        NoClusterRunning: no connection file here (``explicit_file``) or there.
        TransportError: ssh failed.
    """
    try:
        connection = read_client_connection(path)
    except NoClusterRunning:
        if explicit_file:
            raise
        remote = f".pxcluster/profile_{profile}/security/client.json"
        text = read_remote_file(route.server, remote, route.keyfile, route.options)
        connection = client_connection_from_json(text, f"{route.server}:~/{remote}")
    tunnel = SshTunnel(route.server, connection.url, route.keyfile, route.options, timeout)
    return dataclasses.replace(connection, url=tunnel.url), tunnel
