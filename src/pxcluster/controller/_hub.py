"""Controller layer: the hub state machine (engine registry, per-engine queues, liveness).

Theory of operation
-------------------
The hub is pure: the server feeds it decoded messages and clock ticks, and it returns the
messages to send. It never unpickles a payload; it routes on header fields only.

State:
  * ``engines``: id -> EngineRecord for every registered, live engine. Ids are handed out
    0, 1, 2 ... in order of registration and never reused, so a result always names the
    engine that produced it.
  * each EngineRecord's ``outstanding``: the requests sent to that engine and not answered
    yet, in order (the engine runs them in this order). This is the engine's queue as the
    controller sees it: queue_status reports it, and it is what fails when the engine dies.
  * ``clients``: routing ids of clients that said CONNECT, for engine notifications.

Invariants:
  * every request forwarded to an engine is in exactly one ``outstanding`` map until its
    REPLY passes through, or until the engine is declared dead, when it is answered with
    an ENGINE_ERROR reply at once: a client never waits on a dead engine;
  * an engine is dead when nothing (heartbeat or message) came from it for
    ``heartbeat_timeout`` seconds; it is then forgotten, and a message from it later makes
    the hub ask it to register again (it gets a new id).
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import NamedTuple

from pxcluster.controller._activity import Activity
from pxcluster.controller._outbound import Outbound
from pxcluster.controller._scheduler import Scheduler
from pxcluster.controller._store import RecordStore
from pxcluster.controller._taskboard import TaskBoard
from pxcluster.wire import (
    CONTROL_REQUESTS,
    QUEUED_REQUESTS,
    Message,
    MsgType,
    NotifyContent,
    Status,
    pack_header,
    unbatch,
)

log = logging.getLogger("pxcluster.controller")

#: Engine pings a second the controller sends at most before it stretches its heartbeat
#: period (see ``Hub.beat_period``).
PINGS_PER_SECOND = 1000

#: Identities of engines declared dead that the hub remembers (an engine that comes back
#: later than this many deaths after its own is simply a new engine to it).
_DEAD_REMEMBERED = 100_000
#: Seconds an engine has to confirm a client's kill (its I/O thread answers at once) before
#: the controller kills it itself: an engine whose I/O thread cannot run (C code holding the
#: GIL) never answers, and a client's kill() must still end it within 2 s.
KILL_GRACE = 1.0


#: Request types a client may send an engine directly (``Hub._direct``).
_DIRECT_KINDS = frozenset(int(t) for t in QUEUED_REQUESTS - {MsgType.TASK})
#: Direct requests' early "done"s remembered per engine at most.
_DONE_EARLY_MAX = 10_000

#: Requests the hub forwards to the engines named in ``targets``; control requests jump the
#: engine's queue and are not counted in its length.
ENGINE_REQUESTS = (QUEUED_REQUESTS | CONTROL_REQUESTS) - {MsgType.TASK}
#: Task-interface requests the controller answers itself.
TASK_REQUESTS = frozenset(
    {MsgType.TASK_RESULT, MsgType.TASK_ABORT, MsgType.TASK_STATUS, MsgType.TASK_CLEAR}
)


class Pending(NamedTuple):
    """One request sent to an engine and not answered yet (a named tuple: one is made
    per task, and a tuple costs a fraction of a frozen dataclass)."""

    client: bytes
    type: MsgType
    since: float = 0.0  # when it was sent (the clock's time)


@dataclasses.dataclass
class EngineRecord:
    """A registered engine as the hub knows it."""

    id: int
    identity: bytes
    hostname: str
    pid: int
    last_seen: float
    last_pong: int = 0  # sequence number of the latest ping it answered
    host: str = ""  # the engine's host key: clients on the same host share memory with it
    outstanding: dict[str, Pending] = dataclasses.field(default_factory=dict)
    #: What its launcher told it (``profile.launch_info``: launcher, job id, array index,
    #: walltime end), so clients can map the engine to its job.
    launch: dict[str, str | int | float] = dataclasses.field(default_factory=dict)
    retired: bool = False  # its job's walltime is near: the scheduler sends it no tasks
    #: Where clients on its host send it requests directly, and the key they sign with
    #: (both "" when it offers no direct path); see ``Hub._direct``.
    direct: str = ""
    direct_key: str = ""
    #: Direct requests whose "done" came before their "queued" (two sockets of the engine).
    done_early: set[str] = dataclasses.field(default_factory=set)

    def queue_length(self) -> int:
        return sum(1 for p in self.outstanding.values() if p.type not in CONTROL_REQUESTS)


def _short_str(value: object, limit: int) -> str:
    """A registration's text field, "" when it is not text or too long to be meant."""
    return value if isinstance(value, str) and len(value) <= limit else ""


