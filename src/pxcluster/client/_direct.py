"""Client layer: the direct path to engines on this host (the client's half).

A blocking call to engines on this host goes straight to each engine's direct port
(``engine/_direct.py``) and the replies come straight back to this client's reply socket, a
Unix socket file in ``/dev/shm``; the controller hears of it from the engines. That is two
socket hops instead of four, and the controller's work leaves the call's path.

When: the call blocks, has at most ``FAN_OUT`` targets, streams no output, every target
offered a port and shares this host's memory, and this client has nothing unanswered on
any of them (no request, control ones included). The last condition keeps the order the
controller path gives: a direct request cannot overtake one still on its way through the
controller, nor be overtaken by one (the caller waits for the direct replies before it sends
anything more). Calls from several threads at once have no order among themselves on
either path.

``PXCLUSTER_DIRECT=0`` in the environment turns the direct path off (every call through
the controller), for comparisons and for whoever wants every call to pass the controller.

Thread use: ``send``, ``sent``, ``usable`` run in user threads under the client's send lock;
``answered`` in the I/O thread (the counts have a lock of their own); the reply socket
belongs to the I/O thread.
"""

from __future__ import annotations

import collections
import os
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

from pxcluster._buffers import Buffer
from pxcluster._errors import RemoteProtocolError
from pxcluster.serialize import shm_available
from pxcluster.transport import Channel, Context, bind_ipc, connect
from pxcluster.wire import Message, ReplayGuard, Signer, decode, encode_raw, pack_header

#: Targets a direct call has at most: past that the controller's fan-out (one message from
#: the client, frames shared) is cheaper for the client than a signature and a send each.
FAN_OUT = 16
#: Where the reply socket lives: where the engines' direct ports and shared memory live.
SOCKET_DIR = "/dev/shm"
#: The name's start, as the engines' ports (their sweep removes a killed client's file too).
SOCKET_PREFIX = "pxdirect-"


def direct_enabled() -> bool:
    """Whether this process may call engines directly (``PXCLUSTER_DIRECT=0`` says no)."""
    return os.environ.get("PXCLUSTER_DIRECT", "1") != "0" and shm_available()


