"""Controller layer: tasks and results that travel in BATCH messages, driven directly
through the hub with messages and a fake clock. Each task in a batch must keep every
guarantee a lone task has: settled exactly once, retried alone, withdrawn or aborted alone."""

import dataclasses

from pxcluster.wire import Message, MsgType, Status, pack_batch, pack_header, unpack_header


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def with_header(msg):
    return dataclasses.replace(msg, header=pack_header(msg))


def batch_of(msgs, batch_id="c-b"):
    """A decoded BATCH carrying ``msgs`` (as a receiver's ``decode`` would give it)."""
    header, buffers = pack_batch(batch_id, [(m.header or pack_header(m), m.buffers) for m in msgs])
    return unpack_header(header, buffers)


def task_msg(task_id, **spec):
    content = {"kind": "map", "counts": [1], **spec}
    return Message(MsgType.TASK, task_id, content, [b"f" + task_id.encode()], session="c")


def start(make_hub, engines=2, **options):
    clock = Clock()
    hub = make_hub(heartbeat_timeout=3.0, clock=clock, heartbeat_period=1.0, **options)
    hub.client_message(b"c", Message(MsgType.CONNECT, "c-0"))
    for i in range(engines):
        hub.engine_message(b"e%d" % i, Message(MsgType.REGISTER, f"r{i}", {"pid": 1}))
    return hub, clock


def submit(hub, *task_ids, **spec):
    """Submit tasks as one client BATCH; returns what the hub sends."""
    return hub.client_message(b"c", batch_of([task_msg(t, **spec) for t in task_ids]))


def messages(out, to):
    """Every message in ``out`` going ``to`` a side, batches opened: (identity, Message,
    batched)."""
    found = []
    for o in out:
        if o.to != to:
            continue
        msg = o.msg or unpack_header(o.header, o.buffers)
        if msg.type == MsgType.BATCH:
            found += [(o.identity, e, True) for e in entries(msg)]
        else:
            found.append((o.identity, msg, False))
    return found


def entries(batch):
    from pxcluster.wire import unbatch

    good, problems = unbatch(batch)
    assert problems == []
    return good


def sent_tasks(out):
    """{engine identity: [task wire ids sent to it]}."""
    by_engine = {}
    for identity, msg, _ in messages(out, "engine"):
        if msg.type == MsgType.TASK:
            by_engine.setdefault(identity, []).append(msg.id)
    return by_engine


def settled(out):
    """{task id: the client-bound reply about it} (the controller's or an engine's)."""
    return {msg.parent: msg for _, msg, _ in messages(out, "client") if msg.type == MsgType.REPLY}


def reply(msg_id, parent, status=Status.OK, **content):
    msg = Message(MsgType.REPLY, msg_id, content, [b"r"], parent=parent, status=status)
    return with_header(msg)


def engine_batch(hub, engine, replies):
    return hub.engine_message(engine, batch_of(replies, f"{engine.decode()}-b{replies[0].id}"))


def test_a_client_batch_is_queued_entry_by_entry_and_engines_get_theirs_as_batches(make_hub):
    hub, _ = start(make_hub, task_prefetch=3)
    out = submit(hub, "t-1", "t-2", "t-3", "t-4", "t-5", "t-6", "t-7")
    sent = sent_tasks(out)
    assert sorted(len(v) for v in sent.values()) == [3, 3]  # each engine: its prefetch
    assert len([o for o in out if o.to == "engine"]) == 2  # one message each
    assert hub.scheduler.counts() == {"queued": 1, "waiting": 0, "assigned": 6}
    # the entries travel with their exact header bytes: a lone task's forwarding
    for _, msg, batched in messages(out, "engine"):
        assert batched
        assert msg.header == pack_header(dataclasses.replace(task_msg(msg.id), ts=msg.ts))
    # each task is outstanding on its engine by itself (what fails if the engine dies)
    for identity, ids in sent.items():
        engine = hub.engines[int(identity[1:])]
        assert list(engine.outstanding) == ids


def test_a_lone_task_goes_alone(make_hub):
    hub, _ = start(make_hub)
    msg = with_header(task_msg("t-1"))
    (out,) = hub.client_message(b"c", msg)
    assert out.header is msg.header  # forwarded as it came: no batch, no re-packing


def test_an_engines_batch_of_replies_settles_each_and_the_client_gets_one_batch(make_hub):
    hub, _ = start(make_hub, engines=1, task_prefetch=4)
    (ids,) = sent_tasks(submit(hub, "t-1", "t-2", "t-3", "t-4", "t-5")).values()
    replies = [reply(f"e0-{i}", t) for i, t in enumerate(ids)]
    out = engine_batch(hub, b"e0", replies)
    to_client = [o for o in out if o.to == "client"]
    assert len(to_client) == 1  # four results, one message
    got = settled(out)
    assert sorted(got) == ids
    assert {m.header for m in got.values()} == {r.header for r in replies}  # as sent
    for task_id in ids:  # recorded before they were sent on
        assert hub.tasks.store.get(task_id).status == Status.OK
    assert sent_tasks(out) == {b"e0": ["t-5"]}  # the room they freed, filled at once
    assert hub.scheduler.load(0) == 1


