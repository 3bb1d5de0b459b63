"""Controller layer: the task scheduler's policy, driven directly."""

import pytest

from pxcluster.controller import Scheduler, Task
from pxcluster.controller._scheduler import TaskState


def task(name, retries=0):
    return Task(name, b"client", "s", b"H", (), retries, [], 0.0)


def with_engines(sched, loads):
    """``sched`` with live engines at the given loads (as the hub reports them)."""
    for engine, load in loads.items():
        sched.engine_added(engine, load)
    return sched


def loads_of(sched, engines):
    return {e: sched.load(e) for e in engines}


def test_least_loaded_engine_gets_the_oldest_task_up_to_the_prefetch():
    sched = Scheduler(prefetch=2)
    for i in range(6):
        sched.add(task(f"t{i}"), set())
    with_engines(sched, {0: 1, 1: 0})
    placed = [(e, t.id) for e, t in sched.assign()]
    assert placed == [(1, "t0"), (0, "t1"), (1, "t2")]
    assert loads_of(sched, [0, 1]) == {0: 2, 1: 2}
    assert sched.counts() == {"queued": 3, "waiting": 0, "assigned": 3}


def test_refusals_skip_engines_and_all_refused_is_reported():
    sched = Scheduler(prefetch=1)
    t = task("t")
    sched.add(t, set())
    with_engines(sched, {0: 0, 1: 0})
    [(engine, _)] = sched.assign()
    sched.answered(engine)  # its REFUSED reply
    assert not sched.refused(t, engine, {0, 1})
    [(other, _)] = sched.assign()
    assert other != engine
    assert sched.refused(t, other, {0, 1})


def test_a_refused_head_does_not_block_tasks_behind_it():
    sched = Scheduler(prefetch=1)
    picky, plain = task("picky"), task("plain")
    picky.refused_by = {0}
    sched.add(picky, set())
    sched.add(plain, set())
    with_engines(sched, {0: 0})
    assert [(e, t.id) for e, t in sched.assign()] == [(0, "plain")]
    assert sched.counts()["queued"] == 1


def test_after_waits_then_releases_or_dooms():
    sched = Scheduler()
    a, b = task("a"), task("b")
    sched.add(a, {"dep"})
    sched.add(b, {"dep"})
    assert sched.counts()["waiting"] == 2
    with_engines(sched, {0: 0})
    assert sched.assign() == []
    assert sched.dependency_done("dep", succeeded=True) == []
    assert a.state == TaskState.QUEUED
    c = task("c")
    sched.add(c, {"other"})
    assert sched.dependency_done("other", succeeded=False) == [c]


def test_finish_removes_a_queued_task():
    sched = Scheduler()
    t = task("t")
    sched.add(t, set())
    assert sched.finish("t") is t
    with_engines(sched, {0: 0})
    assert sched.assign() == []
    assert sched.finish("t") is None


def test_prefetch_must_be_positive():
    with pytest.raises(ValueError, match="prefetch"):
        Scheduler(prefetch=0)


def test_an_engine_of_short_tasks_gets_the_deeper_prefetch_until_a_long_one():
    from pxcluster.controller._scheduler import SHORT_STREAK, SHORT_TASK_S

    sched = Scheduler(prefetch=2, short_prefetch=8)
    for i in range(20):
        sched.add(task(f"t{i}"), set())
    assert sched.limit(0) == 2
    for _ in range(SHORT_STREAK):
        sched.ran(0, SHORT_TASK_S / 10)
    assert sched.limit(0) == 8
    assert sched.limit(1) == 2
    with_engines(sched, {0: 0, 1: 0})
    sched.assign()
    assert loads_of(sched, [0, 1]) == {0: 8, 1: 2}
    sched.ran(0, 0.5)  # one long task: back to the plain prefetch
    assert sched.limit(0) == 2
    sched.engine_gone(1)
    assert sched.limit(1) == 2


