"""Controller layer: the load-balancing policy for anonymous tasks (pure, no messages).

Theory of operation
-------------------
States of a task the scheduler holds::

    WAITING ──(every ``after`` task succeeded)──> QUEUED ──(assigned)──> RUNNING
       │                                            ▲                       │
       └──(an ``after`` task failed)──> failed      └──(retry / refused)────┘

A task leaves the scheduler when it finishes (the board records it); the scheduler only
keeps unfinished ones, so its memory is bounded by the work in flight.

Assignment: the oldest queued task goes to the least-loaded live engine whose load is below
its prefetch and that has not refused it. The load counts every request outstanding on the
engine (MultiEngine work too: the hub reports those with ``sent`` and ``answered``), so the
prefetch bounds how much can wait behind a long task: with the default of 2, an engine
holds the task it runs and at most one more. An engine whose recent tasks ran under
``SHORT_TASK_S`` on average, ``SHORT_STREAK`` in a row, gets ``short_prefetch`` (32 by
default) instead: a deeper queue then costs at most tens of milliseconds of imbalance, and
tasks and replies go in batches while the engine works (see ``TaskBoard.dispatch``). One
task over ``LONG_TASK_S`` puts the engine back to ``prefetch`` at once (a few milliseconds'
hiccup only weighs in the average), and work stealing takes back what waits behind it.

Cost per task does not grow with the number of engines: engines with room sit in buckets by
load (``_room[load]``, a dict used as an ordered set), so the least-loaded one is the first
of the lowest non-empty bucket (at most ``short_prefetch`` buckets to look at), and a load
change moves one engine between two buckets. Within a bucket engines take turns (one that
gets a task goes to the end of the next bucket). Only a task that refused engines (``depend``)
may look further into a bucket.

Invariants: a task is in exactly one of ``_queue`` (QUEUED), ``_waiting_on`` (WAITING) or
running on one engine; ``tasks`` holds all of them by id. An engine is in ``_loads`` from
``engine_added`` to ``engine_gone``, and in ``_room[_loads[e]]`` exactly when its load is
below its limit.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
from collections.abc import Sequence

from pxcluster._buffers import Buffer


class TaskState(enum.Enum):
    WAITING = "waiting"
    QUEUED = "queued"
    RUNNING = "running"


@dataclasses.dataclass(eq=False, slots=True)
class Task:
    """A task as the controller holds it: its routing facts and its untouched payload
    (slots: one is made per task, and its fields are read and set on the hot path)."""

    id: str
    client: bytes
    session: str
    header: bytes
    buffers: Sequence[Buffer]
    retries: int
    after: list[str]
    submitted: float
    state: TaskState = TaskState.QUEUED
    engine: int = -1
    refused_by: set[int] = dataclasses.field(default_factory=set)
    abort_requested: bool = False
    withdrawing: bool = False  # asked its engine to hand it back unstarted
    unmet: set[str] = dataclasses.field(default_factory=set)
    sends: int = 0  # how many times it was sent to an engine (retries and refusals count)

    @property
    def wire_id(self) -> str:
        """The message id of the latest send: receivers drop a repeated id as a replay, so
        each send after the first travels under a new one."""
        return self.id if self.sends <= 1 else f"{self.id}~{self.sends - 1}"


#: An engine whose recent tasks ran less than this on average (seconds) runs short tasks.
SHORT_TASK_S = 0.001
#: After this many short tasks in a row, an engine gets the short-task prefetch (few: until
#: then it takes tasks a round trip at a time while the others may already hold 32).
SHORT_STREAK = 8
#: One task that ran this long puts its engine back to the plain prefetch at once. A task
#: between SHORT_TASK_S and this only weighs in the engine's recent average: on a loaded
#: machine a tiny task is now and then descheduled for a few milliseconds, and one such
#: hiccup must not cost the engine its deep queue (measured: it did, every few hundred
#: tasks, and the engines then starved between round trips).
LONG_TASK_S = 0.02
#: Weight of the latest task in an engine's recent average duration.
_RECENT_WEIGHT = 1 / 8


class Scheduler:
    """Queue, dependencies and engine choice for tasks; see the module docstring."""

    def __init__(self, prefetch: int = 2, short_prefetch: int | None = None) -> None:
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        self.prefetch = prefetch
        self.short_prefetch = max(prefetch, short_prefetch or prefetch)
        self._short_streak: dict[int, int] = {}  # engine -> short tasks in a row
        self._recent: dict[int, float] = {}  # engine -> its tasks' recent average duration
        self.tasks: dict[str, Task] = {}
        self._queue: collections.deque[Task] = collections.deque()
        self._waiting_on: dict[str, list[Task]] = {}
        self._loads: dict[int, int] = {}  # live engine -> requests outstanding on it
        # _room[n]: engines with load n and room for more, in the order they got there
        self._room: list[dict[int, None]] = [{} for _ in range(self.short_prefetch)]
        #: Every bucket below this one is empty: where the search for room starts (engines of
        #: tiny tasks sit near their limit, so the low buckets are empty, and scanning 32 of
        #: them per task was the scheduler's biggest cost)
        self._lowest = 0
        self._retired: set[int] = set()  # engines near their job's walltime: no new tasks

    # -- engines -----------------------------------------------------------------------------

    def engine_added(self, engine: int, load: int = 0) -> None:
        """A new live engine, with ``load`` requests outstanding already."""
        self._loads[engine] = load
        self._place(engine, -1)

    def retire(self, engine: int) -> None:
        """Send ``engine`` no more tasks (its batch job's walltime is about to end); what it
        holds still finishes, and work stealing may hand back what waits there."""
        self._retired.add(engine)
        if engine in self._loads:
            self._place(engine, self._loads[engine])

    def sent(self, engine: int) -> None:
        """A queued request (not a task: ``assign`` counts those) went to ``engine``."""
        self._change(engine, 1)

    def answered(self, engine: int) -> None:
        """A queued request or task on ``engine`` was answered (or withdrawn)."""
        self._change(engine, -1)

    def load(self, engine: int) -> int:
        """Requests outstanding on ``engine`` as the scheduler counts them."""
        return self._loads.get(engine, 0)

    def _change(self, engine: int, delta: int) -> None:
        old = self._loads.get(engine)
        if old is None:
            return  # not (or no longer) live
        self._loads[engine] = max(0, old + delta)
        self._place(engine, old)

    def _place(self, engine: int, old: int) -> None:
        """Move ``engine`` from the bucket of load ``old`` (-1: none) to where it belongs."""
        if 0 <= old < len(self._room):
            self._room[old].pop(engine, None)
        load = self._loads[engine]
        if load < self.limit(engine):
            self._room[load][engine] = None
            if load < self._lowest:
                self._lowest = load

    # -- entering ----------------------------------------------------------------------------

    def add(self, task: Task, pending_after: set[str]) -> None:
        """Take ``task``; it waits for the ids in ``pending_after`` (unfinished tasks)."""
        self.tasks[task.id] = task
        if pending_after:
            task.state = TaskState.WAITING
            task.unmet = set(pending_after)
            for dep in pending_after:
                self._waiting_on.setdefault(dep, []).append(task)
        else:
            self._enqueue(task)

    def _enqueue(self, task: Task, front: bool = False) -> None:
        task.state = TaskState.QUEUED
        task.engine = -1
        task.withdrawing = False
        if front:
            self._queue.appendleft(task)
        else:
            self._queue.append(task)

    def requeue(self, task: Task) -> None:
        """Put a task back at the head of the queue (a retry, or a refusal)."""
        self._enqueue(task, front=True)

    # -- assigning ---------------------------------------------------------------------------

    def limit(self, engine: int) -> int:
        """How many requests ``engine`` may hold now (its prefetch; 0 once retired)."""
        if engine in self._retired:
            return 0
        if self._short_streak.get(engine, 0) >= SHORT_STREAK:
            return self.short_prefetch
        return self.prefetch

    def ran(self, engine: int, seconds: float) -> None:
        """Note that a task ran ``seconds`` on ``engine`` (this sets its prefetch)."""
        if seconds >= LONG_TASK_S:
            recent = seconds
        elif engine not in self._recent:  # its first task also paid for warming up
            recent = min(seconds, SHORT_TASK_S / 2)
        else:
            recent = self._recent[engine]
            recent += (seconds - recent) * _RECENT_WEIGHT
        self._recent[engine] = recent
        streak = self._short_streak.get(engine, 0)
        if recent < SHORT_TASK_S:
            self._short_streak[engine] = streak + 1
            changed = streak + 1 == SHORT_STREAK  # its limit rises to short_prefetch
        else:
            self._short_streak[engine] = 0
            changed = streak >= SHORT_STREAK  # back to prefetch
        if changed and engine in self._loads:
            self._place(engine, self._loads[engine])

    def has_room(self) -> bool:
        """True when some live engine can take a task now."""
        room = self._room
        for load in range(self._lowest, len(room)):
            if room[load]:
                self._lowest = load
                return True
        self._lowest = len(room)
        return False

    def _pick(self, refused_by: set[int]) -> int | None:
        """The least-loaded engine with room that is not in ``refused_by``."""
        room = self._room
        for load in range(self._lowest, len(room)):
            bucket = room[load]
            if not bucket:
                continue
            if not refused_by:
                for engine in bucket:
                    return engine
            else:
                for engine in bucket:
                    if engine not in refused_by:
                        return engine
        return None

    def assign(self) -> list[tuple[int, Task]]:
        """Pair queued tasks with engines that have room (their loads count them)."""
        out: list[tuple[int, Task]] = []
        skipped: list[Task] = []
        queue = self._queue
        while queue and self.has_room():
            task = queue.popleft()
            engine = self._pick(task.refused_by)
            if engine is None:
                skipped.append(task)  # only engines that refused it have room now
                if len(skipped) > 64:
                    break  # bounded scan: the rest wait for the next turn
                continue
            self._change(engine, 1)
            task.state = TaskState.RUNNING
            task.engine = engine
            out.append((engine, task))
        queue.extendleft(reversed(skipped))
        return out

    def refused(self, task: Task, engine: int, live_engines: set[int]) -> bool:
        """Note that ``engine`` refused ``task``; True when every live engine has refused it."""
        task.refused_by.add(engine)
        if live_engines <= task.refused_by:
            return True
        self.requeue(task)
        return False

    # -- leaving -----------------------------------------------------------------------------

    def finish(self, task_id: str) -> Task | None:
        """Forget a task that finished (or failed for good); returns it."""
        task = self.tasks.pop(task_id, None)
        if task is None:
            return None
        if task.state == TaskState.QUEUED:
            self._queue.remove(task)
        elif task.state == TaskState.WAITING:
            for dep in task.unmet:
                waiting = self._waiting_on.get(dep, [])
                if task in waiting:
                    waiting.remove(task)
        return task

    def dependency_done(self, task_id: str, succeeded: bool) -> list[Task]:
        """Release the tasks waiting on ``task_id``; returns those that now cannot run."""
        doomed: list[Task] = []
        for task in self._waiting_on.pop(task_id, []):
            if not succeeded:
                doomed.append(task)
                continue
            task.unmet.discard(task_id)
            if not task.unmet and task.id in self.tasks:
                self._enqueue(task)
        return doomed

    def engine_gone(self, engine: int) -> None:
        """An engine left: it takes no more tasks and can no longer refuse anything."""
        self._short_streak.pop(engine, None)
        self._recent.pop(engine, None)
        self._retired.discard(engine)
        load = self._loads.pop(engine, None)
        if load is not None and load < len(self._room):
            self._room[load].pop(engine, None)
        for task in self.tasks.values():
            task.refused_by.discard(engine)

    # -- reporting ---------------------------------------------------------------------------

    @property
    def queued(self) -> int:
        """Tasks waiting here for an engine (cheap: called on every heartbeat tick)."""
        return len(self._queue)

    def counts(self) -> dict[str, int]:
        """Tasks queued here, waiting on ``after``, and assigned to engines (running there or
        next in line: the controller does not see when an engine starts one)."""
        assigned = sum(1 for t in self.tasks.values() if t.state == TaskState.RUNNING)
        return {
            "queued": self.queued,
            "waiting": sum(1 for t in self.tasks.values() if t.state == TaskState.WAITING),
            "assigned": assigned,
        }

    def unplaceable(self, live_engines: set[int]) -> list[Task]:
        """Queued tasks every live engine has refused (e.g. after the others left)."""
        return [t for t in self._queue if t.refused_by and live_engines <= t.refused_by]
