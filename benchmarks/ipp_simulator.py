"""Many lightweight ipyparallel engines in one process, to load a real ipyparallel controller.

The counterpart of ``pxcluster.testing._simulator`` for ipyparallel 9 (issue 13's "the same
simulated rows for ipyparallel"): each simulated engine does what ``ipyparallel.engine.app``
does on the wire, with jupyter_client's ``Session`` over real zmq sockets, so the controller
(hub, heart monitor, schedulers: all real, started with ``ipcontroller``) cannot tell it from
an ``ipengine``:

- a DEALER with the engine's uuid as identity sends ``registration_request {uuid}`` to the
  registration port and waits for ``registration_reply`` at most ``--timeout`` seconds (an
  ``ipengine`` gives up after ``IPEngine.timeout``, 5 s by default: such an engine is
  counted as given up, as a real one would exit);
- after the reply: a shell ROUTER (identity = uuid) connected to the mux, task and one
  broadcast leaf port (``id % leaves``, as the engine picks), a control ROUTER, an iopub
  PUB, and the heart: a SUB on the ping port whose every message goes back unchanged on a
  DEALER (identity = uuid) to the pong port. The hub finishes a registration when the
  heart monitor has seen that heart answer a ping;
- ``execute_request`` runs the code in the engine's own namespace, ``apply_request`` unpacks
  with ipyparallel's own ``unpack_apply_message`` and replies with ``serialize_object``;
  both publish ``status: busy``/``idle`` (and ``execute_input``) on iopub as the kernel does,
  with the ``engine`` uuid in every message's metadata as ``ipengine`` patches it in.
  ``shutdown_request``, ``clear_request`` and ``abort_request`` on control get their replies.

What is thinner than an ``ipengine``: one thread serves every engine, one request at a time;
the heart echoes from Python (an ``ipengine``'s heart is a C device in a thread of its own),
so a simulator busy with a burst answers pings late; there is no nanny process, no output
capture, no interrupts. ``ipyparallel.util.get_ipython`` (what ``push``/``pull`` use to find
the namespace) is pointed at the engine whose request is running.

Run: ``python benchmarks/ipp_simulator.py --file PROFILE/security/ipcontroller-engine.json -n
1000`` (with ipyparallel installed: ``.venv-bench``). It prints one JSON line once every
engine has its registration reply (or gave up), serves until every engine was shut down,
no ping came for ``--controller-timeout`` seconds, or SIGTERM, and prints a last line of counts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

import zmq
from ipyparallel import util as ipp_util
from ipyparallel.serialize import serialize_object, unpack_apply_message
from jupyter_client.session import Session

log = logging.getLogger("ipp_simulator")


class _Shell:
    """What ipyparallel's helpers ask of ``get_ipython()``: the engine's namespace."""

    def __init__(self, ns: dict[str, Any]) -> None:
        self.user_ns = self.user_global_ns = ns


_current: list[_Shell] = []


def _get_ipython() -> _Shell | None:
    return _current[-1] if _current else None


class SimEngine:
    """One simulated ipyparallel engine: its sockets, namespace and id."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.uuid = str(uuid.uuid4())
        self.ident = self.uuid.encode("ascii")
        self.id = -1
        self.ns: dict[str, Any] = {"__name__": "__main__"}
        self.shell_ns = _Shell(self.ns)
        self.count = 0
        self.sent_at = 0.0
        self.replied_at = 0.0
        self.stopped = False
        self.reg: zmq.Socket[bytes] | None = None
        self.shell: zmq.Socket[bytes] | None = None
        self.control: zmq.Socket[bytes] | None = None
        self.iopub: zmq.Socket[bytes] | None = None
        self.hb_in: zmq.Socket[bytes] | None = None
        self.hb_out: zmq.Socket[bytes] | None = None


