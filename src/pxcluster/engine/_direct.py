"""Engine layer: the direct path, requests from clients on this host that skip the controller.

Why: a blocking call through the controller crosses four sockets and three processes; the
controller's share of a no-op call is about a third of its latency (issue 13). A client on
the engine's host (same ``/dev/shm``, so the same ``serialize.host_key``) may send a blocking
call to one engine straight to this port, a Unix socket file in ``/dev/shm`` (reachable
exactly where shared memory is), and gets its reply straight back.

How the controller stays informed, without being on the call's path: a request still
waiting or running ``ANNOUNCE_AFTER`` (20 ms) after it came is announced by the I/O thread
("queued", a header-only DIRECT message), and answered the main thread says "done"; from
"queued" to "done" the controller counts it in the engine's queue (queue_status, the
scheduler's load), aims interrupts at it and fails it if the engine dies, as if it had
forwarded it. A request done before it was announced (a quick call, the case this path is
for) costs the controller nothing on the way: such requests are reported in bulk ("ran"),
for the controller's monitor and activity history, by the main thread right after the
reply when no report went out in the last 20 ms (a lone call shows at once), else by the
I/O thread, every 20 ms at most. The
client covers the 20 ms the controller does not know of a request: if the engine dies, the
controller's death notice fails its direct calls there (``client/_core.py``). Replies the
I/O thread makes (aborted by a clear, a kill, a withdraw) go through the controller as
usual, the request announced first, on the same socket, so the controller knows it.

Security: the port has a key of its own (``key``), which this engine makes and sends only to
the controller in REGISTER; the controller gives it to clients with the engine list. Requests
and replies are signed with it and pass the engine's replay guard, as everything else; an
engine's key still cannot act as a client anywhere, and the socket file is the user's only.
Order: a client sends directly only when it has nothing unanswered on this engine (see
``client/_direct.py``), so a direct request never overtakes one sent through the controller.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pxcluster._errors import LocalProtocolError, RemoteProtocolError
from pxcluster.serialize import shm_available
from pxcluster.transport import Channel, ChannelClosed, Context, bind_ipc, connect
from pxcluster.wire import (
    QUEUED_REQUESTS,
    Message,
    MsgType,
    RecentIds,
    Signer,
    Status,
    check_digests,
    decode,
    encode,
    new_key,
)

log = logging.getLogger("pxcluster.engine")

#: Where the ports live: where shared memory lives, so a client that shares memory with the
#: engine (the test clients use to go direct) can reach the socket file too.
SOCKET_DIR = Path("/dev/shm")
#: Socket files are ``pxdirect-PID-RANDOM.sock`` (``sweep_stale_sockets`` reads the pid).
SOCKET_PREFIX = "pxdirect-"
#: Requests a client may send directly: the ones the main thread runs in order (not tasks,
#: which the controller's scheduler places, and not control requests).
DIRECT_REQUESTS = QUEUED_REQUESTS - {MsgType.TASK}
#: Client reply sockets kept open by the main thread at most (one per client on this host).
_MAX_REPLY_SOCKETS = 64
#: Fields of a reply's content that its "done" carries to the controller's monitor.
_DONE_FIELDS = ("ename", "evalue", "traceback", "started", "completed")
#: Seconds a direct request may wait or run before the controller is told of it; and the
#: longest a finished one waits to be reported in bulk.
ANNOUNCE_AFTER = 0.02
#: Characters of a traceback a "ran" report keeps (the monitor shows the end of it).
_TRACEBACK_KEPT = 4000


def socket_path(prefix: str = SOCKET_PREFIX) -> Path:
    """A fresh socket file name for this process."""
    return SOCKET_DIR / f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:12]}.sock"


def sweep_stale_sockets() -> int:
    """Remove direct-port socket files whose process is gone (it was killed); returns how
    many."""
    removed = 0
    for path in SOCKET_DIR.glob(f"{SOCKET_PREFIX}*.sock"):
        try:
            pid = int(path.name[len(SOCKET_PREFIX) :].split("-", 1)[0])
            os.kill(pid, 0)
            continue  # its process is alive
        except ValueError:
            continue
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # another user's: not ours to judge
        path.unlink(missing_ok=True)
        removed += 1
    return removed


class DirectPort:
    """This engine's direct port: the I/O thread takes requests, the main thread answers.

    Each request taken is in one state, under ``_lock``: *waiting* (taken, the controller
    not told), *announced* (the controller told "queued"), or gone (answered: "done" sent,
    or put in the bulk report ``_ran``).
    """

    def __init__(self, ctx: Context) -> None:
        self.key = new_key()
        self.signer = Signer(self.key)
        path = socket_path()
        self.url = f"ipc://{path}"
        self.path = path  # removed by ``remove_socket_file`` (ZeroMQ leaves it on close)
        self.channel = bind_ipc(ctx, "dealer", path)
        os.chmod(path, 0o600)  # only this user's processes may connect
        self._ctx = ctx
        self._lock = threading.Lock()
        self._routes: dict[str, str] = {}  # request id -> its client's reply address
        self._waiting: dict[str, tuple[float, MsgType]] = {}  # id -> (taken at, type)
        self._announced: set[str] = set()
        self._ran: list[list[Any]] = []  # answered before announced: the next bulk report
        self._ran_since = 0.0  # when the oldest of them was answered
        self._reported_at = -ANNOUNCE_AFTER  # when the last bulk report went out
        self._replies: dict[str, Channel] = {}  # main thread: reply address -> socket

    def remove_socket_file(self) -> None:
        """Remove the port's socket file (once the socket is closed)."""
        self.path.unlink(missing_ok=True)

    @classmethod
    def open(cls, ctx: Context) -> DirectPort | None:
        """The port, or None where there is no shared memory here (no client could use it)
        or it cannot be bound (then the engine works through the controller only)."""
        if not shm_available():
            return None
        sweep_stale_sockets()
        try:
            return cls(ctx)
        except OSError as exc:
            log.warning("no direct port for clients on this host: %s", exc)
            return None

    # -- I/O thread ------------------------------------------------------------------------

    def receive(self, guard: RecentIds) -> list[tuple[Message, str]]:
        """The requests waiting, each with what is wrong with it ("" if nothing).

        A request with a bad payload (``check_digests``) is returned with the problem, to
        be answered with an error; one that does not verify is dropped here (nobody known
        sent it).
        """
        taken: list[tuple[Message, str]] = []
        frames = self.channel.recv_nowait()
        while frames is not None:
            try:
                msg = decode(frames, self.signer, guard, check_buffers=False)
            except RemoteProtocolError as exc:
                log.warning("dropped a message on the direct port: %s", exc)
            else:
                reply_to = msg.content.get("reply_to")
                if msg.type not in DIRECT_REQUESTS or not isinstance(reply_to, str):
                    log.warning(
                        "dropped a %s on the direct port: not a direct request", msg.type.name
                    )
                else:
                    with self._lock:
                        self._routes[msg.id] = reply_to
                        self._waiting[msg.id] = (time.monotonic(), msg.type)
                    try:
                        check_digests(msg)
                    except RemoteProtocolError as exc:
                        taken.append((msg, str(exc)))
                    else:
                        taken.append((msg, ""))
            frames = self.channel.recv_nowait()
        return taken

    def busy(self) -> bool:
        """Whether something is to be announced or reported within ``ANNOUNCE_AFTER``."""
        return bool(self._waiting or self._ran)

    def next_due(self) -> float:
        """Seconds until the next announcement or bulk report is due (``busy`` only)."""
        now = time.monotonic()
        with self._lock:
            times = [at for at, _ in self._waiting.values()]
            if self._ran:
                times.append(self._ran_since)
        if not times:
            return ANNOUNCE_AFTER
        return max(0.001, min(times) + ANNOUNCE_AFTER - now)

    def notices(self, engine_id: int, new_id: Callable[[], str]) -> list[Message]:
        """What the controller is to be told now: "queued" for each request taken
        ``ANNOUNCE_AFTER`` ago or more and not answered, and the bulk report of those
        answered unannounced, once the oldest of them is that old."""
        now = time.monotonic()
        due = now - ANNOUNCE_AFTER
        out: list[Message] = []
        with self._lock:
            late = [(i, t) for i, (at, t) in self._waiting.items() if at <= due]
            for request_id, msg_type in late:
                del self._waiting[request_id]
                self._announced.add(request_id)
                out.append(self._queued(request_id, msg_type, new_id(), engine_id))
            if self._ran and self._ran_since <= due:
                ran, self._ran = self._ran, []
                self._reported_at = now
                content = {"state": "ran", "ran": ran}
                out.append(Message(MsgType.DIRECT, new_id(), content, engine=engine_id))
        return out

    def report_if_quiet(self, engine_id: int, new_id: Callable[[], str]) -> Message | None:
        """The bulk report of the requests answered unannounced, now, if none went out in
        the last ``ANNOUNCE_AFTER`` (a lone call shows in monitors at once; calls that
        follow each other fast are reported together, by the I/O thread)."""
        now = time.monotonic()
        with self._lock:
            if not self._ran or now - self._reported_at < ANNOUNCE_AFTER:
                return None
            ran, self._ran = self._ran, []
            self._reported_at = now
        return Message(MsgType.DIRECT, new_id(), {"state": "ran", "ran": ran}, engine=engine_id)

    def announce_now(self, request_id: str, engine_id: int, notice_id: str) -> Message | None:
        """The "queued" of ``request_id`` if the controller was not told yet (before the
        I/O thread answers it through the controller); forgets its route."""
        with self._lock:
            self._routes.pop(request_id, None)
            found = self._waiting.pop(request_id, None)
            self._announced.discard(request_id)
        if found is None:
            return None
        return self._queued(request_id, found[1], notice_id, engine_id)

    def drop(self, request_ids: list[str]) -> None:
        """Forget requests dropped unanswered (their clients were told by the controller)."""
        with self._lock:
            for request_id in request_ids:
                self._routes.pop(request_id, None)
                self._waiting.pop(request_id, None)
                self._announced.discard(request_id)

    @staticmethod
    def _queued(request_id: str, msg_type: MsgType, notice_id: str, engine_id: int) -> Message:
        content = {"state": "queued", "kind": int(msg_type)}
        return Message(MsgType.DIRECT, notice_id, content, parent=request_id, engine=engine_id)

    # -- main thread -----------------------------------------------------------------------

    def route_of(self, request_id: str) -> str | None:
        """The reply address of direct request ``request_id`` (None: it came through the
        controller); the route is forgotten here."""
        if not self._routes:  # no direct request in flight: no lock needed to see that
            return None  # (a route is stored before its request is queued for the main thread)
        with self._lock:
            return self._routes.pop(request_id, None)

    def send_reply(self, reply_to: str, reply: Message) -> None:
        """Send ``reply`` to the client's reply socket at ``reply_to``.

        Connecting never waits: ZeroMQ keeps the message until the connection is up.
        """
        try:
            frames = encode(reply, self.signer)
        except LocalProtocolError as exc:  # content msgpack cannot carry: say so instead
            content = {"error": f"the engine could not encode its reply: {exc}"[:2000]}
            bare = Message(
                reply.type,
                reply.id,
                content,
                parent=reply.parent,
                engine=reply.engine,
                status=Status.ENGINE_ERROR,
            )
            frames = encode(bare, self.signer)
        chan = self._replies.get(reply_to)
        if chan is None:
            if len(self._replies) >= _MAX_REPLY_SOCKETS:  # the oldest client's goes
                self._replies.pop(next(iter(self._replies))).close()
            chan = connect(self._ctx, "dealer", reply_to, identity=self.url.encode())
            self._replies[reply_to] = chan
        try:
            chan.send(frames)
        except ChannelClosed:
            log.warning("could not send a direct reply: the engine is closing")

    def answered(self, request: Message, reply: Message, notice_id: str) -> Message | None:
        """Request ``request`` was answered with ``reply``: its "done" for the controller
        if it was announced; else it goes into the next bulk report (None)."""
        content = reply.content
        with self._lock:
            if request.id in self._waiting:
                del self._waiting[request.id]
                if not self._ran:
                    self._ran_since = time.monotonic()
                self._ran.append(
                    [
                        request.id,
                        int(request.type),
                        int(reply.status),
                        content.get("started"),
                        content.get("completed"),
                        str(content.get("ename", "")),
                        str(content.get("evalue", ""))[:_TRACEBACK_KEPT],
                        str(content.get("traceback", ""))[-_TRACEBACK_KEPT:],
                    ]
                )
                return None
            if request.id not in self._announced:
                return None  # dropped meanwhile (declared dead): nobody waits for it
            self._announced.discard(request.id)
        done: dict[str, object] = {"state": "done", "kind": int(request.type)}
        for field in _DONE_FIELDS:
            if field in content:
                done[field] = content[field]
        return Message(
            MsgType.DIRECT,
            notice_id,
            done,
            parent=request.id,
            engine=reply.engine,
            status=reply.status,
        )
