"""Relay layer: one process per host between that host's engines and the controller.

Theory of operation
-------------------
Engines on this host connect to the relay over IPC (Unix sockets in a private folder, see
``RelayAddresses``) exactly as they would connect to a controller: a ROUTER for their
requests and replies, a PUB that pings them and a ROUTER for their pongs. The relay holds
one connection of each kind to the controller (a DEALER to its engine port, and a
heartbeat echo to its ping and pong ports), so the controller's memory, file descriptors
and heartbeat traffic grow with hosts, not engines.

* **Up**: a message from an engine ``[engine, DELIMITER, ...]`` goes to the controller as
  it is; the controller's ROUTER adds the relay's routing id in front (``wire._relay``).
* **Down**: ``[engine, DELIMITER, ...]`` goes to that engine; a fan-out ``[FAN, list,
  DELIMITER, ...]`` goes to each engine listed, sharing the frames (a big push crosses the
  network once per host). A message to an engine that left is reported as its death.
* **Liveness**: the relay pings its engines every ``heartbeat_period`` and reports those
  silent for ``heartbeat_timeout`` (a "gone" note); the controller pings the relay only,
  and an engine behind a relay counts as alive while the relay answers. A relay that dies
  stops answering, so the controller declares all its engines dead together.
* **Signals**: the controller asks the relay to signal an engine that does not answer
  (C code holding the GIL): SIGUSR1 for an interrupt, SIGKILL for a kill. The relay signals
  only an engine it serves, by the pid that engine registered with, and only while that pid
  is still a pxcluster process.

The relay reads no signature (it has no key: engines and controller verify each other end
to end); it reads the header of an engine's first message only, for its pid. Nothing a
peer sends ends its loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

from pxcluster.profile import EngineConnection
from pxcluster.transport import (
    ChannelClosed,
    Context,
    Frame,
    HeartbeatEcho,
    Monitor,
    Poller,
    bind_ipc,
    connect,
    frame_bytes,
    recv_frames,
    send_frames,
)
from pxcluster.wire import (
    DELIMITER,
    FAN,
    NOTE,
    DropLog,
    MsgType,
    fan_targets,
    pack_note,
    unpack_note,
)

log = logging.getLogger("pxcluster.relay")

#: Messages taken from one side before the other gets a turn.
_BATCH = 256
#: Signals the controller may ask for (an interrupt, a kill; SIGTERM/SIGINT for stops).
_SIGNALS = frozenset({signal.SIGUSR1, signal.SIGKILL, signal.SIGTERM, signal.SIGINT})
#: Routing ids a local peer may not take: they would read as the relay's own frames.
_RESERVED = (b"<PX|",)
_SEND_SUFFIX = b"/send"


@dataclasses.dataclass(frozen=True)
class RelayAddresses:
    """Where a relay listens for the engines of its host: three Unix sockets in ``folder``
    (mode 0700, so only its owner's engines can connect)."""

    folder: Path

    @property
    def engine(self) -> Path:
        return self.folder / "engine"

    @property
    def ping(self) -> Path:
        return self.folder / "ping"

    @property
    def pong(self) -> Path:
        return self.folder / "pong"

    def urls(self) -> tuple[str, str, str]:
        """The engine, ping and pong URLs an engine connects to."""
        return f"ipc://{self.engine}", f"ipc://{self.ping}", f"ipc://{self.pong}"


@dataclasses.dataclass
class LocalEngine:
    """An engine this relay serves."""

    last_seen: float
    pid: int = 0
    ponged: bool = False  # its heartbeat echo answered once (it starts once registered)


@dataclasses.dataclass(frozen=True)
class RelayStats:
    """What a relay did so far."""

    engines: int  # engines it serves now
    up: int  # messages forwarded to the controller
    down: int  # messages delivered to engines (a fan-out counts once per engine)
    fanouts: int  # fan-out messages received
    gone: int  # engines reported gone


class Relay:
    """The relay of one host; see the module docstring.

    Args:
        connection: the controller's engine connection (its key is never used).
        addresses: where to listen for this host's engines.
        controller_timeout: seconds cut off from the controller before the relay stops.
    """

    def __init__(
        self,
        connection: EngineConnection,
        addresses: RelayAddresses,
        controller_timeout: float = 30.0,
    ) -> None:
        self.connection = connection
        self.addresses = addresses
        self.controller_timeout = controller_timeout
        self.identity = b"relay-" + uuid.uuid4().hex.encode("ascii")
        self.heartbeat_period = 0.5  # until the controller's welcome says otherwise
        self.heartbeat_timeout = 3.0
        self.engines: dict[bytes, LocalEngine] = {}
        self.drops = DropLog(log)
        self._up = self._down = self._fanouts = self._gone = 0
        self._ping_seq = 0
        self._last_beat = time.monotonic()
        self._stop = False
        self._bye = False
        self._echo: HeartbeatEcho | None = None
        self._lost_since: float | None = None
        addresses.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(addresses.folder, 0o700)
        for path in (addresses.engine, addresses.ping, addresses.pong):
            path.unlink(missing_ok=True)  # a relay before us on this folder was killed
        self._ctx = Context()
        self._curve = connection.curve_serverkey.encode("ascii") or None
        self.local = bind_ipc(self._ctx, "router", addresses.engine)
        self.pings = bind_ipc(self._ctx, "pub", addresses.ping)
        self.pongs = bind_ipc(self._ctx, "router", addresses.pong)
        self.upstream = connect(
            self._ctx, "dealer", connection.url, identity=self.identity, curve_server=self._curve
        )

    def stats(self) -> RelayStats:
        return RelayStats(len(self.engines), self._up, self._down, self._fanouts, self._gone)

    @property
    def controller_stopped(self) -> bool:
        """The controller said it stops ("bye"): its engines were told to stop too."""
        return self._bye

    def request_stop(self) -> None:
        """Stop at the loop's next turn (safe from a signal handler)."""
        self._stop = True

    # -- the loop ----------------------------------------------------------------------------

    def serve(self, until: Callable[[], bool] = lambda: False) -> RelayStats:
        """Relay until stopped, told "bye" by the controller, ``until()`` is true, or cut off
        from the controller for ``controller_timeout`` seconds."""
        monitor = Monitor(self.upstream)
        poller = Poller([self.local, self.upstream, self.pongs, monitor])
        # cut off since when (None: connected); counts from the start until the controller
        # first answers (its welcome, or the monitor's "connected")
        self._lost_since = time.monotonic()
        next_beat = time.monotonic()
        # Now, not only at the monitor's "connected": the connection may have been made
        # before the monitor watched it (the DEALER holds the note until it is).
        self._hello()
        try:
            while not (self._stop or self._bye or until()):
                try:
                    for chan in poller.poll(max(0.0, next_beat - time.monotonic())):
                        if chan is monitor:
                            event = monitor.recv_event()
                            if event == "connected":
                                self._lost_since = None
                                self._hello()
                            elif event == "disconnected" and self._lost_since is None:
                                self._from_controller()  # a "bye" may be waiting: first
                                self._lost_since = time.monotonic()
                                if not self._bye:
                                    log.warning("lost the controller at %s", self.connection.url)
                        elif chan is self.local:
                            self._from_engines()
                        elif chan is self.upstream:
                            self._from_controller()
                        else:
                            self._from_pongs()
                    now = time.monotonic()
                    if now >= next_beat:
                        next_beat = now + self.heartbeat_period
                        self._beat(now)
                except Exception:  # a bug: the engines behind us are worth going on for
                    self.drops.exception("loop", "the relay's loop survived an error")
                lost_since = self._lost_since
                if lost_since is not None and time.monotonic() - lost_since > (
                    self.controller_timeout
                ):
                    log.error(
                        "no controller at %s for %.0f s: stopping",
                        self.connection.url,
                        self.controller_timeout,
                    )
                    break
        finally:
            monitor.close()
        return self.stats()

    def close(self) -> None:
        """Close every socket (letting a second go to deliver what is queued)."""
        self._ctx.close(linger=1.0)
        for path in (self.addresses.engine, self.addresses.ping, self.addresses.pong):
            path.unlink(missing_ok=True)

    # -- up ----------------------------------------------------------------------------------

    def _from_engines(self) -> None:
        for _ in range(_BATCH):
            frames = recv_frames(self.local)
            if frames is None:
                return
            engine = frame_bytes(frames[0])
            if engine.startswith(_RESERVED) or len(frames) < 2:
                self.drops.warning(
                    "reserved", "dropped a message from a local peer named %r", engine[:32]
                )
                continue
            if engine not in self.engines and not engine.endswith(_SEND_SUFFIX):
                self._learn(engine, frames)
            try:
                send_frames(self.upstream, frames)
            except ChannelClosed:
                self.drops.info("closed", "could not forward a message: the relay is closing")
                return
            self._up += 1

    def _learn(self, engine: bytes, frames: list[Frame]) -> None:
        """Serve a new engine; its pid comes from its REGISTER's header (not verified: used
        only to signal it, and only while the pid is a pxcluster process)."""
        record = LocalEngine(time.monotonic())
        self.engines[engine] = record
        if len(frames) >= 4 and frame_bytes(frames[1]) == DELIMITER:
            try:
                head = msgpack.unpackb(frame_bytes(frames[3]), raw=False)
                if head.get("t") == int(MsgType.REGISTER) and type(head["c"]["pid"]) is int:
                    record.pid = head["c"]["pid"]
            except Exception:
                pass  # not a registration: its pid comes with the next one, if ever
        if record.pid == 0:
            del self.engines[engine]  # not an engine yet (it registers first)

    # -- down --------------------------------------------------------------------------------

    def _from_controller(self) -> None:
        for _ in range(_BATCH):
            frames = recv_frames(self.upstream)
            if frames is None:
                return
            first = frame_bytes(frames[0])
            if first == FAN:
                self._fan_out(frames)
            elif first == NOTE:
                self._on_note(frames)
            elif first == DELIMITER or len(frames) < 2:
                # the controller took us for an engine (a pong before our hello)
                self.drops.info("ours", "ignored a message addressed to the relay itself")
            else:
                self._deliver(first, frames)

    def _deliver(self, engine: bytes, frames: list[Frame] | list[Frame | bytes]) -> None:
        try:
            send_frames(self.local, frames)
            self._down += 1
        except ChannelClosed:
            if engine in self.engines:
                self._report_gone([engine], "it left (a message to it found no connection)")

    def _fan_out(self, frames: list[Frame]) -> None:
        try:
            targets = fan_targets(frame_bytes(frames[1]))
        except Exception as exc:
            self.drops.warning("fan", "dropped a fan-out from the controller: %s", exc)
            return
        self._fanouts += 1
        rest = frames[2:]
        left = []
        for engine in targets:
            try:
                send_frames(self.local, [engine, *rest])
                self._down += 1
            except ChannelClosed:
                left.append(engine)
        if left:
            self._report_gone(
                [e for e in left if e in self.engines], "it left (a fan-out found no connection)"
            )

    def _on_note(self, frames: list[Frame]) -> None:
        try:
            note = unpack_note(frame_bytes(frames[1])) if len(frames) == 2 else None
        except Exception as exc:
            self.drops.warning("note", "dropped a note from the controller: %s", exc)
            return
        if note is None:
            return
        kind = note["kind"]
        if kind == "welcome":
            self._welcomed(note)
        elif kind == "signal":
            self._signal(note["engine"], note["signum"])
        elif kind == "bye":
            log.info("the controller stops: stopping")
            self._bye = True

    def _welcomed(self, note: dict[str, Any]) -> None:
        # the controller answered: connected, even if the monitor's "connected" came before
        # the monitor watched
        self._lost_since = None
        self.heartbeat_period = max(0.05, float(note["heartbeat_period"]))
        self.heartbeat_timeout = max(self.heartbeat_period * 2, float(note["heartbeat_timeout"]))
        if self._echo is None:
            # GIL-free, as an engine's: the controller sees us alive while we are
            host = self.connection.url.rsplit(":", 1)[0]
            self._echo = HeartbeatEcho(
                f"{host}:{self.connection.hb_ping_port}",
                f"{host}:{self.connection.hb_pong_port}",
                self.identity,
                self._curve,
            )
            self._echo.start()
        log.info("relaying for the controller at %s", self.connection.url)

    def _signal(self, engine: bytes, signum: int) -> None:
        record = self.engines.get(engine)
        if record is None or record.pid <= 0 or signum not in _SIGNALS:
            self.drops.warning("signal", "refused to signal an engine this relay does not serve")
            return
        try:
            cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes()
        except OSError:
            cmdline = b"pxcluster"  # no /proc: trust the pid it registered with
        if b"pxcluster" not in cmdline and b"pxengine" not in cmdline:
            return  # gone, its pid reused by another program: not ours
        try:
            os.kill(record.pid, signum)
            log.warning(
                "signalled engine pid %d (%s) for the controller",
                record.pid,
                signal.Signals(signum).name,
            )
        except OSError as exc:
            log.warning("could not signal engine pid %d: %s", record.pid, exc)

    # -- liveness ----------------------------------------------------------------------------

    def _hello(self) -> None:
        note = pack_note(
            "hello", pid=os.getpid(), hostname=socket.gethostname(), engines=list(self.engines)
        )
        with contextlib.suppress(ChannelClosed):
            send_frames(self.upstream, note)

    def _from_pongs(self) -> None:
        now = time.monotonic()
        for _ in range(_BATCH * 4):
            frames = self.pongs.recv_nowait()
            if frames is None:
                return
            record = self.engines.get(bytes(frames[0]))
            if record is not None:
                record.last_seen = now
                record.ponged = True

    def _beat(self, now: float) -> None:
        # This loop stood still (SIGSTOP, a swapping host) if the beat comes late: then no
        # pings went out, and the engines' silence over that time is the relay's own, not
        # theirs (as the hub blames no engine for the controller's stalls).
        stood_still = now - self._last_beat - self.heartbeat_period
        self._last_beat = now
        if stood_still > self.heartbeat_period:
            for record in self.engines.values():
                record.last_seen += stood_still
        self._ping_seq += 1
        self.pings.send([str(self._ping_seq).encode()])
        # An engine echoes pings once its registration is answered, which a controller
        # busy with many registrations may take a while to do: until then it has longer.
        limit, first = self.heartbeat_timeout, max(self.heartbeat_timeout, self.controller_timeout)
        silent = [
            e for e, r in self.engines.items() if now - r.last_seen > (limit if r.ponged else first)
        ]
        if silent:
            self._report_gone(silent, f"no heartbeat for {limit:.1f} s")

    def _report_gone(self, engines: list[bytes], why: str) -> None:
        if not engines:
            return
        for engine in engines:
            self.engines.pop(engine, None)
        self._gone += len(engines)
        log.warning("lost %d engine(s): %s", len(engines), why)
        with contextlib.suppress(ChannelClosed):
            send_frames(self.upstream, pack_note("gone", engines=engines, why=why))
