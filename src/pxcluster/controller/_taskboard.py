"""Controller layer: the Task interface, between clients, the scheduler and the store.

The board takes TASK messages from clients, asks the scheduler where to run them, sends
them to engines, and settles every outcome exactly once:

* an engine's OK reply: recorded, forwarded to the submitting client, dependents released;
* an engine's ERROR reply: retried elsewhere while ``retries`` last, else final;
* REFUSED (the task's ``depend`` said no): tried on another engine; failed with
  UnmetDependency once every live engine refused;
* the engine died: retried while ``retries`` last, else failed with EngineDied;
* an abort: dropped from the queue, or interrupted where it runs, and reported ABORTED.

A finished task's result message (header + frames) goes into the record store, where any
client can fetch it by id with TASK_RESULT; clients waiting on an unfinished task are
answered when it finishes.

Batches (``wire/_batch.py``): a client's BATCH of tasks is taken entry by entry, exactly as
lone TASKs (``submit_batch``); tasks that one ``dispatch`` gives the same engine go to it as
one BATCH (a lone one goes as it is: no latency added), and results that one message from an
engine settles for the same client go back as one BATCH (``batch_for_clients``). Every task
stays its own record throughout: sent, answered, retried, withdrawn, aborted and settled
one by one, whatever message carried it.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

from pxcluster._buffers import Buffer
from pxcluster.controller._outbound import Outbound
from pxcluster.controller._scheduler import Scheduler, Task, TaskState
from pxcluster.controller._store import RecordStore, TaskRecord
from pxcluster.wire import (
    CONTROL_REQUESTS,
    MAX_ENTRIES,
    Message,
    MsgType,
    Status,
    batchable,
    pack_batch,
    pack_header,
    unbatch,
    unpack_header,
)

log = logging.getLogger("pxcluster.controller")


class SentRequest(Protocol):
    """What the board reads of a request outstanding on an engine."""

    @property
    def type(self) -> MsgType: ...

    @property
    def since(self) -> float: ...


class RegisteredEngine(Protocol):
    """What the board needs to know of a registered engine."""

    identity: bytes

    @property
    def outstanding(self) -> Mapping[str, SentRequest]: ...

    def queue_length(self) -> int: ...


#: A message of a batch: its encoded header and its buffers.
Entry = tuple[bytes, Sequence[Buffer]]

#: A task waits at most about this long (plus a heartbeat period) behind a longer one on a
#: busy engine while another engine is idle: then it is withdrawn and sent there.
STEAL_AFTER = 0.2


class TaskBoard:
    """Task traffic of one controller; see the module docstring."""

    def __init__(
        self,
        scheduler: Scheduler,
        store: RecordStore,
        engines: Mapping[int, RegisteredEngine],
        new_id: Callable[[], str],
        on_dispatch: Callable[[int, str, bytes, float], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.scheduler = scheduler
        self.store = store
        self._engines = engines  # the hub's live registry, read only here
        self._new_id = new_id
        self._on_dispatch = on_dispatch  # the hub records the task as outstanding there
        self._clock = clock  # the hub's: when a task was sent (its ``Pending.since``)
        self._waiters: dict[str, list[tuple[bytes, str]]] = collections.defaultdict(list)
        self._wire: dict[str, str] = {}  # wire id of a retry -> its task id

    # -- from clients ------------------------------------------------------------------------

    def submit(self, client: bytes, msg: Message) -> list[Outbound]:
        """A client's TASK: queue it, or fail it at once if it can never run."""
        spec = msg.content
        retries = spec.get("retries", 0)
        after = spec.get("after", [])
        # A finished task's id coming again is a replay, which the wire's guard refuses; only
        # a clash with a task in flight is checked here (no store lookup per submission).
        if msg.id in self.scheduler.tasks:
            return [
                self._reply(
                    client,
                    msg.id,
                    {"error": f"task id {msg.id} is already taken", "kind": "duplicate"},
                )
            ]
        if (
            type(retries) is not int
            or retries < 0
            or type(after) is not list
            or (after and not all(type(a) is str for a in after))
        ):
            return [
                self._reply(
                    client,
                    msg.id,
                    {
                        "error": "retries must be a count and after a list of task ids",
                        "kind": "invalid",
                    },
                )
            ]
        task = Task(
            msg.id,
            client,
            msg.session,
            msg.header,
            msg.buffers,
            retries,
            after,
            msg.ts or time.time(),
        )
        pending: set[str] = set()
        for dep in after:  # mostly none: the loop costs nothing then
            if dep in self.scheduler.tasks:
                pending.add(dep)
                continue
            record = self.store.get(dep)
            if record is None:
                return self._settle_controller(
                    task, f"task {dep!r} in after= is not known", "unmet", Status.ERROR
                )
            if record.status != Status.OK:
                return self._settle_controller(
                    task, f"task {dep!r} in after= failed", "unmet", Status.ERROR
                )
        self.scheduler.add(task, pending)
        return []

    def submit_batch(self, client: bytes, batch: Message) -> list[Outbound]:
        """A client's BATCH of tasks: each entry is submitted as a lone TASK would be; an
        entry that is not a fit TASK is answered with an error (its sender's call fails)."""
        entries, problems = unbatch(batch)
        out: list[Outbound] = []
        for problem in problems:
            request_id = getattr(problem, "request_id", "")
            log.warning("refused a task of a batch: %s", problem)
            if request_id:
                out.append(
                    self._reply(client, request_id, {"error": str(problem), "kind": "invalid"})
                )
        for entry in entries:
            if entry.type != MsgType.TASK:
                text = f"{entry.type.name} is not a request a client may batch"
                out.append(self._reply(client, entry.id, {"error": text, "kind": "invalid"}))
                continue
            out += self.submit(client, entry)
        return out

    def request(self, client: bytes, msg: Message) -> list[Outbound]:
        """TASK_RESULT, TASK_ABORT, TASK_STATUS or TASK_CLEAR from a client."""
        if msg.type == MsgType.TASK_STATUS:
            counts: dict[str, Any] = {**self.scheduler.counts(), **self.store.stats()}
            counts["running"] = sum(1 for e in self._engines.values() if _runs_a_task(e))
            return [self._reply(client, msg.id, counts)]
        if msg.type == MsgType.TASK_CLEAR:
            cleared = self.store.clear_session(str(msg.content.get("session", msg.session)))
            return [self._reply(client, msg.id, {"cleared": cleared})]
        task_id = msg.content.get("id")
        if not isinstance(task_id, str):
            return [self._reply(client, msg.id, {"state": "unknown", "id": repr(task_id)})]
        if msg.type == MsgType.TASK_ABORT:
            return self._abort(client, msg.id, task_id)
        return self._result(client, msg.id, task_id, bool(msg.content.get("block")))

    def _result(self, client: bytes, request_id: str, task_id: str, block: bool) -> list[Outbound]:
        record = self.store.get(task_id)
        if record is not None:
            return [self._record_reply(client, request_id, record)]
        if task_id not in self.scheduler.tasks:
            content: dict[str, Any] = {"state": "unknown", "id": task_id}
            if task_id in self.store.lost:  # finished, but the disk failed too long to keep it
                content.update(not_stored=True, store_error=self.store.error or "unknown")
            return [self._reply(client, request_id, content)]
        if block:
            self._waiters[task_id].append((client, request_id))
            return []
        state = self.scheduler.tasks[task_id].state.value
        return [self._reply(client, request_id, {"state": state, "id": task_id})]

    def _abort(self, client: bytes, request_id: str, task_id: str) -> list[Outbound]:
        task = self.scheduler.tasks.get(task_id)
        if task is None:
            state = "done" if self.store.get(task_id) is not None else "unknown"
            return [self._reply(client, request_id, {"state": state, "id": task_id})]
        if task.state != TaskState.RUNNING:
            out = self._settle_controller(task, "aborted before it ran", "aborted", Status.ABORTED)
            return [*out, self._reply(client, request_id, {"state": "aborted", "id": task_id})]
        task.abort_requested = True
        out = [self._reply(client, request_id, {"state": "aborting", "id": task_id})]
        engine = self._engines.get(task.engine)
        if engine is not None:
            interrupt = Message(
                MsgType.INTERRUPT, self._new_id(), {"request": task.wire_id}, targets=[task.engine]
            )
            out.append(Outbound("engine", engine.identity, interrupt))
        return out

    # -- from engines ------------------------------------------------------------------------

    def _running_task(self, wire_id: str, engine: int) -> Task | None:
        task = self.scheduler.tasks.get(self._wire.pop(wire_id, wire_id))
        if task is None or task.state != TaskState.RUNNING or task.engine != engine:
            return None  # settled already (e.g. the engine was declared dead meanwhile)
        return task

    def on_reply(self, engine: int, msg: Message, live: set[int]) -> list[Outbound]:
        """An engine's reply to a task it was given."""
        task = self._running_task(msg.parent, engine)
        if task is None:
            return []
        if msg.status == Status.ABORTED and msg.content.get("withdrawn"):
            if task.abort_requested:
                return self._settle_controller(
                    task, "aborted before it ran", "aborted", Status.ABORTED
                )
            self.scheduler.requeue(task)  # taken back unstarted: not a retry
            return []
        if msg.status == Status.REFUSED:
            if self.scheduler.refused(task, engine, live):
                return self._settle_controller(
                    task,
                    f"no engine accepted the task (refused by {sorted(task.refused_by)})",
                    "unmet",
                    Status.ERROR,
                )
            return []
        started, completed = msg.content.get("started"), msg.content.get("completed")
        if isinstance(started, float) and isinstance(completed, float):
            self.scheduler.ran(engine, completed - started)
        failed = msg.status != Status.OK
        if task.abort_requested and failed:
            return self._settle_controller(task, "aborted while it ran", "aborted", Status.ABORTED)
        if failed and task.retries > 0 and msg.status == Status.ERROR:
            task.retries -= 1
            log.info(
                "task %s failed on engine %d; retrying (%d left)", task.id, engine, task.retries
            )
            self.scheduler.requeue(task)
            return []
        return self._settle(task, msg.status, msg.header, msg.buffers, engine)

    def on_engine_lost(self, engine: int, wire_id: str, why: str) -> list[Outbound]:
        """The engine running a task died: retry it elsewhere, or fail it."""
        task = self._running_task(wire_id, engine)
        if task is None:
            return []
        if task.abort_requested:
            return self._settle_controller(
                task, "aborted (its engine died)", "aborted", Status.ABORTED
            )
        if task.retries > 0:
            task.retries -= 1
            log.info(
                "engine %d lost task %s; resubmitting (%d retries left)",
                engine,
                task.id,
                task.retries,
            )
            self.scheduler.requeue(task)
            return []
        return self._settle_controller(
            task, f"engine {engine} {why}", "died", Status.ENGINE_ERROR, engine
        )

    def engines_changed(self, live: set[int], gone: int | None = None) -> list[Outbound]:
        """After an engine left: fail tasks that every remaining engine refused."""
        if gone is not None:
            self.scheduler.engine_gone(gone)
        out: list[Outbound] = []
        for task in self.scheduler.unplaceable(live):
            out += self._settle_controller(
                task,
                f"no engine accepted the task (refused by {sorted(task.refused_by)})",
                "unmet",
                Status.ERROR,
            )
        return out

    def dispatch(self) -> list[Outbound]:
        """Send queued tasks to engines with room: the tasks one engine gets now go to it
        as one BATCH (several) or as a lone TASK (one, or a big one)."""
        if not self.scheduler.tasks:
            return []
        by_engine: dict[int, list[Task]] = {}
        on_dispatch, now = self._on_dispatch, self._clock()
        for engine_id, task in self.scheduler.assign():  # no scan of all engines per task
            task.sends += 1
            if task.sends > 1:
                self._wire[task.wire_id] = task.id
            on_dispatch(engine_id, task.wire_id, task.client, now)
            by_engine.setdefault(engine_id, []).append(task)
        out: list[Outbound] = []
        for engine_id, tasks in by_engine.items():
            identity = self._engines[engine_id].identity
            entries: list[Entry] = []
            several = len(tasks) > 1
            for task in tasks:
                header = task.header
                if task.sends > 1:
                    header = _with_fields(header, task.buffers, id=task.wire_id)
                if several and batchable(task.buffers):
                    entries.append((header, task.buffers))
                    continue
                # a big one goes alone, after those before it: the engine runs them in the
                # order of ``outstanding`` (what interrupts and work stealing rely on)
                out += self._batches("engine", identity, entries)
                entries = []
                out.append(Outbound("engine", identity, header=header, buffers=task.buffers))
            out += self._batches("engine", identity, entries)
        return out

    def _batches(
        self, to: Literal["client", "engine"], identity: bytes, entries: list[Entry]
    ) -> list[Outbound]:
        """``entries`` (encoded headers and their buffers) as BATCH messages to one peer
        (at most ``MAX_ENTRIES`` each), or as a lone message when there is one."""
        if not entries:
            return []
        out: list[Outbound] = []
        for start in range(0, len(entries), MAX_ENTRIES):
            group = entries[start : start + MAX_ENTRIES]
            if len(group) == 1:
                header, buffers = group[0]
            else:
                header, buffers = pack_batch(self._new_id(), group)
            out.append(Outbound(to, identity, header=header, buffers=buffers))
        return out

    def batch_for_clients(self, outbound: list[Outbound]) -> list[Outbound]:
        """``outbound`` with the forwarded results to each client gathered into BATCHes
        (what one engine message settled); everything else is left as it is and in order."""
        kept: list[Outbound] = []
        by_client: dict[bytes, list[Entry]] = {}
        for out in outbound:
            if out.to == "client" and out.msg is None and batchable(out.buffers):
                by_client.setdefault(out.identity, []).append((out.header, out.buffers))
            else:
                kept.append(out)
        for client, entries in by_client.items():
            kept += self._batches("client", client, entries)
        return kept

    def rebalance(self, now: float) -> list[Outbound]:
        """Withdraw tasks waiting behind long requests on busy engines while others idle.

        Prefetch keeps engines fed between messages, but a task sent to an engine that then
        runs something long would wait for it; if another engine is idle and nothing is
        queued, the task is taken back (only if it has not started) and sent again.
        """
        if self.scheduler.queued:
            return []
        # what the idle engines can take
        load = self.scheduler.load  # counted as requests come and go: no scan per engine
        room = sum(self.scheduler.limit(e) for e in self._engines if load(e) == 0)
        out: list[Outbound] = []
        for engine_id, engine in self._engines.items():
            if room <= 0:
                break
            if load(engine_id) < 2:
                continue  # nothing waits behind its running request
            sent = list(engine.outstanding.items())
            if len(sent) < 2 or now - sent[0][1].since < STEAL_AFTER:
                continue
            for wire_id, request in reversed(sent[1:]):
                task = self.scheduler.tasks.get(self._wire.get(wire_id, wire_id))
                if request.type != MsgType.TASK or task is None or task.withdrawing:
                    continue
                task.withdrawing = True
                withdraw = Message(
                    MsgType.INTERRUPT,
                    self._new_id(),
                    {"request": wire_id, "withdraw": True},
                    targets=[engine_id],
                )
                out.append(Outbound("engine", engine.identity, withdraw))
                room -= 1
                if room <= 0:
                    break
        return out

    # -- settling ----------------------------------------------------------------------------

    def _settle_controller(
        self, task: Task, text: str, kind: str, status: Status, engine: int = -1
    ) -> list[Outbound]:
        """Finish ``task`` with an outcome the controller decided (no engine reply)."""
        msg = Message(
            MsgType.REPLY,
            self._new_id(),
            {"error": f"task {task.id}: {text}", "kind": kind},
            parent=task.id,
            engine=engine,
            status=status,
            ts=time.time(),
        )
        return self._settle(task, status, pack_header(msg), (), engine)

    def _settle(
        self, task: Task, status: Status, header: bytes, buffers: Sequence[Buffer], engine: int
    ) -> list[Outbound]:
        self.scheduler.finish(task.id)
        if task.sends > 1 and engine >= 0 and header is not task.header:
            # an engine's reply to a re-send names the re-send's id: name the task instead
            header = _with_fields(header, buffers, parent=task.id)
        record = self.store.make_record(
            task.id,
            task.session,
            engine,
            task.submitted,
            time.time(),
            int(status),
            header,
            buffers,
        )
        self.store.add(record)
        out = [Outbound("client", task.client, None, header, buffers)]
        if self._waiters:
            for client, request_id in self._waiters.pop(task.id, ()):
                out.append(self._record_reply(client, request_id, record))
        for doomed in self.scheduler.dependency_done(task.id, status == Status.OK):
            out += self._settle_controller(
                doomed, f"task {task.id!r} in after= failed", "unmet", Status.ERROR
            )
        return out

    # -- replies -----------------------------------------------------------------------------

    def _reply(
        self, client: bytes, parent: str, content: dict[str, Any], buffers: Sequence[Buffer] = ()
    ) -> Outbound:
        msg = Message(MsgType.REPLY, self._new_id(), content, buffers, parent=parent)
        return Outbound("client", client, msg)

    def _record_reply(self, client: bytes, parent: str, record: TaskRecord) -> Outbound:
        """A TASK_RESULT answer: the stored result message, nested in the buffers."""
        content: dict[str, Any] = {"state": "done", "id": record.id}
        if record.frames is None:
            content["dropped"] = True  # the result was over the store's size cap
        return self._reply(client, parent, content, [record.header, *(record.frames or ())])


def _with_fields(header: bytes, buffers: Sequence[Buffer], **fields: Any) -> bytes:
    """``header`` re-packed with some fields replaced (only on retries: rare)."""
    msg = unpack_header(header, buffers)
    return pack_header(dataclasses.replace(msg, **fields))


def _runs_a_task(engine: RegisteredEngine) -> bool:
    """True if the request at the head of ``engine``'s queue is a task: engines run their
    requests in the order they were sent, so that task is the one running there now (or,
    on an engine that was idle, on its way to it). No message per task is needed to know
    it, which keeps the task hot path as it is."""
    for request in engine.outstanding.values():
        if request.type not in CONTROL_REQUESTS:
            return request.type == MsgType.TASK
    return False
