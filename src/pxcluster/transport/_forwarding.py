"""Transport layer: moving whole messages between sockets without copying their bytes.

A relay forwards messages it does not read. ``recv_frames`` keeps each frame as libzmq's
own message (a ``Frame``) and ``send_frames`` sends it again by reference: libzmq counts
references to a frame's bytes, so a 100 MB payload fanned out to 64 engines is held once
and copied by no one (frames under 33 bytes are copied, which is cheaper than counting).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import zmq

from pxcluster.transport._sockets import (
    _EVENTS,
    _POLLIN,
    _RCVMORE,
    _SNDMORE,
    Channel,
    ChannelClosed,
    Context,
    Kind,
    _base_get,
    _base_recv,
    _base_send,
)

#: One received frame, opaque above this layer: pass it to ``send_frames`` or read it with
#: ``frame_bytes``.
Frame = zmq.Frame


def recv_frames(chan: Channel) -> list[Frame] | None:
    """The next message waiting on ``chan`` as frames, or None if none waits."""
    sock = chan._sock
    if not _base_get(sock, _EVENTS) & _POLLIN:
        return None
    frames = [_base_recv(sock, 0, False, False)]
    while _base_get(sock, _RCVMORE):
        frames.append(_base_recv(sock, 0, False, False))
    return frames


def send_frames(chan: Channel, frames: Sequence[Frame | bytes]) -> None:
    """Send one message made of received frames (sent by reference) and bytes.

    Raises:
        ChannelClosed: the addressed peer is not connected (ROUTER) or the socket closed.
    """
    sock = chan._sock
    last = len(frames) - 1
    try:
        for index, frame in enumerate(frames):
            _base_send(sock, frame, _SNDMORE if index < last else 0, False, False)
    except zmq.ZMQError as exc:
        raise ChannelClosed(str(exc)) from exc


def frame_bytes(frame: Frame | bytes) -> bytes:
    """A frame's bytes (a copy: for the short frames a relay reads)."""
    return frame if isinstance(frame, bytes) else bytes(frame.buffer)


def frame_size(frame: Frame | bytes) -> int:
    """A frame's length in bytes."""
    return len(frame) if isinstance(frame, bytes) else frame.buffer.nbytes


def bind_ipc(ctx: Context, kind: Kind, path: Path, receive_limit: int = 0) -> Channel:
    """A channel bound on the IPC (Unix socket) file ``path``, for peers on this host.

    Raises:
        OSError: it cannot be bound (the folder is missing, the path too long for a Unix
            socket: about 100 bytes).
    """
    chan = Channel(ctx, kind)
    if receive_limit:
        chan._sock.setsockopt(zmq.RCVHWM, receive_limit)
    try:
        chan._sock.bind(f"ipc://{path}")
    except zmq.ZMQError as exc:
        chan.close()
        raise OSError(f"cannot listen on ipc://{path}: {exc}") from exc
    return chan
