"""Controller layer: the task scheduler's policy, driven directly."""

import pytest

from pxcluster.controller import Scheduler, Task
from pxcluster.controller._scheduler import TaskState


def task(name, retries=0):
    return Task(name, b"client", "s", b"H", (), retries, [], 0.0)


def test_least_loaded_engine_gets_the_oldest_task_up_to_the_prefetch():
    sched = Scheduler(prefetch=2)
    for i in range(6):
        sched.add(task(f"t{i}"), set())
    loads = {0: 1, 1: 0}
    placed = [(e, t.id) for e, t in sched.assign(loads)]
    assert placed == [(1, "t0"), (0, "t1"), (1, "t2")]
    assert loads == {0: 2, 1: 2}
    assert sched.counts() == {"queued": 3, "waiting": 0, "assigned": 3}


def test_refusals_skip_engines_and_all_refused_is_reported():
    sched = Scheduler(prefetch=1)
    t = task("t")
    sched.add(t, set())
    [(engine, _)] = sched.assign({0: 0, 1: 0})
    assert not sched.refused(t, engine, {0, 1})
    [(other, _)] = sched.assign({0: 0, 1: 0})
    assert other != engine
    assert sched.refused(t, other, {0, 1})


def test_a_refused_head_does_not_block_tasks_behind_it():
    sched = Scheduler(prefetch=1)
    picky, plain = task("picky"), task("plain")
    picky.refused_by = {0}
    sched.add(picky, set())
    sched.add(plain, set())
    assert [(e, t.id) for e, t in sched.assign({0: 0})] == [(0, "plain")]
    assert sched.counts()["queued"] == 1


def test_after_waits_then_releases_or_dooms():
    sched = Scheduler()
    a, b = task("a"), task("b")
    sched.add(a, {"dep"})
    sched.add(b, {"dep"})
    assert sched.counts()["waiting"] == 2
    assert sched.assign({0: 0}) == []
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
    assert sched.assign({0: 0}) == []
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
    loads = {0: 0, 1: 0}
    sched.assign(loads)
    assert loads == {0: 8, 1: 2}
    sched.ran(0, 0.5)  # one long task: back to the plain prefetch
    assert sched.limit(0) == 2
    sched.engine_gone(1)
    assert sched.limit(1) == 2
