"""Controller layer: the server loop, the I/O shell around the hub.

One thread, one poller over three sockets (clients, engines, heartbeat pongs) and a PUB
that pings engines every ``heartbeat_period``. Payload frames are received as zero-copy
views and forwarded as they are; only headers are parsed.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import msgpack

from pxcluster._buffers import Buffer
from pxcluster._errors import ContentMismatch, NoClusterRunning, RemoteProtocolError
from pxcluster.controller._hub import KILL_GRACE, EngineRecord, Hub
from pxcluster.controller._idledger import IdLedgerFile
from pxcluster.controller._memory import give_back_memory
from pxcluster.controller._outbound import Outbound
from pxcluster.controller._relays import Relays
from pxcluster.controller._store import RecordStore, Retention
from pxcluster.profile import (
    ClientConnection,
    ClusterConfig,
    EngineConnection,
    ProfilePaths,
    read_client_connection,
    read_curve_keys,
    read_engine_connection,
    write_connection,
    write_curve_keys,
)
from pxcluster.serialize import host_key
from pxcluster.transport import (
    Channel,
    ChannelClosed,
    Context,
    Poller,
    bind,
    new_curve_keypair,
)
from pxcluster.wire import (
    NOTE,
    DropLog,
    Message,
    MsgType,
    ReplayGuard,
    Signer,
    Status,
    decode,
    encode,
    encode_raw,
    fan_frames,
    new_key,
    pack_note,
    relayed_identity,
    reply_identity,
    split_relayed,
    split_routing,
    unpack_note,
)

log = logging.getLogger("pxcluster.controller")

#: Messages taken from one socket before the others get a turn, so no side starves.
_BATCH = 256
#: Seconds between writes of finished tasks to the record store.
_FLUSH_PERIOD = 0.2
#: Messages queued unread from one peer at most (ZeroMQ's receive high-water mark): past
#: it, ZeroMQ stops reading that peer, so a flood from one socket costs the controller at
#: most this many messages of memory. Big enough that a client submitting tasks in a burst
#: is never slowed by it.
_RECEIVE_LIMIT = 20_000
#: Messages handled since the last time memory was given back, for it to be worth doing
#: again on an idle tick (and seconds between two such times at least).
_TRIM_AFTER = 10_000
_TRIM_PERIOD = 10.0
#: Client and engine messages in one beat period that still count as idle (a dashboard's
#: polls, an occasional call), for giving memory back.
_QUIET_REQUESTS = 10
#: Error answers to dropped client messages sent per second at most (see ``_refuse``).
_REFUSALS_PER_SECOND = 100
#: Bytes a heartbeat message may have (an engine's identity and a ping's number).
_PONG_MAX = 1024
#: Container objects allocated (net) between two passes of the cyclic garbage collector.
#: The loop makes a few dozen per task, nearly all freed at once by reference counting;
#: at Python's default (700) a pass ran every few dozen tasks and took 5-7 % of the
#: controller's CPU under load (py-spy). A pass's cost follows the objects still alive,
#: not the threshold, so passes 30x rarer cost about 30x less; cyclic garbage waits longer.
_GC_EVERY = 20_000


def _reachable_ip(ip: str) -> str:
    """The address to write into connection files for a controller bound on ``ip``."""
    if ip in ("0.0.0.0", "*", ""):
        try:
            return socket.gethostbyname(socket.gethostname())
        except OSError:
            return "127.0.0.1"
    return ip


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _left_by_a_gone_controller(
    paths: ProfilePaths,
) -> tuple[ClientConnection, EngineConnection] | None:
    """The connection files a controller that is no longer running left behind (it was
    killed or crashed), or None: a controller that stops cleanly removes its files."""
    try:
        client = read_client_connection(paths.client_file)
        engine = read_engine_connection(paths.engine_file)
    except (NoClusterRunning, KeyError, ValueError, TypeError):
        return None
    pid = engine.controller_pid
    if pid <= 0 or pid == os.getpid() or client.controller_pid != pid or _running(pid):
        return None  # alive (or its pid reused): not ours to take over
    return client, engine


def _running(pid: int) -> bool:
    """True if process ``pid`` exists and is not a zombie (killed, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc here: it exists, so count it as running
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


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
            config.heartbeat_timeout,
            store=self.store,
            task_prefetch=config.task_prefetch,
            task_prefetch_short=config.task_prefetch_short,
            heartbeat_period=config.heartbeat_period,
            walltime_margin=config.walltime_margin,
        )
        self._ctx = Context()
        self._stop_requested = False
        #: Dropped messages and survived errors: one log line per kind per 10 s, whatever
        #: a peer sends.
        self.drops = DropLog(log)
        self._handled = 0  # messages read since memory was last given back
        #: Client and engine messages read (heartbeats not counted), and their count at the
        #: latest beat: how many came during the last beat period tells whether it was quiet.
        self._requests = self._requests_at_beat = 0
        self._refusals_left, self._refusals_reset = _REFUSALS_PER_SECOND, 0.0
        self.hub.host = host_key()
        #: Per-host relays (``pxrelay``): their engines are the hub's like any other.
        self.relays = Relays(self.hub)
        #: Ends an engine that does not answer a kill (C code holding the GIL); returns how
        #: it did ("" if it could not). Local engines are signalled by pid; a launcher that
        #: holds handles to remote engines (``launchers/_launcher.py``) may set its own.
        self.end_engine: Callable[[EngineRecord], str] = self._end_local_engine
        self._trimmed_at = 0.0
        ip = config.ip
        previous = _left_by_a_gone_controller(self.paths)
        self.took_over_from = 0  # pid of the gone controller whose place this one took
        if previous is not None:
            try:
                self._bind_like(previous, config)
                self.took_over_from = previous[1].controller_pid
            except OSError as exc:
                log.warning("could not take the gone controller's place (%s): starting anew", exc)
                self._ctx.close()
                self._ctx = Context()
                previous = None
        self.id_ledger = IdLedgerFile(self.paths.pid / "engine-ids.json")
        ledger = self.id_ledger.load() if previous is not None else None
        if ledger is not None:
            self.hub.restore_ids(*ledger)  # ids the gone controller gave are never given again
        if previous is None:
            self._client_key, self._engine_key = new_key(), new_key()
            self._curve = new_curve_keypair() if config.curve else None
            self._bind_all(config.client_port, config.engine_port, 0, 0)
        self._client_signer = Signer(self._client_key)
        self._engine_signer = Signer(self._engine_key)
        self._client_guard = ReplayGuard()
        self._engine_guard = ReplayGuard()
        ping_port, pong_port = self._ping_port, self._pong_port
        host = config.location or _reachable_ip(ip)  # --location: what other hosts use
        # Ports only: an engine reaches them at the host it reached the controller at,
        # which is right even when the controller listens on every interface.
        self.hub.heartbeat_info = {
            "hb_ping_port": ping_port,
            "hb_pong_port": pong_port,
            "heartbeat_timeout": config.heartbeat_timeout,  # engines sense freezes by it
        }
        self.client_url = f"tcp://{host}:{self.client_port}"
        self.engine_url = f"tcp://{host}:{self.engine_port}"

    def _bind_like(
        self, previous: tuple[ClientConnection, EngineConnection], config: ClusterConfig
    ) -> None:
        """Listen where the gone controller listened, with its keys, so that its engines
        and clients reconnect to this one (ports given in the config win).

        Raises:
            OSError: one of those ports is taken.
        """
        client, engine = previous
        self._client_key, self._engine_key = client.key, engine.key
        self._curve = None
        if engine.curve_serverkey:  # its engines and clients speak CurveZMQ: so must we
            kept = read_curve_keys(self.paths.curve_file)
            if kept is None or kept[0].decode("ascii") != engine.curve_serverkey:
                raise OSError(f"its CurveZMQ secret key is missing from {self.paths.curve_file}")
            self._curve = kept
        self._bind_all(
            config.client_port or _port_of(client.url),
            config.engine_port or _port_of(engine.url),
            engine.hb_ping_port,
            engine.hb_pong_port,
        )

    def _bind_all(self, client_port: int, engine_port: int, ping_port: int, pong_port: int) -> None:
        """Bind the four sockets (port 0: any free one), encrypted if ``self._curve``."""
        ip = self.config.ip
        secret = self._curve[1] if self._curve else None
        limit = _RECEIVE_LIMIT  # per peer: a flood waits in the sender, not here
        self.clients, self.client_port = bind(
            self._ctx, "router", ip, client_port, secret, receive_limit=limit
        )
        self.engines, self.engine_port = bind(
            self._ctx, "router", ip, engine_port, secret, receive_limit=limit
        )
        self._ping, self._ping_port = bind(self._ctx, "pub", ip, ping_port, secret)
        self._pong, self._pong_port = bind(
            self._ctx, "router", ip, pong_port, secret, receive_limit=limit, max_message=_PONG_MAX
        )

    def write_connection_files(self) -> None:
        """Write the engine and client connection files (mode 0600) into security/.

        The client file goes last: its appearance (with this controller's pid) is what
        launchers, ``pxcluster start`` and tools wait for before they start engines or
        read the engine file, which must then be this controller's, not missing or a
        previous one's.
        """
        pid = os.getpid()
        server_key = ""
        if self._curve is not None:
            write_curve_keys(self.paths.curve_file, *self._curve)
            server_key = self._curve[0].decode("ascii")
        write_connection(
            self.paths.engine_file,
            EngineConnection(
                self.engine_url,
                self._engine_key,
                pid,
                self.paths.name,
                self._ping_port,
                self._pong_port,
                server_key,
            ),
        )
        write_connection(
            self.paths.client_file,
            ClientConnection(self.client_url, self._client_key, pid, self.paths.name, server_key),
        )

    def remove_connection_files(self) -> None:
        """Remove our connection files (not those a newer controller wrote over them)."""
        ours = 0
        for path in (self.paths.client_file, self.paths.engine_file):
            try:
                if json.loads(path.read_text()).get("controller_pid") == os.getpid():
                    path.unlink()
                    ours += 1
            except (OSError, ValueError, AttributeError):
                pass  # gone already, or not ours: leave it
        if ours and self._curve is not None:
            self.paths.curve_file.unlink(missing_ok=True)

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
        if self.took_over_from:
            log.info(
                "took the place of controller pid %d, which is gone: same ports and keys, so "
                "its engines and clients reconnect here",
                self.took_over_from,
            )
        poller = Poller([self.clients, self.engines, self._pong])
        next_beat = next_flush = time.monotonic()
        clean = False
        collector = gc.get_threshold()
        gc.freeze()  # what start-up made lives as long as the process: never scanned again
        gc.set_threshold(_GC_EVERY, *collector[1:])
        try:
            while not (self.hub.shutdown_requested or self._stop_requested):
                try:
                    wake = min(next_beat, next_flush)
                    for chan in poller.poll(max(0.0, wake - time.monotonic())):
                        assert isinstance(chan, Channel)
                        self._drain(chan)
                    now = time.monotonic()
                    if now >= next_flush:
                        next_flush = now + _FLUSH_PERIOD
                        self.store.flush()  # batched; never raises (a failing disk waits)
                    if now >= next_beat:
                        next_beat = now + self.hub.beat_period()  # longer for many engines
                        self._drain(self._pong, limit=None)  # count every pong that came in
                        self._send_all(self.hub.check_liveness())
                        self._ping.send([self.hub.next_ping()])
                        self._end_overdue_kills()
                        self.relays.forget_silent()
                        self.id_ledger.save(*self.hub.id_ledger())
                        self._maybe_give_back_memory(now)
                except Exception:
                    # A bug, not a peer's doing (their messages are handled one by one
                    # below): the controller holds every engine's place, so it goes on.
                    self.drops.exception("loop", "the controller's loop survived an error")
            if self._stop_requested:
                self._send_all(self.hub.shutdown_engines())
            for relay in self.relays.records:  # after their engines' SHUTDOWNs
                self._note(relay, pack_note("bye"))
            clean = True
        finally:
            gc.set_threshold(*collector)
            log.info("controller stopping" if clean else "controller failed")
            self.store.close()
            if clean:
                self.remove_connection_files()
                self.id_ledger.remove()
            else:
                # As after kill -9: the files stay, so `pxcontroller` takes this one's place
                # (same ports and keys) and the engines, with their namespaces, come back.
                log.error(
                    "kept the connection files in %s: start pxcontroller again to take over "
                    "this controller's engines and clients",
                    self.paths.security,
                )
            self._ctx.close(linger=1.0)

    def _end_overdue_kills(self) -> None:
        """Engines that did not confirm a client's kill in time are ended here, by signal;
        those that did not answer an interrupt are signalled to raise KeyboardInterrupt."""
        for engine in self.hub.overdue_kills():
            how = self.end_engine(engine)
            if how:
                self._send_all(self.hub.killed(engine.id, how))
            else:  # another host, no relay: the cluster's keeper asks its launcher
                self.hub.want_signal(engine.id, signal.SIGKILL)
        for engine in self.hub.overdue_interrupts():
            if not self._signal_local_engine(engine, signal.SIGUSR1):
                self.hub.want_signal(engine.id, signal.SIGUSR1)  # the keeper, as above
            else:
                log.warning(
                    "engine %d (pid %d) did not answer an interrupt within %.0f s (C code "
                    "holding the GIL?): signalled it",
                    engine.id,
                    engine.pid,
                    KILL_GRACE,
                )

    def _signal_local_engine(self, engine: EngineRecord, signum: int) -> bool:
        """Send ``signum`` to ``engine`` if it runs on this host and its pid is still an
        engine's, or ask its relay to (any host); False if it could not be (another host
        without a relay: its launcher must do it)."""
        relayed = split_relayed(engine.identity)
        if relayed is not None:
            relay, name = relayed
            return self._note(relay, pack_note("signal", engine=name, signum=int(signum)))
        if not engine.host or engine.host != self.hub.host or engine.pid <= 0:
            log.warning(
                "engine %d does not answer and runs on another host (%s): its launcher "
                "must signal it",
                engine.id,
                engine.hostname,
            )
            return False
        try:
            cmdline = Path(f"/proc/{engine.pid}/cmdline").read_bytes()
        except OSError:
            cmdline = b"pxcluster"  # no /proc: trust the pid it registered with
        if b"pxcluster" not in cmdline and b"pxengine" not in cmdline:
            return False  # gone, and its pid reused by another program: not ours
        try:
            os.kill(engine.pid, signum)
        except OSError:
            return False
        return True

    def _end_local_engine(self, engine: EngineRecord) -> str:
        """SIGKILL ``engine`` if it runs on this host and its pid is still an engine."""
        if not self._signal_local_engine(engine, signal.SIGKILL):
            return ""
        if split_relayed(engine.identity) is not None:
            log.warning(
                "engine %d (pid %d on %s) did not confirm its kill within %.0f s (C code "
                "holding the GIL?): its relay killed it",
                engine.id,
                engine.pid,
                engine.hostname,
                KILL_GRACE,
            )
            return "killed by its relay (it did not answer its kill)"
        log.warning(
            "engine %d (pid %d) did not confirm its kill within %.0f s (C code holding the "
            "GIL?): killed it",
            engine.id,
            engine.pid,
            KILL_GRACE,
        )
        return "killed by the controller (it did not answer its kill)"

    def _maybe_give_back_memory(self, now: float) -> None:
        """After a burst (many messages) and once idle (no task in flight, and at most
        ``_QUIET_REQUESTS`` client or engine messages in the last beat period), return the
        heap's free pages to the system, at most every ``_TRIM_PERIOD`` seconds. Not while
        requests flow: the collection and trim take 10-40 ms, which the requests of that
        moment would wait for."""
        quiet = self._requests - self._requests_at_beat <= _QUIET_REQUESTS
        self._requests_at_beat = self._requests
        if (
            quiet
            and self._handled >= _TRIM_AFTER
            and now - self._trimmed_at >= _TRIM_PERIOD
            and not self.hub.tasks.scheduler.tasks
        ):
            self._handled, self._trimmed_at = 0, now
            give_back_memory()

    def _drain(self, chan: Channel, limit: int | None = _BATCH) -> None:
        taken = 0
        while limit is None or taken < limit:
            frames = chan.recv_nowait()
            if frames is None:
                break
            taken += 1
            if chan is self._pong:
                try:
                    payload = bytes(frames[1]) if len(frames) > 1 else b""
                    sender = bytes(frames[0])
                    relayed = self.relays.pong(sender, payload) if self.relays.records else None
                    if relayed is not None:
                        self._send_all(relayed)  # a relay's pong stands for its engines
                    else:
                        self._send_all(self.hub.heartbeat(sender, payload))
                except Exception:
                    self.drops.exception("pong", "could not handle a heartbeat; dropped it")
            elif chan is self.clients:
                self._from_client(frames)
            else:
                self._from_engine(frames)
        self._handled += taken
        if chan is not self._pong:
            self._requests += taken

    def _from_client(self, frames: list[Buffer]) -> None:
        self._receive(
            frames, "client", self._client_signer, self._client_guard, self.hub.client_message
        )

    def _from_engine(self, frames: list[Buffer]) -> None:
        if len(frames) == 3 and frames[1] == NOTE:
            self._from_relay(bytes(frames[0]), frames[2])
            return
        self._receive(
            frames, "engine", self._engine_signer, self._engine_guard, self.hub.engine_message
        )

    def _receive(
        self,
        frames: list[Buffer],
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
            msg = decode(rest, signer, guard, check_buffers=False)  # engines/clients check
        except ContentMismatch as exc:
            self.drops.warning(f"content-{port}", "dropped a message on the %s port: %s", port, exc)
            if port == "client":  # authentic: tell the sender, so its call fails, not hangs
                self._refuse(frames, exc.request_id, f"the controller refused it: {exc}")
            return
        except RemoteProtocolError as exc:
            self.drops.warning(f"bad-{port}", "dropped a message on the %s port: %s", port, exc)
            if port == "client" and "signature" in str(exc):
                self._refuse_unverified(frames)
            return
        except Exception:  # a bug in decoding: still not a reason to stop
            self.drops.exception(
                f"decode-{port}", "could not decode a message on the %s port", port
            )
            return
        if len(routing) == 1:
            identity = reply_identity(routing[0])
        elif (
            len(routing) == 2
            and port == "engine"
            and len(routing[0]) <= 255
            and 0 < len(routing[1]) <= 255
        ):
            # an engine behind a relay (``wire._relay``): named by both
            identity = relayed_identity(routing[0], reply_identity(routing[1]))
            if msg.type == MsgType.REGISTER:
                self.relays.registered(routing[0], identity)
        else:
            self.drops.warning(
                f"routing-{port}", "dropped a %s message with %d routing frames", port, len(routing)
            )
            return
        try:
            outbound = handle(identity, msg)
        except Exception:
            self.drops.exception(
                f"handle-{msg.type.name}",
                "could not handle %s from a %s; dropped it",
                msg.type.name,
                port,
            )
            return
        self._send_all(outbound)

    def _from_relay(self, relay: bytes, frame: Buffer) -> None:
        """A note from a per-host relay (``wire._relay``): checked, never trusted further
        than the engines behind that relay."""
        try:
            note = unpack_note(frame)
        except RemoteProtocolError as exc:
            self.drops.warning("relay-note", "dropped a relay note: %s", exc)
            return
        try:
            if note["kind"] == "hello":
                outbound, welcome = self.relays.hello(relay, note)
                self._note(relay, pack_note("welcome", **welcome))
                self._send_all(outbound)
            elif note["kind"] == "gone":
                self._send_all(self.relays.gone(relay, note["engines"], note["why"]))
            else:
                self.drops.warning("relay-kind", "dropped a %r note from a relay", note["kind"])
        except Exception:
            self.drops.exception("relay-handle", "could not handle a relay's note; dropped it")

    def _note(self, relay: bytes, frames: list[bytes]) -> bool:
        """Send a note to ``relay``; False if it is not connected."""
        try:
            self.engines.send([relay, *frames])
        except ChannelClosed:
            self.drops.info("relay-left", "a relay left before a note reached it")
            return False
        return True

    def _refuse_unverified(self, frames: list[Buffer]) -> None:
        """Tell a client its message failed verification, so its call fails instead of hanging.

        The usual cause is not an attacker but a buffer changed while it was being sent. The
        reply says nothing about the key, and goes only back to the sender.
        """
        try:
            head = msgpack.unpackb(bytes(split_routing(frames)[1][2]), raw=False)
            request_id = head["i"] if isinstance(head, dict) else None
        except Exception:
            return
        text = (
            "the controller could not verify this message and dropped it (wrong key, or a "
            "buffer that changed while it was being sent)"
        )
        self._refuse(frames, request_id, text, "unverified")

    def _refuse(
        self, frames: list[Buffer], request_id: object, text: str, kind: str = "invalid"
    ) -> None:
        """Answer a client's message that was dropped with an error, to its sender only."""
        try:
            routing = split_routing(frames)[0]
        except RemoteProtocolError:
            return
        if len(routing) != 1 or not isinstance(request_id, str) or len(request_id) > 200:
            return
        # A courtesy, so a corrupted send fails instead of hanging; bounded, because a peer
        # that floods dropped messages and reads no answers would pile them up here.
        now = time.monotonic()
        if now >= self._refusals_reset:
            self._refusals_reset, self._refusals_left = now + 1.0, _REFUSALS_PER_SECOND
        if self._refusals_left <= 0:
            return
        self._refusals_left -= 1
        reply = Message(
            MsgType.REPLY,
            self.hub.new_id(),
            {"error": text[:1000], "kind": kind},
            parent=request_id,
            status=Status.ENGINE_ERROR,
        )
        self._send_all([Outbound("client", reply_identity(routing[0]), reply)])

    def _send_all(self, outbound: list[Outbound]) -> None:
        previous: Outbound | None = None
        frames: list[Buffer] = []
        #: engines behind relays that the current message goes to, by relay: sent as one
        #: message per relay once the next message (or the end) comes
        fans: dict[bytes, list[bytes]] = {}
        for out in outbound:
            if out.to == "client":
                chan, signer = self.clients, self._client_signer
            else:
                chan, signer = self.engines, self._engine_signer
            # A fan-out sends one message to many engines: sign it once, not once per engine
            # (compared by identity: comparing payloads would cost as much as signing them).
            if not (
                previous is not None
                and previous.to == out.to
                and previous.msg is out.msg
                and previous.header is out.header
                and previous.buffers is out.buffers
            ):
                if fans:
                    self._send_fans(fans, frames)
                    fans = {}
                try:
                    if out.msg is not None:
                        frames = encode(out.msg, signer)
                    else:
                        frames = encode_raw(out.header, out.buffers, signer)
                except Exception:  # a bug: lose this message, not the controller
                    self.drops.exception("encode", "could not encode a message to a %s", out.to)
                    frames = []
            previous = out
            if not frames:
                continue  # could not be encoded (logged above): never sent half-made
            identity = out.identity
            if identity[0] == 0 and out.to == "engine":  # zero: ZeroMQ's names, or relayed
                relayed = split_relayed(identity)
                if relayed is not None:
                    fans.setdefault(relayed[0], []).append(relayed[1])
                    continue
            try:
                chan.send([identity, *frames])
            except ChannelClosed:
                if out.to == "client":
                    self.drops.info("client-left", "a client left before its reply; dropped it")
                    self.hub.client_gone(out.identity)
                else:
                    self.drops.info("engine-left", "an engine left before a message reached it")
        if fans:
            self._send_fans(fans, frames)

    def _send_fans(self, fans: dict[bytes, list[bytes]], frames: list[Buffer]) -> None:
        """Send one message to engines behind relays: once per relay, which hands it to
        each of its engines (a big push crosses the network once per host)."""
        for relay, engines in fans.items():
            try:
                if len(engines) == 1:
                    self.engines.send([relay, engines[0], *frames])
                else:
                    self.engines.send([relay, *fan_frames(engines, frames)])
            except ChannelClosed:
                self.drops.info("relay-left", "a relay left before a message reached it")
