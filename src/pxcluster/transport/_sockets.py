"""Transport layer: thin typed wrappers over pyzmq sockets.

Everything above this layer sees ``Channel`` (send/receive lists of frames), ``Poller`` and
a few factories; the socket options that make delivery reliable are decided here once:
no high-water mark (a ROUTER silently drops past it), ``ROUTER_MANDATORY`` (sending to a
peer that left raises instead of vanishing), and ``LINGER`` 0 on close.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any, Literal

import zmq
import zmq.devices

from pxcluster._buffers import Buffer

Kind = Literal["router", "dealer", "pub", "sub", "pair"]

_KINDS: dict[str, int] = {
    "router": zmq.ROUTER,
    "dealer": zmq.DEALER,
    "pub": zmq.PUB,
    "sub": zmq.SUB,
    "pair": zmq.PAIR,
}
_pipe_counter = itertools.count()

# The hot path calls pyzmq's base socket methods with plain int flags: the convenience
# layer's send_multipart/recv_multipart cost ~5 us a message in enum arithmetic and checks
# (measured), several times what libzmq itself takes for a small message.
_base_send: Callable[..., Any] = zmq.backend.Socket.send
_base_recv: Callable[..., Any] = zmq.backend.Socket.recv
_base_get: Callable[..., Any] = zmq.backend.Socket.get
_SNDMORE = int(zmq.SNDMORE)
_RCVMORE = int(zmq.RCVMORE)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
#: Frames smaller than this are copied into libzmq (cheaper than tracking a zero-copy
#: frame's release); bigger ones are sent without a copy. pyzmq's own default.
_COPY_BELOW = 65536
#: How many leading frames of a message are headers (routing id, delimiter, signature,
#: header), received as bytes; later frames (payloads, maybe big) come as zero-copy views.
_HEAD_FRAMES = {"router": 4, "dealer": 3, "pair": 3, "sub": 2, "pub": 0}


def new_curve_keypair() -> tuple[bytes, bytes]:
    """A fresh CurveZMQ key pair ``(public, secret)``, each Z85 text (40 bytes).

    Raises:
        RuntimeError: this libzmq was built without CurveZMQ.
    """
    if not zmq.has("curve"):
        raise RuntimeError("this libzmq has no CurveZMQ support (built without libsodium)")
    public, secret = zmq.curve_keypair()
    return public, secret


def _curve_client(sock: zmq.Socket[bytes], server_public: bytes) -> None:
    """Encrypt ``sock``'s connections to the server whose public key is ``server_public``
    (this end gets a key pair of its own for the session)."""
    public, secret = new_curve_keypair()
    sock.setsockopt(zmq.CURVE_SERVERKEY, server_public)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)


class ChannelClosed(Exception):
    """The peer is gone (ROUTER_MANDATORY) or the context was terminated."""


class Context:
    """One zmq context per process role; ``close()`` tears every socket down."""

    def __init__(self, max_sockets: int | None = None) -> None:
        self._ctx = zmq.Context()
        if max_sockets is not None:  # libzmq's default is 1023 (an engine simulator needs more)
            self._ctx.set(zmq.MAX_SOCKETS, max_sockets)

    def close(self, linger: float = 0.0) -> None:
        """Close every socket; ``linger`` seconds are allowed to flush what is queued."""
        self._ctx.destroy(linger=int(linger * 1000))


class Channel:
    """A socket that sends and receives whole multipart messages."""

    def __init__(self, ctx: Context, kind: Kind, identity: bytes | None = None) -> None:
        sock = ctx._ctx.socket(_KINDS[kind])
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
        if kind == "router":
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        if kind == "sub":
            sock.setsockopt(zmq.SUBSCRIBE, b"")
        if identity is not None:
            sock.setsockopt(zmq.IDENTITY, identity)
        self._sock = sock
        self.kind = kind
        self._head_frames = _HEAD_FRAMES[kind]

    def send(self, frames: Sequence[Buffer]) -> None:
        """Send one multipart message; big frames are not copied.

        Raises:
            ChannelClosed: the addressed peer is not connected (ROUTER) or the socket closed.
        """
        sock = self._sock
        last = len(frames) - 1
        try:
            for index, frame in enumerate(frames):
                size = len(frame) if type(frame) is bytes else memoryview(frame).nbytes
                flags = _SNDMORE if index < last else 0
                _base_send(sock, frame, flags, size < _COPY_BELOW, False)
        except zmq.ZMQError as exc:
            raise ChannelClosed(str(exc)) from exc

    def recv(self) -> list[Buffer]:
        """Receive one multipart message (blocks): header frames as bytes, payload frames
        as zero-copy views."""
        sock = self._sock
        frames: list[Buffer] = [_base_recv(sock, 0, True, False)]
        head = self._head_frames
        while _base_get(sock, _RCVMORE):
            if len(frames) < head:
                frames.append(_base_recv(sock, 0, True, False))
            else:
                frames.append(_base_recv(sock, 0, False, False).buffer)
        return frames

    def recv_nowait(self) -> list[Buffer] | None:
        """Receive one message if one is waiting, else None."""
        if not _base_get(self._sock, _EVENTS) & _POLLIN:
            return None
        return self.recv()

    def close(self) -> None:
        self._sock.close(linger=0)


def bind(
    ctx: Context,
    kind: Kind,
    ip: str,
    port: int = 0,
    curve_secret: bytes | None = None,
    receive_limit: int = 0,
    max_message: int = -1,
) -> tuple[Channel, int]:
    """A channel bound on ``tcp://ip:port`` (port 0: any free port); returns the port.

    ``curve_secret`` (the server's Z85 secret key) makes every connection to it CurveZMQ:
    encrypted, and only with clients that know the server's public key.
    ``receive_limit`` (messages, 0: none) bounds what is queued unread from each peer:
    past it ZeroMQ stops reading that peer's connection (back-pressure onto the sender,
    nothing dropped), so a flood cannot grow this process without bound.
    ``max_message`` (bytes, -1: none) disconnects a peer that sends a bigger message.

    Raises:
        OSError: the address cannot be bound (in use, or not this machine's).
    """
    chan = Channel(ctx, kind)
    if receive_limit:
        chan._sock.setsockopt(zmq.RCVHWM, receive_limit)
    if max_message >= 0:
        chan._sock.setsockopt(zmq.MAXMSGSIZE, max_message)
    if curve_secret:
        chan._sock.setsockopt(zmq.CURVE_SERVER, 1)
        chan._sock.setsockopt(zmq.CURVE_SECRETKEY, curve_secret)
    try:
        if port:
            chan._sock.bind(f"tcp://{ip}:{port}")
            return chan, port
        return chan, chan._sock.bind_to_random_port(f"tcp://{ip}")
    except zmq.ZMQError as exc:
        chan.close()
        raise OSError(f"cannot listen on tcp://{ip}:{port or '*'}: {exc}") from exc


def connect(
    ctx: Context,
    kind: Kind,
    url: str,
    identity: bytes | None = None,
    curve_server: bytes | None = None,
) -> Channel:
    """A channel connected to ``url`` (connecting never blocks; zmq retries in background).

    ``curve_server`` (the server's Z85 public key) makes the connection CurveZMQ.
    """
    chan = Channel(ctx, kind, identity)
    if curve_server:
        _curve_client(chan._sock, curve_server)
    chan._sock.connect(url)
    return chan


def pipe(ctx: Context) -> tuple[Channel, Channel]:
    """Two ends of an in-process PAIR pipe, for handing frames between threads."""
    url = f"inproc://px-pipe-{next(_pipe_counter)}"
    a = Channel(ctx, "pair")
    a._sock.bind(url)
    b = Channel(ctx, "pair")
    b._sock.connect(url)
    return a, b


class Poller:
    """Waits on several channels at once."""

    def __init__(self, channels: Sequence[Channel | Monitor]) -> None:
        self._poller = zmq.Poller()
        self._by_socket: dict[zmq.Socket[bytes], Channel | Monitor] = {}
        for chan in channels:
            self._poller.register(chan._sock, zmq.POLLIN)
            self._by_socket[chan._sock] = chan

    def poll(self, timeout: float | None) -> list[Channel | Monitor]:
        """Channels with a message waiting; ``timeout`` in seconds (None: forever)."""
        ms = None if timeout is None else max(0, int(timeout * 1000))
        return [self._by_socket[s] for s, _ in self._poller.poll(ms)]


class Monitor:
    """Connection events of a channel: tells an engine its controller went away or came back."""

    def __init__(self, chan: Channel) -> None:
        self._sock = chan._sock.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED
        )

    def recv_event(self) -> Literal["connected", "disconnected", "other"]:
        from zmq.utils.monitor import recv_monitor_message

        event = recv_monitor_message(self._sock)["event"]
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            return "connected"
        if event == zmq.EVENT_DISCONNECTED:
            return "disconnected"
        return "other"

    def close(self) -> None:
        self._sock.close(linger=0)


class HeartbeatEcho:
    """Echoes the controller's pings back from a C thread that never takes the GIL.

    So an engine whose user code holds the GIL for minutes (a long C call) is still seen as
    alive, while a killed or frozen process stops answering at once.
    """

    def __init__(
        self, ping_url: str, pong_url: str, identity: bytes, curve_server: bytes | None = None
    ) -> None:
        device = zmq.devices.ThreadDevice(zmq.QUEUE, zmq.SUB, zmq.DEALER)
        if curve_server:
            for setsockopt in (device.setsockopt_in, device.setsockopt_out):
                public, secret = new_curve_keypair()
                setsockopt(zmq.CURVE_SERVERKEY, curve_server)
                setsockopt(zmq.CURVE_PUBLICKEY, public)
                setsockopt(zmq.CURVE_SECRETKEY, secret)
        device.setsockopt_in(zmq.SUBSCRIBE, b"")
        device.setsockopt_in(zmq.LINGER, 0)
        device.setsockopt_out(zmq.LINGER, 0)
        device.setsockopt_out(zmq.IDENTITY, identity)
        device.connect_in(ping_url)
        device.connect_out(pong_url)
        device.daemon = True
        self._device = device

    def start(self) -> None:
        self._device.start()
