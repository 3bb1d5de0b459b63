"""Client layer: the connection to the controller, owned by one background I/O thread.

Theory of operation
-------------------
Two sockets go to the controller. The I/O thread owns the one that receives: it decodes
every incoming message and routes it (REPLY to its PendingResult, NOTIFY to the engine
list, STREAM to the stream handler), and it says CONNECT, first and after a reconnect, so
the controller knows that socket before it has anything to answer. User threads send their
requests themselves, one at a time under a lock, on a send-only socket whose answers the
controller sends to the I/O thread's (``sender_identity``): no thread hand-off on the way
out. ``submit`` registers the PendingResult under its message ids *before* it sends, so a
reply can never arrive for an id nobody waits on.

If the connection to the controller drops, every pending result fails with
``ConnectionLost`` at once rather than waiting forever; the socket reconnects by itself.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil

from pxcluster._buffers import Buffer
from pxcluster._errors import (
    ConnectionLost,
    ContentMismatch,
    NoClusterRunning,
    PxclusterTimeoutError,
    RemoteProtocolError,
)
from pxcluster.client._direct import DirectRoutes, direct_enabled
from pxcluster.client._outbox import BATCH_FROM, GATHER_FOR, TaskOutbox
from pxcluster.client._results import PendingResult
from pxcluster.client._ssh import SshRoute, tunnelled_connection
from pxcluster.profile import ClientConnection, ProfilePaths, read_client_connection
from pxcluster.serialize import host_key, import_frames, shm_available
from pxcluster.transport import Channel, Context, Monitor, Poller, SshTunnel, connect, pipe
from pxcluster.wire import (
    MAX_ENTRIES,
    Message,
    MsgType,
    ReplayGuard,
    Signer,
    Status,
    check_digests,
    decode,
    encode,
    encode_raw,
    pack_header,
    sender_identity,
    unbatch,
)

log = logging.getLogger("pxcluster.client")

_CLOSE = b"close"
_FLUSH = b"flush"  # to the I/O thread: send the task outbox


class ClientCore:
    """One connection to a controller, shared by every client object made from it."""

    def __init__(self, connection: ClientConnection, timeout: float = 10.0) -> None:
        self.connection = connection
        #: How the commands name this cluster's profile (for messages that suggest one).
        self.profile_flag = f"--profile {connection.profile}"
        self._tunnel: SshTunnel | None = None  # the SSH tunnel the connection goes through
        self._signer = Signer(connection.key)
        self._guard = ReplayGuard()
        self._session = f"cli{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._ids = itertools.count()
        self._ctx = Context()
        self._user_pipe, self._io_pipe = pipe(self._ctx)  # CONNECT and close, for the I/O thread
        identity = self._session.encode()  # fixed: after a reconnect, replies still find us
        self._identity = identity
        self._curve = connection.curve_serverkey.encode("ascii") or None  # --curve
        self._sender = connect(
            self._ctx,
            "dealer",
            connection.url,
            identity=sender_identity(identity),
            curve_server=self._curve,
        )
        self._send_lock = threading.Lock()  # guards the sender socket and the link state
        self._outbox = TaskOutbox(self._signer, self.new_id, self._session)  # under the lock
        self._outbox_due: float | None = None  # when the I/O thread sends it (its own field)
        self._pending: dict[str, PendingResult[Any]] = {}
        self._engines: list[int] = []
        self._engine_set: frozenset[int] = frozenset()  # the same, for membership checks
        self._engines_version = -1  # the controller numbers its registry's changes
        self._engine_hosts: dict[int, str] = {}  # engine id -> host key
        self._host = host_key() if shm_available() else "no shared memory here"
        self._engines_changed = threading.Condition()
        self._link_down_since: float | None = None  # set while the connection is broken
        self.stream_handler: Callable[[Message], None] | None = None
        self._closed = False
        #: Blocking calls to one engine on this host skip the controller (client/_direct.py).
        self._direct = _open_direct(self._ctx)
        self._thread = threading.Thread(
            target=self._io_loop, name="pxcluster-client-io", daemon=True
        )
        self._thread.start()
        try:
            engines = self.call_controller(MsgType.CONNECT, {}, "connect", timeout=timeout)
        except PxclusterTimeoutError:
            self.close()
            raise PxclusterTimeoutError(
                f"no controller answered at {connection.url} within {timeout} s "
                f"(profile {connection.profile!r}); is the cluster running? "
                "Start one with `pxcluster start -n 4`."
            ) from None
        self._note_hosts(engines.content)
        self._set_engines(engines.content["engines"], engines.content.get("version", 0))

    @classmethod
    def open_for(
        cls,
        owner: object,
        connection_file: str | Path | None,
        profile: str,
        profile_dir: str | Path | None,
        timeout: float,
        ssh: SshRoute | None = None,
    ) -> ClientCore:
        """Connect to the cluster of a connection file (default: the profile's), closed
        automatically when ``owner`` (the client object) is garbage-collected; through an
        SSH tunnel when ``ssh`` says how to log in (see ``client._ssh``)."""
        paths = ProfilePaths.for_profile(profile, profile_dir)
        path = Path(connection_file) if connection_file else paths.client_file
        if ssh is None:
            connection = read_client_connection(path)
            _check_controller_alive(connection, path, profile, profile_dir)
            core = cls(connection, timeout)
        else:
            explicit = connection_file is not None
            connection, tunnel = tunnelled_connection(ssh, path, profile, explicit, timeout)
            try:
                core = cls(connection, timeout)
            except BaseException:
                tunnel.close()
                raise
            core._tunnel = tunnel
        if profile_dir is not None:
            core.profile_flag = f"--profile-dir {profile_dir}"
        weakref.finalize(owner, core.close)  # an unclosed client leaks no thread or socket
        return core

    # -- sending ---------------------------------------------------------------------------

    def new_id(self) -> str:
        return f"{self._session}-{next(self._ids)}"

    @property
    def session(self) -> str:
        """This connection's session name; every id it makes starts with it."""
        return self._session

    @property
    def link_up(self) -> bool:
        """False from the moment this client saw its connection to the controller drop
        until it comes back (calls made meanwhile raise ConnectionLost)."""
        return self._link_down_since is None

    def submit(
        self,
        msg: Message,
        pending: PendingResult[Any],
        direct_to: Sequence[int] | None = None,
    ) -> PendingResult[Any]:
        """Send ``msg``; its replies will resolve ``pending``.

        ``direct_to``: ``msg``'s targets, and the caller waits for it: it is sent to them
        directly where that is allowed (``client/_direct.py``).
        """
        if (
            direct_to is not None
            and self._direct is not None
            and self._direct.usable(direct_to)  # checked again, under the lock, to send
        ):
            frames = self._direct.encode_for(direct_to, msg)
            if frames is not None:
                with self._send_lock:
                    # the controller must be there: it reports an engine's death, and
                    # a call made while it is away fails as any other (ConnectionLost)
                    if (
                        not self._closed
                        and self._link_down_since is None
                        and self._direct.usable(direct_to)
                    ):
                        self._register(pending)
                        self._direct.send(direct_to, msg.id, frames)
                        return pending
        return self.submit_many([msg], pending)

    def _register(self, pending: PendingResult[Any]) -> None:
        """Make ``pending`` the one its replies resolve (the caller holds the send lock)."""
        for msg_id in pending.msg_ids:
            self._pending[msg_id] = pending
        pending.add_done_callback(self._forget)

    def submit_many(
        self, msgs: Sequence[Message], pending: PendingResult[Any], via_io_thread: bool = False
    ) -> PendingResult[Any]:
        """Send ``msgs``, whose replies together resolve ``pending``.

        ``via_io_thread`` sends them on the socket the replies come to (for CONNECT, which
        makes that socket known to the controller); otherwise this thread sends them.

        Raises:
            ConnectionLost: the client is closed, or the controller is unreachable now (a
                request sent into a broken connection would wait for nothing).
        """
        encoded = [encode(msg, self._signer) for msg in msgs]  # fails before anything is sent
        with self._send_lock:
            self._check_link()
            for msg_id in pending.msg_ids:
                self._pending[msg_id] = pending
            pending.add_done_callback(self._forget)
            channel = self._user_pipe if via_io_thread else self._sender
            if self._direct is not None:  # this client now waits for these engines
                for msg in msgs:
                    if msg.targets:
                        self._direct.sent(msg.id, msg.targets)
            if channel is self._sender:
                self._send_outbox()  # tasks queued before this go first
            for frames in encoded:
                channel.send(frames)
        return pending

    def submit_tasks(self, msgs: Sequence[Message], pendings: Sequence[PendingResult[Any]]) -> None:
        """Send TASK messages (``pendings[i]`` resolves with ``msgs[i]``'s reply): alone and at
        once when nothing else is in flight, else through the outbox, in BATCHes
        (``client/_outbox.py``).

        Raises:
            ConnectionLost: as ``submit_many``.
        """
        encoded = [(pack_header(msg), msg.buffers) for msg in msgs]  # fails before anything
        with self._send_lock:
            self._check_link()
            for pending in pendings:
                for msg_id in pending.msg_ids:
                    self._pending[msg_id] = pending
                pending.add_done_callback(self._forget)
            if len(encoded) == 1 and not self._outbox and len(self._pending) < BATCH_FROM:
                header, buffers = encoded[0]
                self._sender.send(encode_raw(header, buffers, self._signer))
                return
            wake = False
            for header, buffers in encoded:
                wake = self._outbox.add(header, buffers) or wake
            if len(encoded) > 1 or len(self._outbox) >= MAX_ENTRIES:
                self._send_outbox()  # a map's chunks (all there now), or a full batch
            elif wake:
                self._user_pipe.send([_FLUSH])  # the I/O thread sends it GATHER_FOR later

    def flush_tasks(self) -> None:
        """Send the tasks gathered in the outbox now (a caller is about to wait for them)."""
        self._outbox_due = None
        if self._outbox:
            with self._send_lock:
                self._send_outbox()

    def _outbox_wait(self) -> float | None:
        """Seconds the I/O thread may wait before the outbox is due (None: nothing in it)."""
        due = self._outbox_due
        return None if due is None else max(0.0, due - time.monotonic())

    def _send_outbox(self) -> None:
        """Send the tasks waiting in the outbox (the caller holds the send lock)."""
        for frames in self._outbox.take():
            self._sender.send(frames)

    def _check_link(self) -> None:
        """Raise ConnectionLost if nothing can be sent now (the caller holds the send lock)."""
        if self._closed:
            raise ConnectionLost("this client is closed")
        down = self._link_down_since
        if down is not None:
            raise ConnectionLost(
                f"the controller at {self.connection.url} has been unreachable for "
                f"{time.monotonic() - down:.1f} s; {self._takeover_hint()}"
            )

    def _forget(self, pending: concurrent.futures.Future[Any]) -> None:
        for msg_id in getattr(pending, "msg_ids", ()):
            self._pending.pop(msg_id, None)

    def call_controller(
        self,
        msg_type: MsgType,
        content: dict[str, Any],
        method: str,
        timeout: float | None,
        targets: list[int] | None = None,
    ) -> Message:
        """Send a request the controller answers itself, and wait for the reply."""
        msg = Message(msg_type, self.new_id(), content, targets=targets)
        pending: PendingResult[Message] = PendingResult(method, [(msg.id, -1)], lambda r: r[0])
        self.submit_many([msg], pending, via_io_thread=msg_type == MsgType.CONNECT)
        reply: Message = pending.get_result(timeout=timeout)
        return reply

    # -- engines ---------------------------------------------------------------------------

    @property
    def engines(self) -> list[int]:
        """Engine ids as last announced by the controller."""
        with self._engines_changed:
            return list(self._engines)

    def knows_engines(self, engines: Sequence[int]) -> bool:
        """True if every one of ``engines`` is registered, as last announced."""
        known = self._engine_set
        return all(e in known for e in engines)

    def same_host(self, engines: Sequence[int]) -> bool:
        """True if every one of ``engines`` runs on this host (so memory can be shared)."""
        hosts = self._engine_hosts
        return all(hosts.get(e) == self._host for e in engines)

    def _note_hosts(self, content: dict[str, Any]) -> None:
        """Take the engines' hosts (and direct ports: ``[id, host, port, key]``) from a
        CONNECT reply."""
        for entry in content.get("hosts", ()):
            if isinstance(entry, list) and len(entry) >= 2 and isinstance(entry[0], int):
                self._engine_hosts[entry[0]] = str(entry[1])
                if len(entry) >= 4:
                    self._note_direct(entry[0], entry[1], entry[2], entry[3])

    def _note_direct(self, engine: int, host: object, port: object, key: object) -> None:
        """Engine ``engine`` takes direct requests at ``port``: kept if it runs here."""
        if (
            self._direct is not None
            and host == self._host
            and isinstance(port, str)
            and isinstance(key, str)
        ):
            self._direct.note(engine, port, key)

    def _set_engines(self, engines: Sequence[int], version: int) -> None:
        """Take a full engine list, unless a newer change was already applied."""
        with self._engines_changed:
            if version >= self._engines_version:
                self._engines = sorted(engines)
                self._engine_set = frozenset(self._engines)
                self._engines_version = version
                self._engines_changed.notify_all()

    def refresh_engines(self, timeout: float | None) -> list[int]:
        """Ask the controller for its engines now, and keep the answer."""
        reply = self.call_controller(MsgType.CONNECT, {}, "get_ids", timeout)
        self._note_hosts(reply.content)
        self._set_engines(reply.content["engines"], reply.content.get("version", 0))
        return sorted(reply.content["engines"])

    def wait_for_engines(self, count: int, timeout: float | None) -> list[int]:
        """Block until at least ``count`` engines are registered; returns their ids.

        Raises:
            PxclusterTimeoutError: fewer than ``count`` engines after ``timeout`` seconds.
        """
        with self._engines_changed:
            ok = self._engines_changed.wait_for(lambda: len(self._engines) >= count, timeout)
            if not ok:
                raise PxclusterTimeoutError(
                    f"only {len(self._engines)} of {count} engines registered within {timeout} s"
                )
            return list(self._engines)

    # -- the I/O thread --------------------------------------------------------------------

    def _io_loop(self) -> None:
        dealer = connect(
            self._ctx,
            "dealer",
            self.connection.url,
            identity=self._identity,
            curve_server=self._curve,
        )
        monitor = Monitor(dealer)
        replies = self._direct.replies if self._direct is not None else None
        poller = Poller([dealer, self._io_pipe, monitor, *([replies] if replies else [])])
        try:
            while True:
                for chan in poller.poll(self._outbox_wait()):
                    if chan is self._io_pipe:
                        frames = self._io_pipe.recv()
                        if len(frames) == 1 and bytes(frames[0]) == _CLOSE:
                            return
                        if len(frames) == 1 and bytes(frames[0]) == _FLUSH:
                            self._outbox_due = time.monotonic() + GATHER_FOR
                            continue
                        dealer.send(frames)
                    elif chan is monitor:
                        self._on_link_event(monitor.recv_event(), dealer)
                    elif chan is dealer:
                        self._receive(dealer.recv())
                    elif replies is not None:
                        self._receive(replies.recv(), direct=True)
                if self._outbox_due is not None and time.monotonic() >= self._outbox_due:
                    self.flush_tasks()
        except Exception:  # pragma: no cover - a bug here must not hang every caller
            log.exception("client I/O thread failed")
            self._fail_all(ConnectionLost("the client's I/O thread failed; see the log"))
        finally:
            monitor.close()
            dealer.close()

    def _on_link_event(self, event: str, dealer: Channel) -> None:
        if event == "disconnected":
            with self._send_lock:
                self._link_down_since = time.monotonic()
                if self._direct is not None:
                    self._direct.reset()
                self._outbox.clear()  # their results fail below: they must not run later
            self._fail_all(
                ConnectionLost(
                    f"lost the controller at {self.connection.url}; {self._takeover_hint()}"
                )
            )
        elif event == "connected" and self._link_down_since is not None:
            with self._send_lock:
                self._link_down_since = None
            # Say hello again: a restarted controller learns of us, and the engine list
            # catches up with what changed while we were away.
            msg = Message(MsgType.CONNECT, self.new_id())
            pending: PendingResult[Message] = PendingResult(
                "connect", [(msg.id, -1)], lambda r: r[0]
            )
            pending.add_done_callback(self._reconnected)
            self._pending[msg.id] = pending
            pending.add_done_callback(self._forget)
            dealer.send(encode(msg, self._signer))

    def _takeover_hint(self) -> str:
        """What to do when the controller is gone: this client reconnects by itself to a
        controller that takes over in its place, engines and namespaces included."""
        return (
            "this client reconnects by itself when it is back; if it was killed, "
            f"`pxcontroller {self.profile_flag}` takes over with its engines"
        )

    def _reconnected(self, done: concurrent.futures.Future[Message]) -> None:
        if done.exception() is None:
            reply = done.result()
            self._note_hosts(reply.content)
            self._set_engines(reply.content["engines"], reply.content.get("version", 0))

    def _receive(self, frames: list[Buffer], direct: bool = False) -> None:
        """Take one message from the controller, or (``direct``) a reply from an engine's
        direct port, verified with that engine's key."""
        try:
            if direct and self._direct is not None:
                msg = self._direct.decode(frames, self._guard)
                if msg.type != MsgType.REPLY:
                    raise RemoteProtocolError(f"a {msg.type.name} from a direct port")
            else:
                msg = decode(frames, self._signer, self._guard, check_buffers=False)
        except ContentMismatch as exc:  # authentic, but not what its type carries
            log.warning("dropped a message from the controller: %s", exc)
            pending = self._pending.get(exc.parent) if exc.parent else None
            if pending is not None:  # fail the call it answers, rather than hang it
                pending.fail(exc)
            return
        except RemoteProtocolError as exc:
            log.warning("dropped a message from the controller: %s", exc)
            return
        try:
            check_digests(msg)
            msg = _map_segments(msg)
        except (RemoteProtocolError, OSError, ValueError) as exc:
            # an authentic header with a corrupted payload: fail that call, do not hang it
            pending = self._pending.get(msg.parent)
            if pending is not None:
                pending.fail(exc)
            log.warning("refused a reply: %s", exc)
            return
        try:
            if msg.type == MsgType.REPLY:
                if self._direct is not None:  # first: the caller may call again at once
                    self._direct.answered(msg.parent, msg.engine)
                pending = self._pending.get(msg.parent)
                if pending is not None:
                    pending.add_reply(msg)
            elif msg.type == MsgType.NOTIFY:
                self._on_notify(msg.content)
            elif msg.type == MsgType.STREAM and self.stream_handler is not None:
                self.stream_handler(msg)
            elif msg.type == MsgType.BATCH:
                self._receive_batch(msg)
        except Exception:
            log.exception("could not handle %s from the controller; dropped it", msg.type.name)

    def _receive_batch(self, batch: Message) -> None:
        """Task results that came together (``wire/_batch.py``), each taken as if alone."""
        entries, problems = unbatch(batch)
        for problem in problems:
            log.warning("dropped a reply of a batch from the controller: %s", problem)
            pending = self._pending.get(getattr(problem, "parent", ""))
            if pending is not None:
                pending.fail(problem)
        for reply in entries:
            pending = self._pending.get(reply.parent)
            if reply.type != MsgType.REPLY or pending is None:
                continue
            try:
                check_digests(reply)
            except RemoteProtocolError as exc:
                pending.fail(exc)
                continue
            pending.add_reply(reply)

    def _on_notify(self, content: dict[str, Any]) -> None:
        engine = content.get("engine")
        version = content.get("version", 0)
        if not isinstance(engine, int) or not isinstance(version, int):
            return
        self._direct_engine_event(engine, content)
        with self._engines_changed:
            if version <= self._engines_version:
                return  # the full list we hold already includes this change
            self._engines_version = version
            engines = set(self._engines)
            if content.get("event") == "registered":
                engines.add(engine)
                self._engine_hosts[engine] = str(content.get("host", ""))
            elif content.get("event") in ("died", "stopped"):
                engines.discard(engine)
            self._engines = sorted(engines)
            self._engine_set = frozenset(self._engines)
            self._engines_changed.notify_all()

    def _direct_engine_event(self, engine: int, content: dict[str, Any]) -> None:
        """Keep the direct ports current: a new engine's is noted; a gone engine's is
        dropped, and the direct calls it held fail (the controller may never have heard of
        one still on its way to the engine)."""
        if self._direct is None:
            return
        event = content.get("event")
        if event == "registered":
            self._note_direct(
                engine, content.get("host"), content.get("direct"), content.get("direct_key")
            )
        elif event in ("died", "stopped"):
            text = f"engine {engine} {event} (reported by the controller)"
            kind = "died" if event == "died" else "stopped"
            with self._send_lock:
                lost = self._direct.forget(engine)
            for request_id in lost:
                pending = self._pending.get(request_id)
                if pending is not None:
                    pending.add_reply(
                        Message(
                            MsgType.REPLY,
                            self.new_id(),
                            {"error": text, "kind": kind},
                            parent=request_id,
                            engine=engine,
                            status=Status.ENGINE_ERROR,
                        )
                    )

    def _fail_all(self, exc: Exception) -> None:
        for pending in list(self._pending.values()):
            pending.fail(exc)

    def close(self) -> None:
        """Stop the I/O thread and close the socket; pending results fail."""
        with self._send_lock:
            if self._closed:
                return
            if self._link_down_since is None:
                self._send_outbox()  # queued tasks still run
            self._closed = True
            self._user_pipe.send([_CLOSE])
        self._thread.join(timeout=5.0)
        self._fail_all(ConnectionLost("the client was closed"))
        self._ctx.close()
        if self._direct is not None:
            self._direct.remove_socket_file()
        if self._tunnel is not None:
            self._tunnel.close()


def _check_controller_alive(
    connection: ClientConnection, path: Path, profile: str, profile_dir: str | Path | None
) -> None:
    """Fail at once, saying how to take over, if the connection file's controller ran on
    this host (a loopback address) and its process is gone (killed or crashed): waiting for
    an answer that cannot come would only cost the caller its whole timeout.

    Raises:
        NoClusterRunning: the recorded controller process is not running.
    """
    pid = connection.controller_pid
    host = connection.url.removeprefix("tcp://").rpartition(":")[0]
    if pid <= 0 or host not in ("127.0.0.1", "localhost", "[::1]"):
        return
    try:
        gone = psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        gone = True
    except psutil.Error:
        gone = False  # not ours to inspect: it exists
    if not gone:
        return
    where = f"--profile-dir {profile_dir}" if profile_dir else f"--profile {profile}"
    raise NoClusterRunning(
        f"the controller recorded in {path} (pid {pid}) is not running any more. Its "
        f"engines wait for a controller for a while (controller_timeout): `pxcontroller "
        f"{where}` takes over with the same engines and their namespaces, and clients "
        f"then connect as before. `pxcluster stop {where}` and `pxcluster start` begin "
        "afresh instead (the engines' data is lost)."
    )


def _map_segments(msg: Message) -> Message:
    """A reply whose big buffers came as shared-memory segments, with them mapped in.

    Done as soon as the reply arrives, whatever becomes of the call, so no segment outlives
    its reply: the names are unlinked once mapped.
    """
    indexes = msg.content.get("shm")
    if msg.type != MsgType.REPLY or not indexes:
        return msg
    frames = import_frames(msg.buffers, indexes, unlink_after=True)
    content = {k: v for k, v in msg.content.items() if k != "shm"}
    return dataclasses.replace(msg, buffers=frames, content=content)


def _open_direct(ctx: Context) -> DirectRoutes | None:
    """This client's half of the direct path, or None where it cannot be had (no shared
    memory here, ``PXCLUSTER_DIRECT=0``, or the reply socket cannot be bound)."""
    if not direct_enabled():
        return None
    try:
        return DirectRoutes(ctx)
    except OSError as exc:
        log.info("calls go through the controller only: %s", exc)
        return None
