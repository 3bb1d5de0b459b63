"""Transport layer: the only package that imports zmq. Sockets, bind/connect, polling."""

from pxcluster.transport._sockets import (
    Channel,
    ChannelClosed,
    Context,
    HeartbeatEcho,
    Monitor,
    Poller,
    bind,
    connect,
    new_curve_keypair,
    pipe,
)
from pxcluster.transport._tunnel import SshTunnel, read_remote_file

__all__ = [
    "Channel",
    "ChannelClosed",
    "Context",
    "HeartbeatEcho",
    "Monitor",
    "Poller",
    "SshTunnel",
    "bind",
    "connect",
    "new_curve_keypair",
    "pipe",
    "read_remote_file",
]
