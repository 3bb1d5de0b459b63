"""Testing layer: many lightweight engines in one process, to load a real controller.

A load-test and benchmark tool, never part of a user's cluster. Each simulated engine has
what the controller sees of a real one: its own identity and DEALER socket, a REGISTER, a
heartbeat socket that echoes every ping, and replies to every request. They speak the real
protocol over real sockets (``wire`` to frame and sign, ``transport`` for the sockets) and run
requests with the engine's own ``RequestHandlers`` in a namespace each, so ``execute``,
``push``, ``pull``, ``gather`` and tasks give real answers; only the process around them is
thinner than ``pxengine``'s: one thread serves every engine, one request at a time, and
nothing runs in the background (no output streaming, no interrupts, no task timeouts).

Theory of operation
-------------------
``start`` connects every engine and sends every REGISTER at once (the burst a cluster of
that many engines makes). One loop then polls the engines' sockets and one SUB socket that
tells when the controller pings: a REGISTER's reply gives the engine its id and the
heartbeat ports, and the engine then connects its heartbeat sockets; each ping is echoed
from every registered engine's pong socket, as a real engine's ``HeartbeatEcho`` does (from
Python here, so a simulator busy with a burst of requests answers pings late: give its
controller a longer ``heartbeat_timeout`` on a loaded machine).
A SHUTDOWN stops its engine (the loop ends when every engine has stopped).

Sockets: with ``sockets="engine"`` (the default) each simulated engine holds the four
connections a ``pxengine`` holds (a DEALER that receives, a send-only DEALER for replies, a
SUB for pings and a DEALER for pongs), so the controller's memory and heartbeat costs are a
real cluster's. ``sockets="lean"`` gives each engine one DEALER for requests and replies and
one for pongs, with one SUB for the whole process: half the file descriptors, for sizes
whose four sockets per engine would pass the process's limit.

Relays: with ``relay=`` (``--relay FOLDER``) the engines connect to a per-host relay
(``pxrelay --folder FOLDER``) over IPC, as ``pxengine --relay`` does, and take their
pings from it: the controller then holds the relay's three connections, not four per
engine, which is how memory and file descriptors per engine are measured with relays.

Run it as a process (``python -m pxcluster.testing._simulator --file engine.json -n 1000``):
it prints one JSON line when every engine is registered (``{"registered": n, "seconds":
t}``), serves until the controller shuts the engines down or it is signalled, and prints a
last line of counts.
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import dataclasses
import itertools
import json
import logging
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pxcluster._buffers import Buffer
from pxcluster._errors import RemoteProtocolError
from pxcluster.engine._handlers import RequestHandlers, error_reply
from pxcluster.engine._tasks import TaskRefused
from pxcluster.profile import EngineConnection, read_engine_connection
from pxcluster.relay import RelayAddresses
from pxcluster.serialize import host_key
from pxcluster.transport import Channel, ChannelClosed, Context, Poller, connect
from pxcluster.wire import (
    CONTROL_REQUESTS,
    QUEUED_REQUESTS,
    Message,
    MsgType,
    RecentIds,
    Signer,
    Status,
    check_digests,
    decode,
    encode,
    sender_identity,
    unbatch,
)

log = logging.getLogger("pxcluster.simulator")

#: zmq sockets each simulated engine holds, as a real engine does (see the module docstring).
_SOCKETS_PER_ENGINE = {"engine": 4, "lean": 2}


def _namespace() -> dict[str, Any]:
    """A namespace like an engine's ``__main__`` (without installing it as ``__main__``:
    the simulator's engines share one process)."""
    return {"__builtins__": builtins, "__name__": "__main__"}


@dataclasses.dataclass(eq=False)
class SimulatedEngine:
    """One simulated engine: its sockets, its namespace, what the controller called it."""

    index: int
    identity: bytes
    channel: Channel
    guard: RecentIds = dataclasses.field(default_factory=RecentIds)
    id: int = -1
    pong: Channel | None = None
    sender: Channel | None = None  # the send-only socket (sockets="engine")
    pings: Channel | None = None  # its own SUB for pings (sockets="engine")
    registered_at: float = 0.0
    stopped: bool = False

    def __post_init__(self) -> None:
        self.handlers = RequestHandlers(_namespace(), lambda: self.id)