def test_an_engine_lost_with_a_batch_outstanding_settles_each_task_once(make_hub):
    hub, clock = start(make_hub, engines=2, task_prefetch=4)
    out = submit(hub, *[f"t-{i}" for i in range(8)], retries=1)
    sent = sent_tasks(out)
    doomed, other = (b"e0", b"e1")
    lost = sent[doomed]
    # the other engine answers its own batch, so it has room for the retries
    engine_batch(hub, other, [reply(f"e1-{t}", t) for t in sent[other]])
    # the doomed engine answered one task of its batch before it went silent
    first = engine_batch(hub, doomed, [reply("e0-x", lost[0])])
    assert list(settled(first)) == [lost[0]]
    for _ in range(hub.misses_allowed + 2):
        clock.now += 1.0
        hub.heartbeat(other, hub.next_ping())
    out = hub.check_liveness()
    assert settled(out) == {}  # every other task of its batch retried, none failed
    resent = sent_tasks(out)[other]
    assert sorted(w.split("~")[0] for w in resent) == sorted(lost[1:])
    assert all("~" in w for w in resent)  # each under a fresh wire id
    # a late reply of the dead engine settles nothing twice
    assert settled(engine_batch(hub, doomed, [reply("e0-y", t) for t in lost])) == {}
    # the retries' replies settle each task once, under its own id
    out = engine_batch(hub, other, [reply(f"e1-{w}", w) for w in resent])
    assert sorted(settled(out)) == sorted(lost[1:])
    assert hub.scheduler.tasks == {}


def test_an_engine_lost_with_a_batch_and_no_retries_fails_each_task(make_hub):
    hub, clock = start(make_hub, engines=1, task_prefetch=4)
    (ids,) = sent_tasks(submit(hub, "t-1", "t-2", "t-3")).values()
    for _ in range(hub.misses_allowed + 2):
        clock.now += 1.0
        hub.next_ping()
    got = settled(hub.check_liveness())
    assert sorted(got) == ids
    assert {m.content["kind"] for m in got.values()} == {"died"}


def test_one_task_of_a_batch_failing_is_retried_alone(make_hub):
    hub, _ = start(make_hub, engines=1, task_prefetch=4)
    out = hub.client_message(b"c", batch_of([task_msg("t-1"), task_msg("t-2", retries=1),
                                             task_msg("t-3")]))
    assert sent_tasks(out) == {b"e0": ["t-1", "t-2", "t-3"]}
    replies = [reply("e0-1", "t-1"), reply("e0-2", "t-2", Status.ERROR, ename="ValueError"),
               reply("e0-3", "t-3", Status.ERROR, ename="KeyError")]
    out = engine_batch(hub, b"e0", replies)
    got = settled(out)
    assert sorted(got) == ["t-1", "t-3"]  # t-3 had no retries: its error is final
    assert got["t-3"].status == Status.ERROR
    assert sent_tasks(out) == {b"e0": ["t-2~1"]}  # t-2 again, alone
    got = settled(hub.engine_message(b"e0", reply("e0-4", "t-2~1")))
    assert list(got) == ["t-2"]
    assert got["t-2"].status == Status.OK


def test_withdrawal_racing_a_batch_settles_once(make_hub):
    hub, clock = start(make_hub, engines=2, task_prefetch=3)
    out = submit(hub, "t-1", "t-2", "t-3", "t-4", "t-5", "t-6")
    sent = sent_tasks(out)
    busy, idle = b"e0", b"e1"
    # the idle engine finishes its batch; the busy one's first task runs long
    engine_batch(hub, idle, [reply(f"e1-{t}", t) for t in sent[idle]])
    clock.now += 1.0
    withdraws = [o.msg for o in hub.check_liveness() if o.msg and o.msg.type == MsgType.INTERRUPT]
    assert withdraws
    wanted = withdraws[0].content["request"]
    assert wanted in sent[busy][1:]
    # the busy engine's batch of replies came first (the withdrawal raced it)...
    out = engine_batch(hub, busy, [reply(f"e0-{t}", t) for t in sent[busy]])
    assert sorted(settled(out)) == sorted(sent[busy])
    # ... so the engine's "withdrawn" answer that follows settles nothing again
    late = reply("e0-w", wanted, Status.ABORTED, withdrawn=True)
    assert settled(hub.engine_message(busy, late)) == {}
    assert hub.scheduler.tasks == {}


def test_withdrawn_from_a_batch_before_it_ran_goes_elsewhere(make_hub):
    hub, clock = start(make_hub, engines=2, task_prefetch=3)
    sent = sent_tasks(submit(hub, "t-1", "t-2", "t-3", "t-4", "t-5", "t-6"))
    busy, idle = b"e0", b"e1"
    engine_batch(hub, idle, [reply(f"e1-{t}", t) for t in sent[idle]])
    clock.now += 1.0
    withdraws = [o.msg for o in hub.check_liveness() if o.msg and o.msg.type == MsgType.INTERRUPT]
    wanted = withdraws[0].content["request"]
    out = hub.engine_message(busy, reply("e0-w", wanted, Status.ABORTED, withdrawn=True))
    assert settled(out) == {}
    assert [w.split("~")[0] for w in sent_tasks(out)[idle]] == [wanted]


