"""Transport layer: the only package that imports zmq. Sockets, bind/connect, polling."""

from pxcluster.transport._forwarding import (
    Frame,
    bind_ipc,
    frame_bytes,
    frame_size,
    recv_frames,
    send_frames,
)
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
    "Frame",
    "HeartbeatEcho",
    "Monitor",
    "Poller",
    "SshTunnel",
    "bind",
    "bind_ipc",
    "connect",
    "frame_bytes",
    "frame_size",
    "new_curve_keypair",
    "pipe",
    "read_remote_file",
    "recv_frames",
    "send_frames",
]