@dataclasses.dataclass(frozen=True)
class SimulatorStats:
    """What a simulator did so far."""

    engines: int
    registered: int
    register_seconds: float  # from start() until the last engine's registration reply
    requests: int  # requests answered, over all engines
    pings: int  # pings received and echoed (sockets="engine": each engine's count)
    stopped: int  # engines stopped by a SHUTDOWN


class EngineSimulator:
    """``count`` simulated engines of one controller, served by one thread.

    Args:
        connection: the controller's engine connection (as ``pxengine`` reads it).
        count: how many engines.
        hostname: what the engines report as their host name; a name other than this
            host's also makes them look remote (no shared memory with clients here), so
            payloads travel as bytes, as they do to engines on other hosts.
        sockets: ``"engine"`` (a real engine's four connections) or ``"lean"`` (two).
        relay: connect through the per-host relay (``pxrelay``) listening there, as
            ``pxengine --relay`` does, instead of to the controller directly.
    """

    def __init__(
        self,
        connection: EngineConnection,
        count: int,
        hostname: str | None = None,
        sockets: str = "engine",
        relay: RelayAddresses | None = None,
    ) -> None:
        if count < 1:
            raise ValueError("a simulator needs at least one engine")
        if sockets not in _SOCKETS_PER_ENGINE:
            raise ValueError(f"sockets must be one of {sorted(_SOCKETS_PER_ENGINE)}")
        self._faithful = sockets == "engine"
        self._relay_urls = relay.urls() if relay is not None else None
        if self._relay_urls is not None:  # the relay is local: no CurveZMQ to it
            connection = dataclasses.replace(
                connection, url=self._relay_urls[0], curve_serverkey=""
            )
        self.connection = connection
        self.count = count
        self._hostname = hostname or socket.gethostname()
        self._host_key = host_key() if hostname is None else f"simulated:{hostname}"
        self._signer = Signer(connection.key)
        self._curve = connection.curve_serverkey.encode("ascii") or None
        self._ctx = Context(max_sockets=count * _SOCKETS_PER_ENGINE[sockets] + 64)
        self._session = f"sim{os.getpid()}"
        self._ids = itertools.count()
        self._engines: list[SimulatedEngine] = []
        self._by_channel: dict[Channel, SimulatedEngine] = {}  # the engines' DEALERs
        self._poll_changed = False
        self._registered = 0
        self._stopped = 0
        self._requests = 0
        self._pings = 0
        self._started = 0.0
        self._all_registered = 0.0
        self._last_ping = 0.0
        self._pings_sub: Channel | None = None
        self._poller: Poller | None = None

    def _new_id(self) -> str:
        return f"{self._session}-{next(self._ids)}"

    # -- start -------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect every engine and send every REGISTER (one burst, as a big cluster does)."""
        self._started = time.monotonic()
        for index in range(self.count):
            identity = uuid.uuid4().hex.encode("ascii")
            chan = connect(
                self._ctx,
                "dealer",
                self.connection.url,
                identity=identity,
                curve_server=self._curve,
            )
            engine = SimulatedEngine(index, identity, chan)
            if self._faithful:
                engine.sender = connect(
                    self._ctx,
                    "dealer",
                    self.connection.url,
                    identity=sender_identity(identity),
                    curve_server=self._curve,
                )
            self._engines.append(engine)
            self._by_channel[chan] = engine
            self._register(engine)
        self._poller = Poller([e.channel for e in self._engines])

    def _register(self, engine: SimulatedEngine) -> None:
        content: dict[str, Any] = {
            "hostname": self._hostname,
            "pid": os.getpid(),
            "host": self._host_key,
        }
        if engine.id >= 0:
            content["id"] = engine.id
        # On the receiving socket, as an engine's I/O thread does: the reply goes to it, and
        # the send-only socket's message could arrive before it is connected.
        try:
            engine.channel.send(
                encode(Message(MsgType.REGISTER, self._new_id(), content), self._signer)
            )
        except ChannelClosed:
            log.info("simulated engine %d could not register: closing", engine.index)

    def _send(self, engine: SimulatedEngine, msg: Message) -> None:
        try:
            (engine.sender or engine.channel).send(encode(msg, self._signer))
        except ChannelClosed:
            log.info("simulated engine %d could not send: closing", engine.id)

    # -- the loop ----------------------------------------------------------------------------

    def serve(
        self,
        until: Callable[[], bool] = lambda: False,
        controller_timeout: float = 30.0,
        on_registered: Callable[[SimulatorStats], None] | None = None,
    ) -> SimulatorStats:
        """Serve until every engine stopped, ``until()`` is true, or no ping came for
        ``controller_timeout`` seconds (the controller is gone). ``on_registered`` is called
        once, when every engine has its id."""
        if self._poller is None:
            self.start()
        assert self._poller is not None
        self._last_ping = time.monotonic()
        announced = False
        while self._stopped < self.count and not until():
            if self._poll_changed:
                self._poll_changed = False
                pings = [self._pings_sub] if self._pings_sub is not None else []
                self._poller = Poller([*pings, *self._by_channel])
            for chan in self._poller.poll(0.2):
                assert isinstance(chan, Channel)
                engine = self._by_channel.get(chan)
                if engine is not None:
                    self._from_controller(engine)
                elif self._faithful:  # a ping: every engine's own SUB has it too
                    self._drain(chan)
                    for each in self._engines:
                        if each.pings is not None:
                            self._on_pings(each.pings, [each])
                else:
                    self._on_pings(chan, self._engines)
            if not announced and self._registered == self.count:
                announced = True
                if on_registered is not None:
                    on_registered(self.stats())
            if time.monotonic() - self._last_ping > controller_timeout:
                log.error("no ping from the controller for %.0f s: stopping", controller_timeout)
                break
        return self.stats()

    def stats(self) -> SimulatorStats:
        done = self._all_registered - self._started if self._all_registered else 0.0
        return SimulatorStats(
            self.count, self._registered, done, self._requests, self._pings, self._stopped
        )

    def _from_controller(self, engine: SimulatedEngine) -> None:
        while not engine.stopped:
            frames = engine.channel.recv_nowait()
            if frames is None:
                return
            try:
                msg = decode(frames, self._signer, engine.guard)
            except RemoteProtocolError as exc:
                log.warning("simulated engine %d dropped a message: %s", engine.id, exc)
                continue
            try:
                self._dispatch(engine, msg)
            except Exception:
                log.exception("simulated engine %d could not handle %s", engine.id, msg.type.name)

    def _dispatch(self, engine: SimulatedEngine, msg: Message) -> None:
        if msg.type == MsgType.REPLY and engine.registered_at == 0.0:
            self._on_registered(engine, msg)
        elif msg.type == MsgType.NOTIFY and msg.content.get("event") == "register":
            if engine.registered_at:
                engine.registered_at = 0.0
                self._registered -= 1
            self._register(engine)
        elif msg.type in CONTROL_REQUESTS:
            self._control(engine, msg)
        elif msg.type in QUEUED_REQUESTS:
            self._run(engine, msg)
        elif msg.type == MsgType.BATCH:  # tasks that queued up for it (wire/_batch.py)
            tasks, problems = unbatch(msg)
            for problem in problems:
                log.warning("simulated engine %d dropped a task of a batch: %s", engine.id, problem)
            for task in tasks:
                if task.type == MsgType.TASK:
                    self._run(engine, task)

    def _on_registered(self, engine: SimulatedEngine, msg: Message) -> None:
        engine_id = msg.content.get("id")
        ping, pong = msg.content.get("hb_ping_port"), msg.content.get("hb_pong_port")
        if type(engine_id) is not int or type(ping) is not int or type(pong) is not int:
            log.warning("ignoring a registration reply without an id or heartbeat ports")
            return
        engine.id = engine_id
        engine.registered_at = time.monotonic()
        host = self.connection.url.rsplit(":", 1)[0]
        ping_url, pong_url = f"{host}:{ping}", f"{host}:{pong}"
        if self._relay_urls is not None:  # the relay pings its engines itself
            ping_url, pong_url = self._relay_urls[1:]
        if engine.pong is None:
            engine.pong = connect(self._ctx, "dealer", pong_url, engine.identity, self._curve)
        if self._faithful and engine.pings is None:
            engine.pings = connect(self._ctx, "sub", ping_url, None, self._curve)
        if self._pings_sub is None:  # sockets="engine": only watched, tells when pings come
            self._pings_sub = connect(self._ctx, "sub", ping_url, None, self._curve)
            self._poll_changed = True
        self._registered += 1
        if self._registered == self.count:
            self._all_registered = engine.registered_at

    def _drain(self, chan: Channel) -> None:
        self._last_ping = time.monotonic()
        while chan.recv_nowait() is not None:
            pass

    def _on_pings(self, sub: Channel, engines: list[SimulatedEngine]) -> None:
        """Echo the pings waiting on ``sub`` from each of ``engines``."""
        self._last_ping = time.monotonic()
        frames = sub.recv_nowait()
        while frames is not None:
            self._pings += 1
            for engine in engines:
                if engine.pong is not None and not engine.stopped:
                    with contextlib.suppress(ChannelClosed):
                        engine.pong.send(frames)
            frames = sub.recv_nowait()

    # -- requests ----------------------------------------------------------------------------

    def _run(self, engine: SimulatedEngine, msg: Message) -> None:
        """Run a queued request at once (the engine's ``_run_request``, without threads)."""
        handlers = engine.handlers
        status = Status.OK
        buffers: Sequence[Buffer]
        try:
            check_digests(msg)
            content, buffers = handlers.handle(msg, None)
        except TaskRefused:
            content, buffers, status = handlers.reply_extra(msg), [], Status.REFUSED
        except Exception as exc:
            content, buffers = error_reply(exc, handlers.reply_extra(msg))
            status = Status.ERROR
        self._requests += 1
        reply = Message(
            MsgType.REPLY,
            self._new_id(),
            content,
            buffers,
            parent=msg.id,
            engine=engine.id,
            status=status,
        )
        self._send(engine, reply)
        handlers.retired.clear()

    def _control(self, engine: SimulatedEngine, msg: Message) -> None:
        """Control requests: nothing is ever queued or running between two of them here."""
        content: dict[str, Any]
        if msg.type == MsgType.CLEAR_QUEUE:
            content = {"cleared": 0}
        elif msg.type == MsgType.INTERRUPT:
            content = {"interrupted": None}
        else:  # SHUTDOWN
            if msg.targets:  # a client's kill(); the controller's own shutdown needs no reply
                self._reply(engine, msg, {})
            self._stop(engine)
            return
        self._reply(engine, msg, content)

    def _reply(self, engine: SimulatedEngine, msg: Message, content: dict[str, Any]) -> None:
        reply = Message(MsgType.REPLY, self._new_id(), content, parent=msg.id, engine=engine.id)
        self._send(engine, reply)

    def _stop(self, engine: SimulatedEngine) -> None:
        engine.stopped = True
        self._stopped += 1

    def close(self) -> None:
        """Close every socket."""
        self._ctx.close(linger=0.5)