def test_abort_of_a_task_queued_in_a_batch(make_hub):
    hub, _ = start(make_hub, engines=1, task_prefetch=3)
    assert sent_tasks(submit(hub, "t-1", "t-2", "t-3")) == {b"e0": ["t-1", "t-2", "t-3"]}
    out = hub.client_message(b"c", Message(MsgType.TASK_ABORT, "c-9", {"id": "t-2"}))
    (interrupt,) = [o.msg for o in out if o.to == "engine"]
    assert interrupt.content == {"request": "t-2"}  # aimed at that task alone
    replies = [reply("e0-1", "t-1"), reply("e0-2", "t-2", Status.ABORTED, error="aborted"),
               reply("e0-3", "t-3")]
    got = settled(engine_batch(hub, b"e0", replies))
    assert got["t-2"].status == Status.ABORTED
    assert got["t-1"].status == got["t-3"].status == Status.OK


def test_after_within_one_batch_waits_for_its_dependency(make_hub):
    hub, _ = start(make_hub, engines=1, task_prefetch=4)
    out = hub.client_message(b"c", batch_of([task_msg("t-1"), task_msg("t-2", after=["t-1"])]))
    assert sent_tasks(out) == {b"e0": ["t-1"]}
    assert hub.scheduler.counts()["waiting"] == 1
    out = hub.engine_message(b"e0", reply("e0-1", "t-1"))
    assert sent_tasks(out) == {b"e0": ["t-2"]}


def test_a_bad_entry_is_answered_and_the_rest_of_its_batch_is_taken(make_hub):
    hub, _ = start(make_hub, engines=1, task_prefetch=4)
    bad = Message(MsgType.TASK, "t-bad", {"kind": 3, "counts": [1]}, [b"x"])  # kind: a str
    stray = Message(MsgType.REPLY, "t-stray", {}, parent="p")  # not a request
    out = hub.client_message(b"c", batch_of([task_msg("t-1"), bad, stray, task_msg("t-2")]))
    answers = settled(out)
    assert answers["t-bad"].content["kind"] == "invalid"
    assert "kind" in answers["t-bad"].content["error"]
    assert answers["t-stray"].content["kind"] == "invalid"
    assert sent_tasks(out) == {b"e0": ["t-1", "t-2"]}


def test_results_of_big_tasks_are_not_batched(make_hub):
    hub, _ = start(make_hub, engines=1, task_prefetch=4)
    assert sent_tasks(submit(hub, "t-1", "t-2", "t-3")) == {b"e0": ["t-1", "t-2", "t-3"]}
    big = Message(MsgType.REPLY, "e0-big", {}, [b"x" * 100_000], parent="t-2")
    out = engine_batch(hub, b"e0", [reply("e0-1", "t-1"), big, reply("e0-3", "t-3")])
    lone = [o for o in out if o.to == "client" and o.buffers and len(o.buffers[0]) == 100_000]
    assert len(lone) == 1  # the big one went alone, the two small ones together
    assert len([o for o in out if o.to == "client"]) == 2


def test_a_hiccup_keeps_an_engines_deep_prefetch_and_a_long_task_ends_it():
    from pxcluster.controller import Scheduler
    from pxcluster.controller._scheduler import LONG_TASK_S, SHORT_STREAK

    sched = Scheduler(prefetch=2, short_prefetch=32)
    sched.engine_added(0)
    for _ in range(SHORT_STREAK):
        sched.ran(0, 0.0002)
    assert sched.limit(0) == 32
    sched.ran(0, 0.005)  # descheduled for 5 ms once: still an engine of tiny tasks
    assert sched.limit(0) == 32
    for _ in range(3):  # tasks of 5 ms each: not tiny any more
        sched.ran(0, 0.005)
    assert sched.limit(0) == 2
    for _ in range(SHORT_STREAK + 8):
        sched.ran(0, 0.0002)
    assert sched.limit(0) == 32
    sched.ran(0, LONG_TASK_S)  # one long task: back to the plain prefetch at once
    assert sched.limit(0) == 2


def test_a_big_task_among_small_ones_keeps_its_place_in_the_engines_order(make_hub):
    hub, _ = start(make_hub, engines=1, task_prefetch=4)
    big = Message(MsgType.TASK, "t-2", {"kind": "map", "counts": [1]}, [b"x" * 100_000])
    out = hub.client_message(b"c", batch_of([task_msg("t-1"), big, task_msg("t-3")]))
    order = [msg.id for _, msg, _ in messages(out, "engine")]
    assert order == ["t-1", "t-2", "t-3"] == list(hub.engines[0].outstanding)
    assert len([o for o in out if o.to == "engine"]) == 3  # small, big, small: none batched