class IppEngineSimulator:
    """``count`` simulated engines of one ipyparallel controller, one thread."""

    def __init__(self, connection: dict[str, Any], count: int, timeout: float = 5.0) -> None:
        self.info = connection
        self.count = count
        self.timeout = timeout
        ipp_util._disable_session_extract_dates()
        self.session = Session(
            key=connection.get("key", "").encode("utf8"),
            signature_scheme=connection["signature_scheme"],
            packer=connection["pack"],
            unpacker=connection["unpack"],
        )
        self.ctx = zmq.Context()
        self.ctx.set(zmq.MAX_SOCKETS, count * 8 + 64)
        self.engines = [SimEngine(i) for i in range(count)]
        self.poller = zmq.Poller()
        self.owner: dict[zmq.Socket[bytes], tuple[SimEngine, str]] = {}
        self.watch: zmq.Socket[bytes] | None = None  # tells when pings come
        self.lagging: set[SimEngine] = set()  # registered, first ping not seen yet
        self.replied = self.refused = self.gave_up = self.requests = self.pings = 0
        self.started = self.last_reply = self.last_ping = 0.0
        ipp_util.get_ipython = _get_ipython  # type: ignore[assignment]

    def url(self, key: str) -> str:
        return f"{self.info['interface']}:{self.info[key]}"

    def _socket(self, kind: int, url: str, identity: bytes | None = None) -> zmq.Socket[bytes]:
        sock: zmq.Socket[bytes] = self.ctx.socket(kind)
        sock.linger = 0
        if identity is not None:
            sock.identity = identity
        sock.connect(url)
        return sock

    def _watch(self, sock: zmq.Socket[bytes], engine: SimEngine, role: str) -> None:
        self.owner[sock] = (engine, role)
        self.poller.register(sock, zmq.POLLIN)

    def _unwatch(self, sock: zmq.Socket[bytes]) -> None:
        self.owner.pop(sock, None)
        with contextlib.suppress(KeyError):
            self.poller.unregister(sock)

    # -- registration ----------------------------------------------------------------------

    def start(self) -> None:
        """Every engine sends its registration request at once (a cluster's burst)."""
        self.started = self.last_ping = time.monotonic()
        for engine in self.engines:
            engine.reg = self._socket(zmq.DEALER, self.url("registration"), engine.ident)
            self.session.send(engine.reg, "registration_request", content={"uuid": engine.uuid})
            engine.sent_at = time.monotonic()
            self._watch(engine.reg, engine, "reg")

    def _on_registration(self, engine: SimEngine, sock: zmq.Socket[bytes]) -> None:
        frames = sock.recv_multipart()
        if engine.replied_at:
            return
        _, rest = self.session.feed_identities(frames)
        msg = self.session.deserialize(rest)
        engine.replied_at = self.last_reply = time.monotonic()
        self.replied += 1
        self._unwatch(sock)  # kept open, as ipengine keeps its registrar
        content = msg["content"]
        if content.get("status") != "ok":
            self.refused += 1
            engine.stopped = True
            log.warning("engine %d refused: %s", engine.index, content.get("evalue"))
            return
        engine.id = content["id"]
        leaves = self.info["broadcast"]
        shell = engine.shell = self.ctx.socket(zmq.ROUTER)
        shell.linger = 0
        shell.identity = engine.ident
        iface = self.info["interface"]
        for url in (
            self.url("mux"),
            self.url("task"),
            f"{iface}:{leaves[engine.id % len(leaves)]}",
        ):
            shell.connect(url)
        engine.control = self._socket(zmq.ROUTER, self.url("control"), engine.ident)
        iopub = engine.iopub = self.ctx.socket(zmq.PUB)
        iopub.linger = 0
        iopub.sndhwm = 0
        iopub.identity = engine.ident
        iopub.connect(self.url("iopub"))
        engine.hb_in = self._socket(zmq.SUB, self.url("hb_ping"))
        engine.hb_in.setsockopt(zmq.SUBSCRIBE, b"")
        engine.hb_out = self._socket(zmq.DEALER, self.url("hb_pong"), engine.ident)
        self._watch(shell, engine, "shell")
        self._watch(engine.control, engine, "control")
        self._watch(engine.hb_in, engine, "hb")  # until its first ping is echoed
        self.lagging.add(engine)
        if self.watch is None:
            self.watch = self._socket(zmq.SUB, self.url("hb_ping"))
            self.watch.setsockopt(zmq.SUBSCRIBE, b"")
            self.poller.register(self.watch, zmq.POLLIN)

    def _check_timeouts(self, now: float) -> None:
        """An engine without a reply after ``timeout`` gives up, as ``IPEngine.abort`` does."""
        for engine in self.engines:
            waiting = engine.reg is not None and not engine.replied_at and not engine.stopped
            if waiting and now - engine.sent_at > self.timeout:
                assert engine.reg is not None
                if engine.reg.get(zmq.EVENTS) & zmq.POLLIN:
                    continue  # the reply came in time, this loop is late: read it next
                engine.stopped = True
                self.gave_up += 1
                self._unwatch(engine.reg)
                # what IPEngine.abort sends (its id is still None)
                self.session.send(engine.reg, "unregistration_request", content={"id": None})

    # -- heartbeats ------------------------------------------------------------------------

    def _echo(self, engine: SimEngine) -> bool:
        """Echo every ping waiting on the engine's heart; whether there was one."""
        assert engine.hb_in is not None
        assert engine.hb_out is not None
        echoed = False
        while engine.hb_in.get(zmq.EVENTS) & zmq.POLLIN:
            engine.hb_out.send_multipart(engine.hb_in.recv_multipart())
            echoed = True
        return echoed

    def _on_ping(self) -> None:
        assert self.watch is not None
        self.last_ping = time.monotonic()
        while self.watch.get(zmq.EVENTS) & zmq.POLLIN:
            self.watch.recv_multipart()
            self.pings += 1
        for engine in self.engines:
            beating = engine.hb_in is not None and not engine.stopped
            # an engine whose SUB has not got this ping yet is polled until it has
            if beating and engine not in self.lagging and not self._echo(engine):
                assert engine.hb_in is not None
                self.lagging.add(engine)
                self._watch(engine.hb_in, engine, "hb")

    # -- requests --------------------------------------------------------------------------

    def _publish(
        self, engine: SimEngine, parent: dict[str, Any], kind: str, content: dict[str, Any]
    ) -> None:
        assert engine.iopub is not None
        topic = f"engine.{engine.id}.{kind}".encode("ascii")
        self.session.send(
            engine.iopub,
            kind,
            content,
            parent=parent,
            ident=topic,
            metadata={"engine": engine.uuid},
        )

    def _metadata(self, engine: SimEngine, parent: dict[str, Any]) -> dict[str, Any]:
        pmd = parent.get("metadata", {})
        return {
            "started": ipp_util.utcnow(),
            "dependencies_met": True,
            "engine": engine.uuid,
            "is_broadcast": pmd.get("is_broadcast", False),
            "is_coalescing": pmd.get("is_coalescing", False),
            "original_msg_id": pmd.get("original_msg_id", ""),
            "label": pmd.get("label"),
        }

    def _error(self, engine: SimEngine, exc: BaseException, method: str) -> dict[str, Any]:
        return {
            "status": "error",
            "ename": type(exc).__name__,
            "evalue": str(exc),
            "traceback": traceback.format_exception(exc),
            "engine_info": {"engine_uuid": engine.uuid, "engine_id": engine.id, "method": method},
        }

    def _on_shell(self, engine: SimEngine, sock: zmq.Socket[bytes]) -> None:
        while sock.get(zmq.EVENTS) & zmq.POLLIN:
            idents, rest = self.session.feed_identities(sock.recv_multipart())
            try:
                msg = self.session.deserialize(rest)
            except Exception:
                log.exception("engine %d: bad message", engine.id)
                continue
            kind = msg["header"]["msg_type"]
            self._publish(engine, msg, "status", {"execution_state": "busy"})
            md = self._metadata(engine, msg)
            buffers: list[Any] = []
            _current.append(engine.shell_ns)
            try:
                if kind == "execute_request":
                    engine.count += 1
                    code = msg["content"]["code"]
                    self._publish(
                        engine,
                        msg,
                        "execute_input",
                        {"code": code, "execution_count": engine.count},
                    )
                    reply_type = "execute_reply"
                    try:
                        exec(code, engine.ns)
                        content: dict[str, Any] = {
                            "status": "ok",
                            "execution_count": engine.count,
                            "user_expressions": {},
                            "payload": [],
                        }
                    except Exception as exc:
                        content = self._error(engine, exc, "execute")
                elif kind == "apply_request":
                    reply_type = "apply_reply"
                    try:
                        f, args, kwargs = unpack_apply_message(
                            msg["buffers"], engine.ns, copy=False
                        )
                        buffers = serialize_object(f(*args, **kwargs))
                        content = {"status": "ok"}
                    except Exception as exc:
                        content = self._error(engine, exc, "apply")
                else:
                    log.warning("engine %d: no handler for %s", engine.id, kind)
                    continue
            finally:
                _current.pop()
            md["status"] = content["status"]
            self.session.send(
                sock, reply_type, content, parent=msg, ident=idents, buffers=buffers, metadata=md
            )
            self._publish(engine, msg, "status", {"execution_state": "idle"})
            self.requests += 1

    def _on_control(self, engine: SimEngine, sock: zmq.Socket[bytes]) -> None:
        while sock.get(zmq.EVENTS) & zmq.POLLIN:
            idents, rest = self.session.feed_identities(sock.recv_multipart())
            msg = self.session.deserialize(rest)
            kind = msg["header"]["msg_type"]
            content: dict[str, Any] = {"status": "ok"}
            if kind == "shutdown_request":
                content["restart"] = msg["content"].get("restart", False)
            elif kind == "clear_request":
                engine.ns.clear()
                engine.ns["__name__"] = "__main__"
            elif kind != "abort_request":
                log.warning("engine %d: no control handler for %s", engine.id, kind)
                continue
            self.session.send(
                sock,
                kind.replace("_request", "_reply"),
                content,
                parent=msg,
                ident=idents,
                metadata={"engine": engine.uuid},
            )
            if kind == "shutdown_request":
                self._stop(engine)
                return

    def _stop(self, engine: SimEngine) -> None:
        engine.stopped = True
        self.lagging.discard(engine)
        for sock in (engine.shell, engine.control, engine.hb_in):
            if sock is not None:
                self._unwatch(sock)

    # -- the loop --------------------------------------------------------------------------

    def serve(self, controller_timeout: float, announce: Any = None) -> None:
        if not self.started:
            self.start()
        announced = False
        while not all(e.stopped for e in self.engines if e.replied_at) or not announced:
            now = time.monotonic()
            if not announced:
                self._check_timeouts(now)
                if self.replied + self.gave_up == self.count:
                    announced = True
                    if announce is not None:
                        announce(self.stats())
            if now - self.last_ping > controller_timeout:
                log.error("no ping for %.0f s: stopping", controller_timeout)
                return
            for sock, _ in self.poller.poll(100):
                if sock is self.watch:
                    self._on_ping()
                    continue
                owner = self.owner.get(sock)
                if owner is None:
                    continue
                engine, role = owner
                if role == "reg":
                    self._on_registration(engine, sock)
                elif role == "shell":
                    self._on_shell(engine, sock)
                elif role == "control":
                    self._on_control(engine, sock)
                elif role == "hb" and self._echo(engine):
                    self.lagging.discard(engine)
                    self._unwatch(sock)

    def stats(self) -> dict[str, Any]:
        last = self.last_reply - self.started if self.last_reply else None
        return {
            "engines": self.count,
            "replied": self.replied,
            "refused": self.refused,
            "gave_up": self.gave_up,
            "seconds": round(last, 3) if last else None,
            "requests": self.requests,
            "pings": self.pings,
        }

    def close(self) -> None:
        self.ctx.destroy(linger=0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--file", type=Path, required=True, help="ipcontroller-engine.json")
    p.add_argument("-n", type=int, default=100, help="how many engines (default 100)")
    p.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        help="registration timeout of each engine (ipengine's default: 5 s)",
    )
    p.add_argument(
        "--controller-timeout",
        type=float,
        default=60.0,
        help="stop when no ping came for this long",
    )
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="ipp_simulator: %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sim = IppEngineSimulator(json.loads(args.file.read_text()), args.n, args.timeout)
    try:
        sim.serve(args.controller_timeout, lambda s: print(json.dumps(s), flush=True))
    finally:
        print(json.dumps(sim.stats()), flush=True)
        sim.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