class DirectRoutes:
    """The engines this client may call directly, and its unanswered requests per engine."""

    def __init__(self, ctx: Context) -> None:
        path = Path(SOCKET_DIR) / f"{SOCKET_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}.sock"
        self._ctx = ctx
        #: Where engines send replies: a ROUTER, so each reply names its engine's port.
        self.replies: Channel = bind_ipc(ctx, "router", path)
        os.chmod(path, 0o600)
        self.reply_to = f"ipc://{path}"
        self.path = path  # removed by ``remove_socket_file`` (ZeroMQ leaves it on close)
        self._ports: dict[int, tuple[str, Signer]] = {}  # engine -> (port, its signer)
        self._signers: dict[bytes, Signer] = {}  # port (a reply's routing id) -> signer
        self._senders: dict[int, Channel] = {}  # engine -> socket to its port
        #: Requests this client sent each engine (either path) and has no reply for yet,
        #: per engine and per (request id, engine): a reply to anything else (a task's)
        #: counts for nothing.
        self._unanswered: collections.Counter[int] = collections.Counter()
        self._owed: collections.Counter[tuple[str, int]] = collections.Counter()
        self._inflight: set[tuple[str, int]] = set()  # (direct request id, engine)
        self._lock = threading.Lock()

    # -- the engine list -------------------------------------------------------------------

    def note(self, engine: int, port: str, key: str) -> None:
        """Engine ``engine`` (on this host) takes direct requests at ``port``."""
        if not port.startswith("ipc://") or not key:
            return
        signer = Signer(key.encode("ascii"))
        with self._lock:
            self._ports[engine] = (port, signer)
            self._signers[port.encode()] = signer

    def forget(self, engine: int) -> list[str]:
        """Engine ``engine`` is gone: no more direct calls to it; returns the ids of the
        direct requests it had (their calls must fail). The caller holds the send lock."""
        with self._lock:
            self._ports.pop(engine, None)
            self._unanswered.pop(engine, None)
            for key in [k for k in self._owed if k[1] == engine]:
                del self._owed[key]
            lost = [i for i, e in self._inflight if e == engine]
            for request_id in lost:
                self._inflight.discard((request_id, engine))
        sender = self._senders.pop(engine, None)
        if sender is not None:  # the caller holds the send lock: nobody sends on it now
            sender.close()
        return lost

    # -- sending (user threads, under the client's send lock) ------------------------------

    def usable(self, engines: Sequence[int]) -> bool:
        """Whether a call to ``engines`` may go directly now (see the module doc)."""
        with self._lock:
            ports, unanswered = self._ports, self._unanswered
            return all(e in ports and not unanswered[e] for e in engines)

    def sent(self, request_id: str, engines: Sequence[int]) -> None:
        """Request ``request_id`` went to ``engines`` (through the controller)."""
        with self._lock:
            for engine in engines:
                self._unanswered[engine] += 1
                self._owed[request_id, engine] += 1

    def encode_for(self, engines: Sequence[int], msg: Message) -> list[list[Buffer]] | None:
        """``msg`` signed for each of ``engines``' ports (the header packed once), replies
        to come to ours; None when one of them has no port (known to this client)."""
        with self._lock:
            found = [self._ports.get(e) for e in engines]
        signers = [f[1] for f in found if f is not None]
        if len(signers) != len(found):
            return None
        # Made field by field: dataclasses.replace reads the fields each call (5.5 -> 2.9 us)
        with_reply = Message(
            msg.type,
            msg.id,
            {**msg.content, "reply_to": self.reply_to},
            msg.buffers,
            msg.parent,
            msg.targets,
            msg.engine,
            msg.status,
            msg.session,
            msg.ts,
        )
        header = pack_header(with_reply)
        return [encode_raw(header, msg.buffers, signer) for signer in signers]

    def send(self, engines: Sequence[int], request_id: str, frames: list[list[Buffer]]) -> None:
        """Send ``frames[i]`` (from ``encode_for``) to ``engines[i]``'s port."""
        with self._lock:
            ports = [self._ports[e][0] for e in engines]
            for engine in engines:
                self._unanswered[engine] += 1
                self._owed[request_id, engine] += 1
                self._inflight.add((request_id, engine))
        for engine, port, message in zip(engines, ports, frames, strict=True):
            chan = self._senders.get(engine)
            if chan is None:
                chan = self._senders[engine] = connect(self._ctx, "dealer", port)
            chan.send(message)

    # -- receiving (the I/O thread) --------------------------------------------------------

    def answered(self, request_id: str | None, engine: int) -> None:
        """A reply from ``engine`` to ``request_id`` arrived (either path)."""
        key = (request_id or "", engine)
        with self._lock:
            if self._owed.get(key, 0) <= 0:
                return  # not one we counted (a task's, or a second answer)
            self._owed[key] -= 1
            if not self._owed[key]:
                del self._owed[key]
            self._unanswered[engine] -= 1
            if not self._unanswered[engine]:
                del self._unanswered[engine]
            self._inflight.discard(key)

    def reset(self) -> None:
        """The connection to the controller dropped: every call failed, nothing is owed."""
        with self._lock:
            self._unanswered.clear()
            self._owed.clear()
            self._inflight.clear()

    def remove_socket_file(self) -> None:
        """Remove the reply socket's file (once the socket is closed)."""
        self.path.unlink(missing_ok=True)

    def decode(self, frames: list[Buffer], guard: ReplayGuard) -> Message:
        """A reply received on ``replies``, verified with its engine's key.

        Raises:
            RemoteProtocolError: from an unknown port, or it does not verify.
        """
        signer = self._signers.get(bytes(frames[0]))
        if signer is None:
            raise RemoteProtocolError("a direct reply from a port this client does not know")
        return decode(frames[1:], signer, guard, check_buffers=False)