def test_an_engine_with_room_again_takes_the_next_task_and_equals_take_turns():
    sched = with_engines(Scheduler(prefetch=1), {0: 0, 1: 0, 2: 0})
    for i in range(5):
        sched.add(task(f"t{i}"), set())
    assert [e for e, _ in sched.assign()] == [0, 1, 2]
    sched.answered(1)
    assert [(e, t.id) for e, t in sched.assign()] == [(1, "t3")]
    sched.answered(2)
    sched.answered(0)
    assert [(e, t.id) for e, t in sched.assign()] == [(2, "t4")]


def test_multiengine_requests_count_in_the_load_and_gone_engines_take_nothing():
    sched = with_engines(Scheduler(prefetch=2), {0: 0, 1: 0})
    sched.sent(0)
    sched.sent(0)  # engine 0 is full of MultiEngine work
    for i in range(3):
        sched.add(task(f"t{i}"), set())
    assert [e for e, _ in sched.assign()] == [1, 1]
    sched.engine_gone(1)
    sched.answered(0)
    assert [(e, t.id) for e, t in sched.assign()] == [(0, "t2")]
    sched.answered(1)  # a late reply from the gone engine changes nothing
    assert sched.load(1) == 0
    assert not sched.has_room()


def test_placing_a_task_does_not_scan_the_engines():
    """With many idle engines, each assignment looks at one bucket's first engine: the cost
    per task is the same with 10 or 10,000 engines (counted by the lookups made)."""

    class CountingBuckets(dict):
        lookups = 0

        def __iter__(self):
            for key in super().__iter__():
                CountingBuckets.lookups += 1
                yield key

    looked = {}
    for engines in (10, 10_000):
        sched = with_engines(Scheduler(prefetch=2), dict.fromkeys(range(engines), 0))
        sched._room = [CountingBuckets(b) for b in sched._room]
        for i in range(20):  # what 10 engines have room for
            sched.add(task(f"t{i}"), set())
        CountingBuckets.lookups = 0
        assert len(sched.assign()) == 20
        looked[engines] = CountingBuckets.lookups
    assert looked[10_000] == looked[10] == 20


def test_the_hub_keeps_the_schedulers_loads_equal_to_the_engines_queues(make_hub):
    """Loads are counted as requests come and go (no scan), so every path that adds or
    answers a request must report it: MultiEngine requests, tasks, control requests (not
    counted), replies, an engine's death."""
    from pxcluster.wire import Message, MsgType

    hub = make_hub(heartbeat_timeout=3.0, task_prefetch=2)
    for i in range(3):
        hub.engine_message(b"e%d" % i, Message(MsgType.REGISTER, f"r{i}", {"pid": 1}))

    def agree():
        return all(hub.scheduler.load(e) == rec.queue_length() for e, rec in hub.engines.items())

    hub.client_message(b"c", Message(MsgType.EXECUTE, "c-1", {"code": "1"}, targets=[0, 1]))
    hub.client_message(b"c", Message(MsgType.INTERRUPT, "c-2", {}, targets=[0]))
    for i in range(5):
        hub.client_message(b"c", Message(MsgType.TASK, f"c-t{i}", {}, header=b"T"))
    assert agree()
    assert hub.scheduler.load(2) == 2  # the idle engine took tasks first
    hub.engine_message(b"e0", Message(MsgType.REPLY, "e0-1", parent="c-1"))
    hub.engine_message(b"e0", Message(MsgType.REPLY, "e0-2", parent="c-2"))
    assert agree()
    for task_id in [t for t, p in hub.engines[2].outstanding.items() if p.type == MsgType.TASK]:
        hub.engine_message(b"e2", Message(MsgType.REPLY, f"e2-{task_id}", parent=task_id))
    assert agree()
    hub.remove_engine(1, "test")
    assert agree()
    assert hub.scheduler.load(1) == 0