# -- as a process ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m pxcluster.testing._simulator",
        description="Run many simulated engines against a controller (a load-test tool).",
    )
    p.add_argument("--file", type=Path, required=True, help="the engine connection file")
    p.add_argument("-n", type=int, default=100, help="how many engines (default 100)")
    p.add_argument(
        "--hostname",
        default=None,
        help="the host name engines report; another host's makes them look remote",
    )
    p.add_argument(
        "--sockets",
        choices=sorted(_SOCKETS_PER_ENGINE),
        default="engine",
        help="engine: a real engine's four connections each (default); lean: two",
    )
    p.add_argument(
        "--relay",
        type=Path,
        default=None,
        metavar="FOLDER",
        help="connect through the pxrelay listening in FOLDER (pxrelay --folder)",
    )
    p.add_argument(
        "--controller-timeout",
        type=float,
        default=30.0,
        help="stop after this many seconds without a ping (default 30)",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sim = EngineSimulator(
        read_engine_connection(args.file),
        args.n,
        args.hostname,
        sockets=args.sockets,
        relay=RelayAddresses(args.relay) if args.relay is not None else None,
    )
    out = sys.stdout

    def report(stats: SimulatorStats) -> None:
        line = {"registered": stats.registered, "seconds": round(stats.register_seconds, 4)}
        out.write(json.dumps(line) + "\n")
        out.flush()

    try:
        stats = sim.serve(lambda: stopping, args.controller_timeout, report)
    finally:
        sim.close()
    out.write(json.dumps({"done": dataclasses.asdict(stats)}) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
