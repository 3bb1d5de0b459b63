"""Engine layer: the engine process, a main thread that runs user code and an I/O thread.

Theory of operation
-------------------
Two threads share one local FIFO ``inbox``:

* The **I/O thread** owns the socket to the controller. It registers, takes requests into
  the inbox, and handles control requests itself, at once, even while user code runs:
  CLEAR_QUEUE (abort what has not started), INTERRUPT (KeyboardInterrupt in the running
  request) and SHUTDOWN. It watches the connection: an engine cut off from its controller
  for ``controller_timeout`` seconds exits, so engines are never left behind.
* The **main thread** takes requests from the inbox one at a time and runs them, so user
  code can be interrupted with a signal and can use anything that needs the main thread.
  It sends each request's output and reply itself, on a send-only socket of its own (one
  thread hand-off less per request than passing them back to the I/O thread).

Heartbeats are echoed by a separate C thread (``HeartbeatEcho``) that never needs the GIL.

Invariants: every request taken from the socket gets exactly one REPLY (OK, ERROR, or
ABORTED when a clear dropped it); requests run in arrival order.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import signal
import socket
import threading
import time
import uuid
from typing import Any

from pxcluster._errors import LocalProtocolError, RemoteProtocolError
from pxcluster.engine._direct import DirectPort
from pxcluster.engine._display import install as install_display
from pxcluster.engine._execute import new_namespace
from pxcluster.engine._handlers import RequestHandlers, error_reply
from pxcluster.engine._inbox import Inbox
from pxcluster.engine._tasks import HOLD_FOR, HeldReplies, TaskRefused
from pxcluster.profile import EngineConnection, launch_info
from pxcluster.serialize import host_key, sweep_stale
from pxcluster.transport import (
    Channel,
    ChannelClosed,
    Context,
    HeartbeatEcho,
    Monitor,
    Poller,
    connect,
)
from pxcluster.wire import (
    CONTROL_REQUESTS,
    QUEUED_REQUESTS,
    DropLog,
    Message,
    MsgType,
    RecentIds,
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

log = logging.getLogger("pxcluster.engine")


def session_of(request_id: str) -> str:
    """The session (client connection) that made ``request_id``: ids are ``session-n``
    (a task sent again is ``session-n~k``)."""
    return request_id.rpartition("-")[0]


_STOP = object()
_NUMBER = (int, float)  # not ``int | float``: that makes a new union at every use
#: Seconds without the controller before the engine warns that it lost it.
_LOST_AFTER = 2.0
#: Seconds a stopping engine waits for user code to give up before it exits regardless.
_STOP_GRACE = 3.0
#: Aborts remembered for requests not yet started (or already finished: never matched).
_TAKEN_BACK_MAX = 1024


class Engine:
    """One engine: connect, register, then serve requests until told to stop."""

    def __init__(
        self,
        connection: EngineConnection,
        controller_timeout: float = 30.0,
        requested_id: int = -1,
        rejoin_when_declared_dead: bool = True,
        heartbeat_urls: tuple[str, str] | None = None,
    ) -> None:
        self.connection = connection
        #: (ping, pong) URLs to echo heartbeats on, instead of the controller's ports: a
        #: per-host relay's (``pxengine --relay``), which pings its engines itself.
        self._heartbeat_urls = heartbeat_urls
        self.controller_timeout = controller_timeout
        self.id = -1
        # The id to ask for at the first registration (an MPI rank); granted when free.
        self._requested_id = requested_id
        self.identity = uuid.uuid4().hex.encode("ascii")
        self._session = f"eng{os.getpid()}-{self.identity[:8].decode()}"
        self._ids = itertools.count()
        self._signer = Signer(connection.key)
        self._guard = RecentIds()  # tasks come in scheduling order, not their senders' order
        self._ctx = Context()
        self._inbox = Inbox()
        self._registered = threading.Event()
        self._echo_ports: tuple[int, int] | None = None  # heartbeat ports echoed now
        self._stopping = threading.Event()
        self._running: str | None = None  # id of the request the main thread runs now
        #: Requests aborted between the inbox and their start (-> withdraw flag), under
        #: the inbox's mutex: see ``_take_back``.
        self._taken_back: collections.OrderedDict[str, bool] = collections.OrderedDict()
        self._interrupt_target: str | None = None
        self._deadline: float | None = None  # when the running task's own timeout expires
        self._timed_out: str | None = None  # the request the I/O thread interrupted for it
        self._exit_code = 0
        self.handlers = RequestHandlers(new_namespace(), lambda: self.id)
        # The main thread sends its replies and output itself, on a send-only socket of its
        # own: no hand-off to the I/O thread on the way out (the controller answers that
        # socket's messages through the I/O thread's, see ``sender_identity``).
        self._curve = connection.curve_serverkey.encode("ascii") or None  # --curve
        self._sender = connect(
            self._ctx,
            "dealer",
            connection.url,
            identity=sender_identity(self.identity),
            curve_server=self._curve,
        )
        self._sender_lock = threading.Lock()  # user threads may print too
        #: Requests from clients on this host that skip the controller (None: not offered).
        self._direct = DirectPort.open(self._ctx)
        #: Direct requests the I/O thread took in this turn, for the inbox (``_queue_direct``).
        self._direct_taken: list[Message] = []
        #: Task replies held back while more tasks wait (sent as one BATCH), under that lock.
        self._held = HeldReplies(self._new_id)
        #: Dropped messages and survived errors, one log line per kind per 10 s.
        self._drops = DropLog(log)
        #: Once declared dead, rejoin as a new engine (True) or exit (False).
        self.rejoin_when_declared_dead = rejoin_when_declared_dead
        # Freeze detection (SIGSTOP, a swap storm): the I/O thread's turns start at most
        # ~0.5 s apart; a longer gap means the whole process stood still, maybe past the
        # controller's heartbeat timeout. Then nothing queued may start until the
        # controller has confirmed we are still who we were (``_check_in``).
        self._io_tick = time.monotonic()
        self._frozen_after = 1.0  # seconds; from the controller's heartbeat timeout
        self._epoch = 0  # bumped when the controller declared us dead: older work is void

    def _new_id(self) -> str:
        return f"{self._session}-{next(self._ids)}"

    # -- main thread -----------------------------------------------------------------------

    def run(self) -> int:
        """Serve until shut down; returns the process exit code."""
        signal.signal(signal.SIGINT, self._on_sigint)
        if hasattr(signal, "SIGUSR1"):  # the controller's interrupt when our I/O is stuck
            signal.signal(signal.SIGUSR1, self._on_controller_interrupt)
        sweep_stale()  # shared-memory segments left by processes that died
        install_display()
        io_thread = threading.Thread(target=self._io_loop, name="pxengine-io", daemon=True)
        io_thread.start()
        while True:
            try:
                item = self._inbox.get()
            except KeyboardInterrupt:
                log.info("interrupted (Ctrl-C) while idle: stopping")
                self._stopping.set()
                break
            if item is _STOP:
                break
            epoch = self._epoch
            if (
                time.monotonic() - self._io_tick > self._frozen_after
                or not self._registered.is_set()
            ):
                self._wait_checked_in()
            if self._epoch != epoch:
                continue  # we were declared dead meanwhile: its client was told it failed
            try:
                self._run_request(item)
            except Exception:  # a bug in the engine, never in user code (that is caught)
                self._drops.exception("main", "the engine survived an error in a request")
        self._send_held()  # replies held back when a SHUTDOWN emptied the queue
        io_thread.join(timeout=2.0)
        self._ctx.close(linger=1.0)
        if self._direct is not None:
            self._direct.remove_socket_file()
        return self._exit_code

    def _wait_checked_in(self) -> None:
        """Hold the next request until the I/O thread runs again and is registered (after a
        freeze it checks in first), or the engine stops."""
        while not self._stopping.is_set():
            fresh = time.monotonic() - self._io_tick <= self._frozen_after
            if fresh and self._registered.is_set():
                return
            self._registered.wait(0.05)

    def _on_controller_interrupt(self, signum: int, frame: object) -> None:
        """SIGUSR1 from the controller: an interrupt our I/O thread could not take (C code
        held the GIL). It interrupts the request that runs, and nothing when none does."""
        if self._running is not None:
            raise KeyboardInterrupt

    def _on_sigint(self, signum: int, frame: object) -> None:
        """Raise KeyboardInterrupt only in the request an INTERRUPT was aimed at.

        The I/O thread sets ``_interrupt_target`` before it signals; by the time the handler
        runs (in the main thread) that request may have finished, and then the signal is
        ignored, so an interrupt never lands between a request's end and its reply. A
        SIGINT nobody aimed (Ctrl-C in the engine's terminal) interrupts as usual.
        """
        target, self._interrupt_target = self._interrupt_target, None
        if target is None or target == self._running:
            raise KeyboardInterrupt

    def _interrupt(self, request_id: str) -> None:
        self._interrupt_target = request_id
        os.kill(os.getpid(), signal.SIGINT)

    def _start(self, request_id: str) -> bool | None:
        """Mark ``request_id`` as running, unless an INTERRUPT aimed at it came while it
        was between the inbox and here (``_take_back``): then its ``withdraw`` flag."""
        with self._inbox.mutex:
            taken_back = self._taken_back.pop(request_id, None)
            if taken_back is None:
                self._running = request_id
        return taken_back

    def _run_request(self, msg: Message) -> None:
        timeout = msg.content.get("timeout") if msg.type == MsgType.TASK else None
        self._deadline = time.monotonic() + timeout if isinstance(timeout, _NUMBER) else None
        taken_back = self._start(msg.id)
        status = Status.OK
        content: dict[str, Any]
        buffers: list[Any]
        try:
            if taken_back is not None:  # aborted while on its way here: it must not run
                content, buffers = {"error": "aborted", "withdrawn": taken_back}, []
                status = Status.ABORTED
            else:
                content, buffers = self.handlers.handle(msg, self._stream_writer(msg))
        except TaskRefused:
            self._running = None
            content, buffers, status = self.handlers.reply_extra(msg), [], Status.REFUSED
        except BaseException as exc:  # user code may raise anything, SystemExit included
            # First of all: from here on an interrupt aimed at this request is stale, so it
            # cannot land in building the error reply (formatting, pickling) and lose it.
            self._running = None
            extra = self.handlers.reply_extra(msg)
            if isinstance(exc, KeyboardInterrupt) and self._timed_out == msg.id:
                extra["timed_out"] = timeout
            content, buffers = error_reply(exc, extra)
            status = Status.ERROR
        finally:
            self._running = None
            self._deadline = None
        reply = Message(
            MsgType.REPLY,
            self._new_id(),
            content,
            buffers,
            parent=msg.id,
            engine=self.id,
            status=status,
        )
        reply_to = self._direct.route_of(msg.id) if self._direct is not None else None
        if reply_to is not None:  # a client on this host sent it directly
            self._answer_direct(reply_to, msg, reply)
        else:
            self._send_from_main(reply, task=msg.type == MsgType.TASK)
        self.handlers.release_retired()

    def _answer_direct(self, reply_to: str, msg: Message, reply: Message) -> None:
        """Send ``reply`` to a direct request straight to its client, then tell the
        controller it is done (``engine/_direct.py``)."""
        assert self._direct is not None
        self._direct.send_reply(reply_to, reply)
        done = self._direct.answered(msg, reply, self._new_id())
        if done is not None:  # the controller was told it is queued: now it is done
            self._send_from_main(done)
        else:
            report = self._direct.report_if_quiet(self.id, self._new_id)
            if report is not None:
                self._send_from_main(report)

    def _stream_writer(self, msg: Message) -> Any:
        if not msg.content.get("stream"):
            return None

        def write(name: str, text: str) -> None:
            self._send_from_main(
                Message(
                    MsgType.STREAM,
                    self._new_id(),
                    {"name": name, "text": text},
                    parent=msg.id,
                    engine=self.id,
                )
            )

        return write

    def _send_from_main(self, msg: Message, task: bool = False) -> None:
        """Send ``msg``; a ``task`` reply may be held back while more tasks wait right
        behind it, and go with the next reply as one BATCH (``HeldReplies``)."""
        try:
            header = pack_header(msg)
        except LocalProtocolError as exc:  # content msgpack cannot carry: say so instead
            content = {"error": f"the engine could not encode its reply: {exc}"[:2000]}
            status = Status.ENGINE_ERROR if msg.type == MsgType.REPLY else msg.status
            msg = Message(
                msg.type, msg.id, content, parent=msg.parent, engine=self.id, status=status
            )
            header = pack_header(msg)
        with self._sender_lock:
            try:
                if task and self._held.hold(header, msg.buffers, self._task_waits()):
                    return
                for head, buffers in self._held.take((header, msg.buffers) if task else None):
                    self._sender.send(encode_raw(head, buffers, self._signer))
                if not task:
                    self._sender.send(encode_raw(header, msg.buffers, self._signer))
            except ChannelClosed:
                log.warning("could not send a reply: the engine is closing")

    def _task_waits(self) -> bool:
        """True if the next request in the inbox is a task (peeked without taking it)."""
        queued = self._inbox.queue
        try:  # no lock: reading one item of a deque is atomic
            return getattr(queued[0], "type", None) is MsgType.TASK
        except IndexError:
            return False

    def _send_held(self, only_due: bool = False) -> None:
        """Send the task replies held back (``only_due``: if they waited long enough)."""
        if not self._held or (only_due and not self._held.due()):
            return  # the usual case, seen without the lock the main thread sends under
        with self._sender_lock:
            if not self._held or (only_due and not self._held.due()):
                return
            try:
                for head, buffers in self._held.take():
                    self._sender.send(encode_raw(head, buffers, self._signer))
            except ChannelClosed:
                log.warning("could not send replies: the engine is closing")

    # -- I/O thread ------------------------------------------------------------------------

    def _io_loop(self) -> None:
        dealer = connect(
            self._ctx,
            "dealer",
            self.connection.url,
            identity=self.identity,
            curve_server=self._curve,
        )
        monitor = Monitor(dealer)
        direct = [self._direct.channel] if self._direct is not None else []
        poller = Poller([dealer, monitor, *direct])
        self._register(dealer)
        # Cut off from the controller since when (None: connected). Counts from start-up
        # until the first registration, so an engine pointed at nothing does not wait forever.
        self._lost_since: float | None = time.monotonic()
        self._lost_warned = True  # before the first registration, only the timeout speaks
        try:
            while not self._stopping.is_set():
                try:
                    self._io_turn(poller, monitor, dealer)
                except Exception:  # a bug: the engine's namespace is worth going on for
                    self._drops.exception("io", "the engine's I/O loop survived an error")
                lost = self._lost_since
                if lost is not None and time.monotonic() - lost > self.controller_timeout:
                    log.error(
                        "no controller answered at %s for %.0f s: exiting. Is it running, "
                        "and listening where this host can reach it? The address comes "
                        "from the controller's --ip/--location (an interface name works "
                        "too), or pxengine --controller-ip/--controller-port",
                        self.connection.url,
                        self.controller_timeout,
                    )
                    self._exit_code = 1
                    self._stop_main()
        finally:
            monitor.close()

    def _io_turn(self, poller: Poller, monitor: Monitor, dealer: Channel) -> None:
        now = time.monotonic()
        if (
            now - self._io_tick > self._frozen_after
            and self._registered.is_set()
            and not self._stopping.is_set()
        ):
            self._check_in(dealer, now - self._io_tick)
        self._io_tick = now
        timeout = self._poll_timeout()
        self._queue_direct()  # last before the poll lets the GIL go: see _queue_direct
        for chan in poller.poll(timeout):
            if chan is monitor:
                event = monitor.recv_event()
                if event == "disconnected":
                    self._from_controller(dealer)  # a SHUTDOWN may be waiting: read it first
                self._on_link_event(event)
            elif chan is dealer:
                self._from_controller(dealer)
            else:
                self._from_clients(dealer)
        self._enforce_deadline()
        self._tell_controller_of_direct(dealer)
        self._send_held(only_due=True)  # replies held behind a task that runs long
        lost = self._lost_since
        if lost is not None and not self._lost_warned and time.monotonic() - lost > _LOST_AFTER:
            self._lost_warned = True
            if not self._stopping.is_set():
                log.warning("lost the controller at %s", self.connection.url)

    def _queue_direct(self) -> None:
        """Hand the direct requests taken in the last turn to the main thread.

        Just before this thread polls again (and lets the GIL go), so that the main thread,
        woken by it, need not wait for the GIL while this thread finishes its turn (the
        latency of a direct call, and a context switch); and before any message from the
        controller is handled, which may act on the inbox (a clear, an abort, a shutdown
        must find them there). Direct requests are never tasks, so the poll's timeout,
        computed before, does not depend on them.
        """
        if self._direct_taken:
            taken, self._direct_taken = self._direct_taken, []
            self._inbox.put_many(taken)

    def _from_clients(self, dealer: Channel) -> None:
        """Queue the requests clients on this host sent directly (``engine/_direct.py``);
        one with a bad payload is answered with an error, through the controller."""
        assert self._direct is not None
        for msg, problem in self._direct.receive(self._guard):
            if not problem:
                self._direct_taken.append(msg)  # queued at the end of the turn
                continue
            log.warning("refused a direct %s: %s", msg.type.name, problem)
            self._reply_now(dealer, msg, {"error": problem}, Status.ENGINE_ERROR)

    def _tell_controller_of_direct(self, dealer: Channel) -> None:
        """Announce direct requests that wait or run long enough, and report in bulk those
        answered before that (``engine/_direct.py``)."""
        if self._direct is not None and self._direct.busy():
            for notice in self._direct.notices(self.id, self._new_id):
                dealer.send(encode(notice, self._signer))

    def _check_in(self, dealer: Channel, frozen: float) -> None:
        """After a freeze, register again (same id asked): the same id back means we were
        not missed; another one means we were declared dead (``_on_registered``)."""
        log.info("this engine stood still for %.1f s: checking in with the controller", frozen)
        self._register(dealer)  # clears _registered: the main thread waits for the answer

    def _poll_timeout(self) -> float:
        longest = 0.5
        if self._direct is not None and self._direct.busy():  # to announce them in time
            longest = min(longest, self._direct.next_due())
        if len(self._held) or self._task_waits():  # the main thread may hold replies
            longest = HOLD_FOR
        deadline = self._deadline
        if deadline is None:
            return longest
        return min(longest, max(0.0, deadline - time.monotonic()))

    def _enforce_deadline(self) -> None:
        """Interrupt the running task once its own timeout has passed."""
        deadline, running = self._deadline, self._running
        if deadline is not None and running is not None and time.monotonic() >= deadline:
            self._deadline = None
            self._timed_out = running
            log.info("task %s ran past its timeout: interrupting it", running)
            self._interrupt(running)

    def _on_link_event(self, event: str) -> None:
        if event == "disconnected" and self._lost_since is None:
            # Warned about only if it lasts (``_io_turn``): a controller that is stopping
            # closes its sockets just after it sent SHUTDOWN, and that is no news.
            log.info("connection to the controller at %s dropped", self.connection.url)
            self._lost_since = time.monotonic()
            self._lost_warned = False
        elif event == "connected" and self._registered.is_set():
            self._lost_since = None  # back; a controller that forgot us asks us to register

    def _register(self, dealer: Channel) -> None:
        self._registered.clear()
        content: dict[str, Any] = {
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "host": host_key(),
        }
        if self._direct is not None:  # clients on this host may call it directly
            content["direct"] = self._direct.url
            content["direct_key"] = self._direct.key.decode("ascii")
        launch = launch_info(os.environ)
        if launch:  # the launcher's handle (job id, array index, walltime end)
            content["launch"] = launch
        if self.id >= 0:
            content["id"] = self.id  # a restarted controller gives us our id back if it can
            if not self.rejoin_when_declared_dead:
                content["rejoin"] = False  # declared dead meanwhile? then say so, we exit
        elif self._requested_id >= 0:
            content["id"] = self._requested_id  # our MPI rank: engine i is rank i
        dealer.send(encode(Message(MsgType.REGISTER, self._new_id(), content), self._signer))

    def _from_controller(self, dealer: Channel) -> None:
        self._queue_direct()  # what came before it is in the inbox before it is handled
        frames = dealer.recv_nowait()
        while frames is not None:
            try:
                msg = decode(frames, self._signer, self._guard, check_buffers=False)
            except RemoteProtocolError as exc:
                self._drops.warning("bad", "dropped a message from the controller: %s", exc)
            except Exception:
                self._drops.exception("decode", "could not decode a message; dropped it")
            else:
                try:
                    check_digests(msg)
                except RemoteProtocolError as exc:
                    # the header is authentic, so answer it: its sender must not wait forever
                    log.warning("refused %s: %s", msg.type.name, exc)
                    self._reply_now(dealer, msg, {"error": str(exc)}, Status.ENGINE_ERROR)
                else:
                    try:
                        self._dispatch(dealer, msg)
                    except Exception:
                        self._drops.exception(
                            f"handle-{msg.type.name}",
                            "could not handle %s; dropped it",
                            msg.type.name,
                        )
            frames = dealer.recv_nowait()

    def _dispatch(self, dealer: Channel, msg: Message) -> None:
        if msg.type == MsgType.REPLY and not self._registered.is_set():
            self._on_registered(msg)
        elif msg.type == MsgType.NOTIFY and msg.content.get("event") == "register":
            self._asked_to_register(dealer, msg)
        elif msg.type in CONTROL_REQUESTS:
            self._control(dealer, msg)
        elif msg.type in QUEUED_REQUESTS:
            self._inbox.put(msg)
        elif msg.type == MsgType.BATCH:  # tasks that queued up for us (wire/_batch.py)
            self._from_batch(dealer, msg)
        else:
            log.warning("ignoring unexpected %s from the controller", msg.type.name)

    def _from_batch(self, dealer: Channel, batch: Message) -> None:
        """Queue the tasks of a BATCH, each checked as a lone one would be."""
        entries, problems = unbatch(batch)
        for problem in problems:
            self._drops.warning("batch", "dropped a task of a batch: %s", problem)
        checked: list[Message] = []
        for task in entries:
            if task.type != MsgType.TASK:
                self._drops.warning("batch", "dropped a %s in a batch", task.type.name)
                continue
            try:
                check_digests(task)
            except RemoteProtocolError as exc:
                log.warning("refused a task: %s", exc)
                self._reply_now(dealer, task, {"error": str(exc)}, Status.ENGINE_ERROR)
                continue
            checked.append(task)
        self._inbox.put_many(checked)  # at once: one wake-up of the main thread

    def _asked_to_register(self, dealer: Channel, msg: Message) -> None:
        """The controller does not know us: it restarted, or it declared us dead.

        Declared dead (we were stopped, or cut off, past the heartbeat timeout), our clients
        were told our requests failed and may have run them again elsewhere: what we still
        hold must not run, so it is dropped, and we join again as a new engine (ids are never
        reused) or exit, as configured. A stopping engine does neither: it is on its way out.
        """
        if self._stopping.is_set():
            return
        if msg.content.get("reason") != "declared dead":
            if not self._registered.is_set():
                return  # our registration is on its way already
            log.warning("controller does not know this engine: registering again")
            self._register(dealer)
            return
        dropped = self._drain_inbox()
        if self._direct is not None:
            self._direct.drop([m.id for m in dropped])
        self._epoch += 1
        running = self._running
        if running is not None:
            self._interrupt(running)
        if not self.rejoin_when_declared_dead:
            log.error(
                "the controller declared engine %d dead: exiting (dropped %d queued requests)",
                self.id,
                len(dropped),
            )
            self._exit_code = 3
            self._stop_main()
            return
        log.warning(
            "the controller declared engine %d dead: dropped %d queued requests%s and joining "
            "again as a new engine",
            self.id,
            len(dropped),
            ", interrupted the running one" if running else "",
        )
        self.id = -1  # ask for no id: the old one is never given out again
        self._register(dealer)

    def _on_registered(self, msg: Message) -> None:
        engine_id = msg.content.get("id")
        if type(engine_id) is not int:
            log.warning("ignoring a registration reply without an engine id")
            return
        if 0 <= self.id != engine_id:
            # declared dead while we stood still (or a restarted controller gave our id
            # away): our queued requests' clients were told they failed; none may run
            dropped = self._drain_inbox()
            if self._direct is not None:
                self._direct.drop([m.id for m in dropped])
            self._epoch += 1
            log.warning(
                "registered again, as engine %d (was %d): dropped %d queued requests",
                engine_id,
                self.id,
                len(dropped),
            )
        self.id = engine_id
        timeout = msg.content.get("heartbeat_timeout")  # a float or int: the schema says
        if isinstance(timeout, int | float) and timeout > 0:
            self._frozen_after = max(1.0, min(2.0, timeout / 2))
        ping, pong = msg.content.get("hb_ping_port"), msg.content.get("hb_pong_port")
        if type(ping) is int and type(pong) is int and (ping, pong) != self._echo_ports:
            # first registration, or a restarted controller on other heartbeat ports (an
            # echo on the old ports idles: nothing answers there)
            host = self.connection.url.rsplit(":", 1)[0]
            urls = self._heartbeat_urls or (f"{host}:{ping}", f"{host}:{pong}")
            if self._echo_ports is None or self._heartbeat_urls is None:
                HeartbeatEcho(*urls, self.identity, self._curve).start()
            self._echo_ports = (ping, pong)
        self._registered.set()
        self._lost_since = None
        log.info("registered as engine %d", self.id)

    def _reply_now(
        self, dealer: Channel, request: Message, content: dict[str, Any], status: Status = Status.OK
    ) -> None:
        reply = Message(
            MsgType.REPLY, self._new_id(), content, parent=request.id, engine=self.id, status=status
        )
        if self._direct is not None:  # a direct request answered here goes via the
            # controller, which must know of it first
            notice = self._direct.announce_now(request.id, self.id, self._new_id())
            if notice is not None:
                dealer.send(encode(notice, self._signer))
        dealer.send(encode(reply, self._signer))

    def _control(self, dealer: Channel, msg: Message) -> None:
        session = msg.content.get("session")  # only that client's requests (its Ctrl-C)
        if not isinstance(session, str):
            session = None
        if msg.type == MsgType.CLEAR_QUEUE:
            dropped = self._drain_inbox(session)
            for request in dropped:
                self._reply_now(
                    dealer, request, {"error": "cleared from the queue"}, Status.ABORTED
                )
            self._reply_now(dealer, msg, {"cleared": len(dropped)})
        elif msg.type == MsgType.INTERRUPT:
            # Aimed at one request (a task's abort) or at whatever runs now (Ctrl-C).
            # A withdraw takes back a request that has not started, and never interrupts.
            wanted = msg.content.get("request")
            withdraw = bool(msg.content.get("withdraw"))
            running = self._running
            if wanted is not None and wanted != running:
                content = {"error": "aborted", "withdrawn": withdraw}
                found, started = self._take_back(wanted, withdraw)
                for request in found:
                    self._reply_now(dealer, request, content, Status.ABORTED)
                if started and not withdraw:
                    self._interrupt(wanted)
                    running = wanted
            elif (
                running is not None
                and not withdraw
                and (session is None or session_of(running) == session)
            ):
                self._interrupt(running)
            self._reply_now(dealer, msg, {"interrupted": running})
        elif msg.type == MsgType.SHUTDOWN:
            log.info("shutdown requested")
            for request in self._drain_inbox():
                self._reply_now(dealer, request, {"error": "engine shut down"}, Status.ABORTED)
            if msg.targets:  # a client's kill(); the controller's own shutdown needs no reply
                self._reply_now(dealer, msg, {})
            self._stop_main()

    def _take_back(self, request_id: object, withdraw: bool) -> tuple[list[Message], bool]:
        """Take request ``request_id`` out of the inbox: (what was taken, whether it has
        started meanwhile). One the main thread already took from the inbox but has not
        started is marked so that it does not start (``_start``): else an abort arriving
        in that instant was lost, and the task ran to its end."""
        with self._inbox.mutex:
            found = [m for m in self._inbox.queue if m is not _STOP and m.id == request_id]
            for item in found:
                self._inbox.queue.remove(item)
            started = self._running == request_id
            if not found and not started and isinstance(request_id, str):
                self._taken_back[request_id] = withdraw  # or finished: then never matched
                while len(self._taken_back) > _TAKEN_BACK_MAX:
                    self._taken_back.popitem(last=False)
        return found, started

    def _drain_inbox(self, session: str | None = None) -> list[Message]:
        """Take the queued requests out of the inbox (only ``session``'s, if given)."""
        with self._inbox.mutex:
            dropped = [
                m
                for m in self._inbox.queue
                if m is not _STOP and (session is None or session_of(m.id) == session)
            ]
            for item in dropped:
                self._inbox.queue.remove(item)
        return dropped

    def _stop_main(self) -> None:
        """Make the main thread leave its loop, interrupting user code if it runs.

        User code may swallow KeyboardInterrupt or sit in a long C call; the process must
        stop all the same, so a timer ends it after ``_STOP_GRACE`` seconds.
        """
        self._stopping.set()
        self._queue_direct()  # taken before the stop: they run first, as they always did
        self._inbox.put(_STOP)
        running = self._running
        if running is not None:
            self._interrupt(running)
        timer = threading.Timer(_STOP_GRACE, self._force_exit)
        timer.daemon = True
        timer.start()

    def _force_exit(self) -> None:
        log.warning("user code did not stop within %.0f s of shutdown: exiting", _STOP_GRACE)
        logging.shutdown()
        os._exit(self._exit_code)
