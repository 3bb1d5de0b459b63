"""Controller layer: the server loop, the I/O shell around the hub.

One thread, one poller over three sockets (clients, engines, heartbeat pongs) and a PUB
that pings engines every ``heartbeat_period``. Payload frames are received as zero-copy
views and forwarded as they are; only headers are parsed.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable

from pxcluster._errors import RemoteProtocolError
from pxcluster.controller._hub import Hub
from pxcluster.controller._outbound import Outbound
from pxcluster.controller._store import RecordStore, Retention
from pxcluster.profile import (
    ClientConnection,
    ClusterConfig,
    EngineConnection,
    ProfilePaths,
    write_connection,
)
from pxcluster.transport import Channel, ChannelClosed, Context, Poller, bind
from pxcluster.wire import Message, ReplayGuard, Signer, decode, encode, new_key, split_routing
from pxcluster.wire._framing import encode_raw

log = logging.getLogger("pxcluster.controller")

#: Messages taken from one socket before the others get a turn, so no side starves.
_BATCH = 256
#: Seconds between writes of finished tasks to the record store.
_FLUSH_PERIOD = 0.2


def _reachable_ip(ip: str) -> str:
    """The address to write into connection files for a controller bound on ``ip``."""
    if ip in ("0.0.0.0", "*", ""):
        try:
            return socket.gethostbyname(socket.gethostname())
        except OSError:
            return "127.0.0.1"
    return ip


class ControllerServer:
    """Binds the controller's sockets, writes connection files and runs the hub."""

    def __init__(self, config: ClusterConfig, paths: ProfilePaths) -> None:
        self.config = config
        self.paths = paths.ensure()
        self.store = RecordStore(
            self.paths.dir / "db.sqlite3",
            Retention(config.retention_records, config.retention_bytes, config.result_cap),
        )
        self.hub = Hub(
            config.heartbeat_timeout, store=self.store, task_prefetch=config.task_prefetch
        )
        self._ctx = Context()
        self._client_key, self._engine_key = new_key(), new_key()
        self._client_signer = Signer(self._client_key)
        self._engine_signer = Signer(self._engine_key)
        self._client_guard = ReplayGuard()
        self._engine_guard = ReplayGuard()
        self._stop_requested = False
        ip = config.ip
        self.clients, self.client_port = bind(self._ctx, "router", ip, config.client_port)
        self.engines, self.engine_port = bind(self._ctx, "router", ip, config.engine_port)
        self._ping, ping_port = bind(self._ctx, "pub", ip)
        self._pong, pong_port = bind(self._ctx, "router", ip)
        host = _reachable_ip(ip)
        self.hub.heartbeat_info = {
            "hb_ping": f"tcp://{host}:{ping_port}",
            "hb_pong": f"tcp://{host}:{pong_port}",
            "period": config.heartbeat_period,
        }
        self.client_url = f"tcp://{host}:{self.client_port}"
        self.engine_url = f"tcp://{host}:{self.engine_port}"

    def write_connection_files(self) -> None:
        """Write the client and engine connection files (mode 0600) into security/."""
        pid = os.getpid()
        write_connection(
            self.paths.client_file,
            ClientConnection(self.client_url, self._client_key, pid, self.paths.name),
        )
        write_connection(
            self.paths.engine_file,
            EngineConnection(self.engine_url, self._engine_key, pid, self.paths.name),
        )

    def remove_connection_files(self) -> None:
        """Remove our connection files (not those a newer controller wrote over them)."""
        for path in (self.paths.client_file, self.paths.engine_file):
            try:
                if f'"controller_pid": {os.getpid()}' in path.read_text():
                    path.unlink()
            except OSError:
                pass

    def request_stop(self) -> None:
        """Ask the loop to stop at its next turn (safe from a signal handler)."""
        self._stop_requested = True

    # -- the loop --------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Run until a client asks for SHUTDOWN or ``request_stop`` is called."""
        self.write_connection_files()
        log.info(
            "controller pid %d: clients at %s, engines at %s",
            os.getpid(),
            self.client_url,
            self.engine_url,
        )
        period = self.config.heartbeat_period
        poller = Poller([self.clients, self.engines, self._pong])
        next_beat = next_flush = time.monotonic()
        try:
            while not (self.hub.shutdown_requested or self._stop_requested):
                wake = min(next_beat, next_flush)
                for chan in poller.poll(max(0.0, wake - time.monotonic())):
                    assert isinstance(chan, Channel)
                    self._drain(chan)
                now = time.monotonic()
                if now >= next_flush:
                    self.store.flush()  # batched: one transaction for many finished tasks
                    next_flush = now + _FLUSH_PERIOD
                if now >= next_beat:
                    self._ping.send([b"ping"])
                    self._send_all(self.hub.check_liveness())
                    next_beat = now + period
            if self._stop_requested:
                self._send_all(self.hub.shutdown_engines())
        finally:
            log.info("controller stopping")
            self.store.close()
            self.remove_connection_files()
            self._ctx.close(linger=1.0)

    def _drain(self, chan: Channel) -> None:
        for _ in range(_BATCH):
            frames = chan.recv_nowait()
            if frames is None:
                return
            if chan is self._pong:
                self._send_all(self.hub.heartbeat(bytes(frames[0])))
            elif chan is self.clients:
                self._from_client(frames)
            else:
                self._from_engine(frames)

    def _from_client(self, frames: list[memoryview]) -> None:
        self._receive(
            frames, "client", self._client_signer, self._client_guard, self.hub.client_message
        )

    def _from_engine(self, frames: list[memoryview]) -> None:
        self._receive(
            frames, "engine", self._engine_signer, self._engine_guard, self.hub.engine_message
        )

    def _receive(
        self,
        frames: list[memoryview],
        port: str,
        signer: Signer,
        guard: ReplayGuard,
        handle: Callable[[bytes, Message], list[Outbound]],
    ) -> None:
        """Verify, decode and hand one message to the hub; a bad one is dropped and logged.

        Nothing a peer sends may stop the loop: an error in handling a message that did
        verify is a bug, logged with its traceback, and the controller goes on.
        """
        try:
            routing, rest = split_routing(frames)
            msg = decode(rest, signer, guard)
        except RemoteProtocolError as exc:
            log.warning("dropped a message on the %s port: %s", port, exc)
            return
        if len(routing) != 1:
            log.warning("dropped a %s message with %d routing frames", port, len(routing))
            return
        try:
            outbound = handle(routing[0], msg)
        except Exception:
            log.exception("could not handle %s from a %s; dropped it", msg.type.name, port)
            return
        self._send_all(outbound)

    def _send_all(self, outbound: list[Outbound]) -> None:
        for out in outbound:
            if out.to == "client":
                chan, signer = self.clients, self._client_signer
            else:
                chan, signer = self.engines, self._engine_signer
            if out.msg is not None:
                frames = encode(out.msg, signer)
            else:
                frames = encode_raw(out.header, out.buffers, signer)
            try:
                chan.send([out.identity, *frames])
            except ChannelClosed:
                if out.to == "client":
                    log.info("a client left before its reply; dropping it")
                    self.hub.client_gone(out.identity)
                else:
                    log.info("an engine left before a message reached it")