def _launch_of(value: object) -> dict[str, str | int | float]:
    """An engine's ``launch`` registration field, kept only if it is small and flat."""
    if not isinstance(value, dict) or len(value) > 16:
        return {}
    return {
        str(k)[:64]: v[:256] if isinstance(v, str) else v
        for k, v in value.items()
        if type(v) in (str, int, float)
    }


def _job_ended(launch: dict[str, str | int | float]) -> str:
    """Why a batch engine went silent, when its job's walltime is over ("" otherwise)."""
    end = launch.get("end_time")
    if not isinstance(end, (int, float)) or time.time() < end:
        return ""
    job = f"{launch.get('launcher', 'batch')} job {launch.get('job_id', '?')}"
    if isinstance(launch.get("array_index"), int):
        job += f"[{launch['array_index']}]"
    return f"; its {job} reached its walltime"


class Hub:
    """Registry, routing and liveness of one controller; see the module docstring."""

    def __init__(
        self,
        heartbeat_timeout: float,
        clock: Callable[[], float] = time.monotonic,
        store: RecordStore | None = None,
        task_prefetch: int = 2,
        heartbeat_period: float = 0.5,
        task_prefetch_short: int | None = None,
        walltime_margin: float = 60.0,
    ) -> None:
        self.heartbeat_timeout = heartbeat_timeout
        #: An engine whose batch job ends (``launch`` end_time, epoch seconds) within this
        #: many seconds gets no new tasks, so none is cut off by the scheduler's time limit.
        self.walltime_margin = walltime_margin
        self.heartbeat_period = heartbeat_period
        self.ping_seq = 0
        self.registry_version = 0  # counts registrations and removals, for clients
        self.engines: dict[int, EngineRecord] = {}
        # The scheduler also counts each engine's load (see ``sent`` / ``answered``), so that
        # placing a task never scans every engine.
        self.scheduler = Scheduler(task_prefetch, task_prefetch_short)
        self.tasks = TaskBoard(
            self.scheduler,
            store if store is not None else RecordStore(":memory:"),
            self.engines,
            self.new_id,
            self._task_dispatched,
            clock,
        )
        self.clients: set[bytes] = set()
        self.client_seen: dict[bytes, float] = {}  # routing id -> its latest request, for MONITOR
        self.shutdown_requested = False
        self._by_identity: dict[bytes, int] = {}
        self._next_engine_id = 0
        self._given_ids: set[int] = set()  # every id this hub handed out: never again
        self._kill_deadlines: dict[int, float] = {}  # engine -> when a client's kill is overdue
        #: engine -> (signal, since when): ones the server could not signal itself (another
        #: host, no relay), for the cluster's keeper to send through the launcher (MONITOR).
        self.signal_wanted: dict[int, tuple[int, float]] = {}
        #: (when overdue, engine, interrupt id, the request it aims at), see _aimed_interrupt
        self._interrupt_deadlines: list[tuple[float, int, str, str]] = []
        #: The controller's own host key (``serialize.host_key``): engines with the same key
        #: run on its host and can be signalled by pid.
        self.host = ""
        #: Identities of engines declared dead (-> their id), so that one coming back is
        #: told to drop what it holds and join as a new engine (bounded: oldest forgotten).
        self._declared_dead: collections.OrderedDict[bytes, int] = collections.OrderedDict()
        #: Identities of engines stopped on purpose (a kill, a retirement): one still talking
        #: while it exits (a last pong) is not asked to register, so it never comes back
        #: under a new id (bounded: oldest forgotten).
        self._stopped: collections.OrderedDict[bytes, int] = collections.OrderedDict()
        self._clock = clock
        self._session = f"ctl{os.getpid()}"
        self._msg_ids = itertools.count()
        self.heartbeat_info: dict[str, object] = {}
        self.activity = Activity()  # recent replies, errors and lost engines, for MONITOR

    # -- helpers --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the record store, flushing what waits to be written (its database file)."""
        self.tasks.store.close()

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def new_id(self) -> str:
        """A fresh id for a message the controller makes."""
        return f"{self._session}-{next(self._msg_ids)}"

    def _reply(
        self, client: bytes, request_id: str, content: dict[str, object], **fields: object
    ) -> Outbound:
        msg = Message(
            MsgType.REPLY,
            self.new_id(),
            content,
            parent=request_id,
            **fields,  # type: ignore[arg-type]
        )
        return Outbound("client", client, msg)

    def _notify_clients(self, content: dict[str, object]) -> list[Outbound]:
        """Tell every client of a change in the registry (numbered, so order is clear)."""
        self.registry_version += 1
        content = {**content, "version": self.registry_version}
        msg = Message(MsgType.NOTIFY, self.new_id(), content)
        return [Outbound("client", c, msg) for c in self.clients]

    def engine_ids(self) -> list[int]:
        return sorted(self.engines)

    def engine_of(self, identity: bytes) -> EngineRecord | None:
        """The live engine whose routing identity is ``identity``, or None."""
        engine_id = self._by_identity.get(identity)
        return None if engine_id is None else self.engines.get(engine_id)

    def _task_dispatched(self, engine_id: int, task_id: str, client: bytes, now: float) -> None:
        self.engines[engine_id].outstanding[task_id] = Pending(client, MsgType.TASK, now)

    # -- events from clients ---------------------------------------------------------------

    def client_message(self, client: bytes, msg: Message) -> list[Outbound]:
        """React to a verified message from a client."""
        self.client_seen[client] = self._clock()
        if msg.type == MsgType.CONNECT:
            self.clients.add(client)
            content = {
                "engines": self.engine_ids(),
                "version": self.registry_version,
                "hosts": [[e.id, e.host, e.direct, e.direct_key] for e in self.engines.values()],
            }
            return [self._reply(client, msg.id, content)]
        if msg.type == MsgType.QUEUE_STATUS:
            queues = [[e.id, e.queue_length()] for e in self.engines.values()]
            return [self._reply(client, msg.id, {"queues": sorted(queues)})]
        if msg.type == MsgType.MONITOR:
            return [self._reply(client, msg.id, self.monitor_report(msg.content.get("since")))]
        if msg.type == MsgType.LAUNCHER_ENDED:
            ended = self.launcher_ended(msg.content["engines"], msg.content.get("how", ""))
            return [self._reply(client, msg.id, {}), *ended]
        if msg.type == MsgType.SHUTDOWN and msg.targets is None:
            self.shutdown_requested = True
            out = [self._reply(client, msg.id, {"engines": self.engine_ids()})]
            return out + self.shutdown_engines()
        if msg.type in ENGINE_REQUESTS and msg.targets is not None:
            return self._forward_to_engines(client, msg)
        if msg.type == MsgType.TASK:
            return self.tasks.submit(client, msg) + self.tasks.dispatch()
        if msg.type == MsgType.BATCH:  # tasks that queued up in the client, sent together
            return self.tasks.submit_batch(client, msg) + self.tasks.dispatch()
        if msg.type in TASK_REQUESTS:
            return self.tasks.request(client, msg)
        log.warning("dropping %s from a client: not a request the controller takes", msg.type.name)
        return [
            self._reply(
                client,
                msg.id,
                {"error": f"{msg.type.name} is not a client request"},
                status=Status.ENGINE_ERROR,
            )
        ]

    def _forward_to_engines(self, client: bytes, msg: Message) -> list[Outbound]:
        out: list[Outbound] = []
        for target in msg.targets or ():
            engine = self.engines.get(target) if isinstance(target, int) else None
            if engine is None:
                out.append(
                    self._reply(
                        client,
                        msg.id,
                        {"error": f"engine {target} is not registered", "kind": "unregistered"},
                        engine=target if isinstance(target, int) else -1,
                        status=Status.ENGINE_ERROR,
                    )
                )
                continue
            header = msg.header
            if msg.type == MsgType.INTERRUPT and "request" not in msg.content:
                header = self._aimed_interrupt(engine, msg)
            engine.outstanding[msg.id] = Pending(client, msg.type, self._clock())
            if msg.type == MsgType.SHUTDOWN:
                self._kill_deadlines.setdefault(target, self._clock() + KILL_GRACE)
            if msg.type not in CONTROL_REQUESTS:
                self.scheduler.sent(target)
            out.append(Outbound("engine", engine.identity, header=header, buffers=msg.buffers))
        return out

    def _aimed_interrupt(self, engine: EngineRecord, msg: Message) -> bytes:
        """The header of an INTERRUPT aimed at the request ``engine`` runs now (its oldest
        outstanding one): one that arrives after that request ended interrupts nothing
        else. Such an interrupt the engine does not answer within ``KILL_GRACE`` (its I/O
        thread cannot run: C code holding the GIL) is escalated (``overdue_interrupts``)."""
        running = next(
            (r for r, p in engine.outstanding.items() if p.type not in CONTROL_REQUESTS), None
        )
        session = msg.content.get("session")
        if running is None or (session is not None and running.rpartition("-")[0] != session):
            return msg.header  # nothing of that client's runs there: the engine decides
        self._interrupt_deadlines.append((self._clock() + KILL_GRACE, engine.id, msg.id, running))
        return pack_header(dataclasses.replace(msg, content={**msg.content, "request": running}))

    def overdue_interrupts(self) -> list[EngineRecord]:
        """Engines that have not answered an interrupt within ``KILL_GRACE`` while the
        request it was aimed at still runs (each returned once): the server signals them."""
        now = self._clock()
        due: list[EngineRecord] = []
        waiting = []
        for deadline, engine_id, interrupt_id, running in self._interrupt_deadlines:
            engine = self.engines.get(engine_id)
            if engine is None or interrupt_id not in engine.outstanding:
                continue  # answered, or the engine is gone
            if deadline > now:
                waiting.append((deadline, engine_id, interrupt_id, running))
            elif running in engine.outstanding and engine not in due:
                due.append(engine)
        self._interrupt_deadlines = waiting
        return due

    def want_signal(self, engine_id: int, signum: int) -> None:
        """The server could not send ``signum`` to engine ``engine_id`` (another host): ask
        its launcher, through MONITOR's ``signal_wanted`` (the keeper reads it)."""
        if engine_id in self.engines:
            self.signal_wanted[engine_id] = (signum, self._clock())

    def launcher_ended(self, engines: list[int], how: str) -> list[Outbound]:
        """LAUNCHER_ENDED: a keeper ended engines whose kill was overdue (``want_signal``
        with SIGKILL; no other engine is touched): their kills succeed and they are
        forgotten, as ``killed``."""
        out: list[Outbound] = []
        for engine_id in engines:
            wanted = self.signal_wanted.get(engine_id)
            if wanted is not None and wanted[0] == signal.SIGKILL:
                out += self.killed(engine_id, how or "killed by its launcher")
        return out

    def overdue_kills(self) -> list[EngineRecord]:
        """Engines a client killed that have not confirmed within ``KILL_GRACE`` (each
        returned once): the server ends them itself (``killed`` then settles them)."""
        now = self._clock()
        due = [e for e, when in self._kill_deadlines.items() if when <= now]
        out = []
        for engine_id in due:
            del self._kill_deadlines[engine_id]
            engine = self.engines.get(engine_id)
            if engine is not None:
                out.append(engine)
        return out

    def killed(self, engine_id: int, how: str) -> list[Outbound]:
        """The server ended engine ``engine_id`` itself (``how``): its kills succeeded,
        everything else it had fails, and it is forgotten."""
        engine = self.engines.get(engine_id)
        if engine is None:
            return []
        out: list[Outbound] = []
        for request_id, pending in list(engine.outstanding.items()):
            if pending.type == MsgType.SHUTDOWN:
                del engine.outstanding[request_id]
                out.append(self._reply(pending.client, request_id, {}, engine=engine_id))
        return out + self.remove_engine(engine_id, how, "stopped")

    def shutdown_engines(self) -> list[Outbound]:
        """SHUTDOWN messages for every engine (the controller is stopping)."""
        msg = self._shutdown_message()
        return [Outbound("engine", e.identity, msg) for e in self.engines.values()]

    def client_gone(self, client: bytes) -> None:
        """The server could not deliver to ``client``: stop notifying it."""
        self.clients.discard(client)
        self.client_seen.pop(client, None)

    def _signals_wanted(self, now: float) -> list[list[int]]:
        """``signal_wanted`` as [engine, signum] rows, forgetting those over 30 s old."""
        for engine_id, (_signum, since) in list(self.signal_wanted.items()):
            if now - since > 30.0:
                del self.signal_wanted[engine_id]
        return [[engine_id, signum] for engine_id, (signum, _) in self.signal_wanted.items()]

    def monitor_report(self, since: object) -> dict[str, object]:
        """The MONITOR reply: engines (id, hostname, pid, queue length, seconds since last
        heard of), clients (session, seconds since their latest request), task counts, store
        size, and the activity after ``since``."""
        now = self._clock()
        engines = [
            [e.id, e.hostname, e.pid, e.queue_length(), round(now - e.last_seen, 3)]
            for e in self.engines.values()
        ]
        return {
            "engine_rows": sorted(engines),
            "launch": [[e.id, e.launch] for e in self.engines.values() if e.launch],
            "clients": [
                [c.decode("utf-8", "replace")[:100], round(now - self.client_seen.get(c, now), 3)]
                for c in sorted(self.clients)[:1000]
            ],
            "tasks": self.tasks.scheduler.counts(),
            "store": self.tasks.store.stats(),
            **self.activity.report(since if type(since) is int else 0),
            "signal_wanted": self._signals_wanted(now),
        }

    # -- events from engines ---------------------------------------------------------------

    def engine_message(self, identity: bytes, msg: Message) -> list[Outbound]:
        """React to a verified message from an engine."""
        now = self._clock()
        if msg.type == MsgType.REGISTER:
            return self._register(identity, msg, now)
        engine_id = self._by_identity.get(identity)
        if engine_id is None:
            return self._unknown_engine(identity)
        engine = self.engines[engine_id]
        engine.last_seen = now
        engine.last_pong = self.ping_seq
        if msg.type == MsgType.DIRECT:
            return self._direct(engine, msg, now)
        if msg.type == MsgType.BATCH:  # task replies that queued up in the engine
            return self._engine_batch(engine, msg, now)
        if msg.type == MsgType.REPLY:
            pending = engine.outstanding.pop(msg.parent, None)  # parent: a str, wire checks
            if pending is not None and pending.type not in CONTROL_REQUESTS:
                self.scheduler.answered(engine_id)
        elif msg.type == MsgType.STREAM:
            pending = engine.outstanding.get(msg.parent)
        else:
            return []
        if pending is None:
            return []  # answer to a request already failed (engine was thought dead)
        if msg.type == MsgType.REPLY:
            self.activity.finished(
                engine_id, pending.type, msg.parent, now - pending.since, msg.status, msg.content
            )
        if pending.type == MsgType.TASK:
            if msg.type == MsgType.STREAM:
                return []  # task output arrives with the task's result
            return self.tasks.on_reply(engine_id, msg, set(self.engines)) + self.tasks.dispatch()
        out = [Outbound("client", pending.client, header=msg.header, buffers=msg.buffers)]
        if pending.type == MsgType.SHUTDOWN and msg.type == MsgType.REPLY:
            # The engine confirmed a kill: forget it now, not a heartbeat timeout later,
            # so 'all' stops including it at once.
            out += self.remove_engine(engine_id, "it was shut down by a client", "stopped")
        if msg.type == MsgType.REPLY:
            out += self.tasks.dispatch()  # the engine has room for a task again
        return out

    def _engine_batch(self, engine: EngineRecord, batch: Message, now: float) -> list[Outbound]:
        """An engine's BATCH of replies: each settled as a lone REPLY would be, then the
        results for each client sent on as one BATCH and the freed room filled at once."""
        entries, problems = unbatch(batch)
        for problem in problems:
            log.warning("dropped a reply of engine %d's batch: %s", engine.id, problem)
        out: list[Outbound] = []
        live = set(self.engines)
        engine_id, outstanding, finished = engine.id, engine.outstanding, self.activity.finished
        answered, on_reply = self.scheduler.answered, self.tasks.on_reply
        wall = time.time()  # one reading for the lot: they arrived together
        for reply in entries:
            if reply.type is not MsgType.REPLY:
                continue  # engines batch only their replies
            pending = outstanding.pop(reply.parent, None)
            if pending is None:
                continue  # answer to a request already failed (engine was thought dead)
            kind = pending.type
            if kind is MsgType.TASK or kind not in CONTROL_REQUESTS:  # a task: the hot path
                answered(engine_id)
            took = now - pending.since
            finished(engine_id, kind, reply.parent, took, reply.status, reply.content, wall)
            if kind is MsgType.TASK:
                out += on_reply(engine_id, reply, live)
            else:
                out.append(
                    Outbound("client", pending.client, header=reply.header, buffers=reply.buffers)
                )
        return self.tasks.batch_for_clients(out) + self.tasks.dispatch()

    def _direct(self, engine: EngineRecord, msg: Message, now: float) -> list[Outbound]:
        """A request a client on the engine's host sent it directly (issue 13: the blocking
        call's short way): "queued" puts it in the engine's queue as a forwarded request
        would be (queue_status, interrupts aimed at it, failure if the engine dies, the
        scheduler's load); "done" takes it out (the client has its reply already). The two
        come on the engine's two sockets, so "done" may come first: then it is remembered
        until its "queued" arrives, and the request is never counted."""
        if msg.content.get("state") == "ran":
            self._direct_ran(engine, msg.content.get("ran", []))
            return []
        request_id = msg.parent
        if not request_id:
            return []
        if msg.content.get("state") == "queued":
            if request_id in engine.done_early:
                engine.done_early.discard(request_id)
                return []
            kind = msg.content.get("kind")
            msg_type = MsgType(kind) if kind in _DIRECT_KINDS else MsgType.EXECUTE
            client = request_id.rpartition("-")[0].encode()  # ids are session-counter
            engine.outstanding[request_id] = Pending(client, msg_type, now)
            self.scheduler.sent(engine.id)
            return []
        pending = engine.outstanding.pop(request_id, None)
        if pending is None:
            if len(engine.done_early) < _DONE_EARLY_MAX:
                engine.done_early.add(request_id)
            return []
        self.scheduler.answered(engine.id)
        self.activity.finished(
            engine.id, pending.type, request_id, now - pending.since, msg.status, msg.content
        )
        return self.tasks.dispatch()  # the engine has room for a task again

    def _direct_ran(self, engine: EngineRecord, ran: list[list[object]]) -> None:
        """Direct requests answered before they were announced (the quick ones), reported
        in bulk: into the activity history, as replies passing through would be."""
        for entry in ran:
            if not (isinstance(entry, list) and len(entry) == 8 and isinstance(entry[0], str)):
                continue
            request_id = str(entry[0])
            kind, status, started, completed, ename, evalue, traceback = entry[1:]
            msg_type = MsgType(kind) if kind in _DIRECT_KINDS else MsgType.EXECUTE
            content = {"started": started, "completed": completed}
            if status == Status.ERROR:
                content.update(ename=ename, evalue=evalue, traceback=traceback)
            took = 0.0  # the engine's own times say (Activity takes them from content)
            self.activity.finished(
                engine.id, msg_type, request_id, took, status if type(status) is int else 0, content
            )

    def _register(self, identity: bytes, msg: Message, now: float) -> list[Outbound]:
        engine_id = self._by_identity.get(identity)
        new = engine_id is None
        if new and identity in self._stopped:
            # stopped on purpose, registering again on its way out: it must exit, not
            # come back as a new engine that 'all' would include
            log.info("engine %d was stopped: telling it again to exit", self._stopped[identity])
            return [Outbound("engine", identity, self._shutdown_message())]
        if new and identity in self._declared_dead and msg.content.get("rejoin") is False:
            # an engine back from the dead that would rather exit than join as a new one
            return [Outbound("engine", identity, self._ask_to_register(identity))]
        if engine_id is None:
            engine_id = self._engine_id_for(msg.content.get("id"))
            self._by_identity[identity] = engine_id
            self._declared_dead.pop(identity, None)
            pid = msg.content.get("pid")
            self.engines[engine_id] = EngineRecord(
                engine_id,
                identity,
                str(msg.content.get("hostname", "?"))[:256],
                pid if type(pid) is int else 0,
                now,
                self.ping_seq,
                str(msg.content.get("host", ""))[:300],
                launch=_launch_of(msg.content.get("launch")),
                direct=_short_str(msg.content.get("direct"), 300),
                direct_key=_short_str(msg.content.get("direct_key"), 128),
            )
            self.scheduler.engine_added(engine_id)
            self._retire_if_ending(self.engines[engine_id])
            log.info(
                "engine %d registered (pid %s on %s)",
                engine_id,
                msg.content.get("pid"),
                msg.content.get("hostname"),
            )
        reply = Message(
            MsgType.REPLY,
            self.new_id(),
            {"id": engine_id, **self.heartbeat_info},
            parent=msg.id,
            engine=engine_id,
        )
        out = [Outbound("engine", identity, reply)]
        if new:  # registering again (a lost reply) changes nothing the clients know
            host = self.engines[engine_id].host
            news: dict[str, object] = {"event": "registered", "engine": engine_id, "host": host}
            record = self.engines[engine_id]
            if record.direct:  # clients on its host may call it directly
                news.update(direct=record.direct, direct_key=record.direct_key)
            out += self._notify_clients(news)
        return out + self.tasks.dispatch()

    def _unknown_engine(self, identity: bytes) -> list[Outbound]:
        """A message from an engine the hub does not know: one stopped on purpose is let be
        (it is exiting), any other is asked to register (the controller restarted, or it
        was declared dead)."""
        if identity in self._stopped:
            return []
        log.info("message from an unregistered engine; asking it to register")
        return [Outbound("engine", identity, self._ask_to_register(identity))]

    def _shutdown_message(self) -> Message:
        """A SHUTDOWN that expects no reply (no client waits on it)."""
        return Message(MsgType.SHUTDOWN, self.new_id(), targets=[])

    def _ask_to_register(self, identity: bytes) -> Message:
        """The NOTIFY that asks an unknown engine to register (saying if it was declared
        dead: then its queued requests must not run, their clients were told they failed)."""
        content: NotifyContent = {"event": "register"}
        if identity in self._declared_dead:
            content["reason"] = "declared dead"
        return Message(MsgType.NOTIFY, self.new_id(), dict(content))

    def id_ledger(self) -> tuple[tuple[int, int, int], int, list[int]]:
        """What a controller taking this one's place needs to never give an id twice: a
        cheap key that changes with it, the next new id, and the ids retired for good
        (given out, held by no live engine). See ``controller/_idledger.py``."""
        key = (self._next_engine_id, len(self._given_ids), len(self.engines))
        return key, self._next_engine_id, sorted(self._given_ids.difference(self.engines))

    def restore_ids(self, next_id: int, retired: list[int]) -> None:
        """Take over a crashed controller's ledger: new engines get ids from ``next_id``
        on; an engine coming back may reclaim its id unless it is ``retired``."""
        self._next_engine_id = max(self._next_engine_id, next_id)
        self._given_ids.update(retired)

    def _engine_id_for(self, wanted: object) -> int:
        """A new engine's id: the one it asks for (it had it before this controller
        restarted) when no live engine has it, else the next one never given out."""
        if (
            type(wanted) is int
            and 0 <= wanted < 1_000_000
            and wanted not in self.engines
            and wanted not in self._given_ids  # ids are never reused (a dead engine's back)
        ):
            engine_id = wanted
        else:
            engine_id = self._next_engine_id
            while engine_id in self.engines:
                engine_id += 1
        self._next_engine_id = max(self._next_engine_id, engine_id + 1)
        self._given_ids.add(engine_id)
        return engine_id

    def beat_period(self) -> float:
        """Seconds between pings now: ``heartbeat_period``, stretched for big clusters.

        A ping costs a TCP segment to and from every engine (1,000 engines pinged every
        0.5 s cost the controller 5-7 % of a core, mostly in the kernel), so past
        ``PINGS_PER_SECOND`` engine pings a second the period grows with the engines, up to a
        third of ``heartbeat_timeout``: an engine's death is still seen within the timeout.
        """
        stretched = min(self.heartbeat_timeout / 3, len(self.engines) / PINGS_PER_SECOND)
        return max(self.heartbeat_period, stretched)

    @property
    def misses_allowed(self) -> int:
        """Pings *that were sent* an engine must miss, as well as stay silent for
        ``heartbeat_timeout``, to be declared dead: if the controller itself stalls (a huge
        message, a slow disk) it sends no pings, and no engine is blamed for that."""
        return max(2, round(self.heartbeat_timeout / self.beat_period()))

    def next_ping(self) -> bytes:
        """The payload of the next ping: its sequence number."""
        self.ping_seq += 1
        return str(self.ping_seq).encode()

    def heartbeat(self, identity: bytes, payload: bytes = b"") -> list[Outbound]:
        """A pong (the echo of ping ``payload``) came back from ``identity``."""
        engine_id = self._by_identity.get(identity)
        if engine_id is None:
            return self._unknown_engine(identity)
        engine = self.engines[engine_id]
        engine.last_seen = self._clock()
        if payload.isdigit() and len(payload) < 20:
            engine.last_pong = max(engine.last_pong, min(int(payload), self.ping_seq))
        return []

    # -- time ------------------------------------------------------------------------------

    def check_liveness(self) -> list[Outbound]:
        """Declare silent engines dead and fail everything they had."""
        now = self._clock()
        out: list[Outbound] = []
        misses_allowed = self.misses_allowed
        for engine in list(self.engines.values()):
            silent = now - engine.last_seen
            missed = self.ping_seq - engine.last_pong
            if silent > self.heartbeat_timeout and missed > misses_allowed:
                why = f"no heartbeat for {silent:.1f} s{_job_ended(engine.launch)}"
                out += self.remove_engine(engine.id, why)
        for engine in list(self.engines.values()):
            self._retire_if_ending(engine)
            if engine.retired and not engine.outstanding:
                out += self._leave_before_walltime(engine)
        return out + self.tasks.rebalance(now)

    def _leave_before_walltime(self, engine: EngineRecord) -> list[Outbound]:
        """Stop an idle retired engine once half the margin (at most 30 s) is left of its
        job, so it leaves cleanly (event "stopped") before the scheduler kills it."""
        end = engine.launch.get("end_time")
        left = end - time.time() if isinstance(end, (int, float)) else 1e9
        if left > min(self.walltime_margin / 2, 30.0):
            return []
        bye = Message(MsgType.SHUTDOWN, self.new_id(), targets=[])  # no reply wanted
        why = f"its job's walltime ends in {max(0.0, left):.0f} s"
        return [
            Outbound("engine", engine.identity, bye),
            *self.remove_engine(engine.id, why, "stopped"),
        ]

    def _retire_if_ending(self, engine: EngineRecord) -> None:
        """Give no more tasks to an engine whose job's walltime ends within the margin."""
        end = engine.launch.get("end_time")
        if engine.retired or not isinstance(end, (int, float)):
            return
        if end <= time.time() + self.walltime_margin:
            engine.retired = True
            self.scheduler.retire(engine.id)
            log.info(
                "engine %d takes no new tasks: its job's walltime ends in %.0f s",
                engine.id,
                end - time.time(),
            )

    def remove_engine(self, engine_id: int, why: str, event: str = "died") -> list[Outbound]:
        """Forget engine ``engine_id``, fail its outstanding requests, and tell the clients.

        ``event`` is ``"died"`` (it stopped heartbeating) or ``"stopped"`` (a client killed it).
        """
        engine = self.engines.pop(engine_id)
        del self._by_identity[engine.identity]
        self._kill_deadlines.pop(engine_id, None)
        self.signal_wanted.pop(engine_id, None)
        gone = self._declared_dead if event == "died" else self._stopped
        gone[engine.identity] = engine_id
        if len(gone) > _DEAD_REMEMBERED:
            gone.popitem(last=False)
        log.log(
            logging.WARNING if event == "died" else logging.INFO,
            "engine %d (pid %d on %s) %s: %s; failing %d requests",
            engine_id,
            engine.pid,
            engine.hostname,
            event,
            why,
            len(engine.outstanding),
        )
        text = f"engine {engine_id} (pid {engine.pid} on {engine.hostname}) {event}: {why}"
        self.activity.engine_gone(engine_id, engine.hostname, engine.pid, event, why)
        out: list[Outbound] = []
        for request_id, pending in engine.outstanding.items():
            if pending.type == MsgType.TASK:
                out += self.tasks.on_engine_lost(engine_id, request_id, f"{event}: {why}")
                continue
            out.append(
                self._reply(
                    pending.client,
                    request_id,
                    {"error": text, "kind": event},
                    engine=engine_id,
                    status=Status.ENGINE_ERROR,
                )
            )
        out += self.tasks.engines_changed(set(self.engines), gone=engine_id)
        out += self.tasks.dispatch()
        return out + self._notify_clients({"event": event, "engine": engine_id})
