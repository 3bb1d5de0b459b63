"""Controller layer: the hub state machine driven directly with messages and a fake clock."""

import dataclasses

from pxcluster.wire import Message, MsgType, Status, pack_header, unpack_header


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def register(hub, identity):
    out = hub.engine_message(identity, Message(MsgType.REGISTER, f"{identity!r}-r",
                                               {"hostname": "h", "pid": 1}))
    return out[0].msg.content["id"]


def test_engines_get_ids_in_order_of_arrival_and_clients_hear_of_them(make_hub):
    hub = make_hub(heartbeat_timeout=3.0, clock=Clock())
    hub.client_message(b"c1", Message(MsgType.CONNECT, "c-1"))
    assert [register(hub, b"e%d" % i) for i in range(3)] == [0, 1, 2]
    assert register(hub, b"e1") == 1  # registering again keeps the id
    notes = hub.engine_message(b"e9", Message(MsgType.REGISTER, "x", {}))[1:]
    assert [(o.identity, o.msg.content) for o in notes] == [
        (b"c1", {"event": "registered", "engine": 3, "host": "", "version": 4})]


def test_request_goes_to_each_target_and_reply_back_to_its_client(make_hub):
    hub = make_hub(heartbeat_timeout=3.0, clock=Clock())
    register(hub, b"e0")
    register(hub, b"e1")
    request = Message(MsgType.EXECUTE, "c-1", {"code": "1"}, targets=[0, 1], header=b"H")
    out = hub.client_message(b"client", request)
    assert [(o.to, o.identity, o.header) for o in out] == [
        ("engine", b"e0", b"H"), ("engine", b"e1", b"H")]
    assert hub.client_message(b"client", Message(MsgType.QUEUE_STATUS, "q"))[0].msg.content == {
        "queues": [[0, 1], [1, 1]]}
    back = hub.engine_message(b"e1", Message(MsgType.REPLY, "e-1", parent="c-1", header=b"R"))
    assert [(o.to, o.identity, o.header) for o in back] == [("client", b"client", b"R")]
    assert hub.engines[1].queue_length() == 0
    assert hub.engines[0].queue_length() == 1


def test_unknown_target_is_answered_at_once(make_hub):
    hub = make_hub(heartbeat_timeout=3.0, clock=Clock())
    out = hub.client_message(b"c", Message(MsgType.PULL, "c-1", targets=[5]))
    assert out[0].msg.status == Status.ENGINE_ERROR
    assert out[0].msg.engine == 5
    assert "not registered" in out[0].msg.content["error"]


def test_silent_engine_dies_and_its_requests_fail(make_hub):
    clock = Clock()
    hub = make_hub(heartbeat_timeout=3.0, clock=clock)
    hub.client_message(b"c", Message(MsgType.CONNECT, "c-0"))
    register(hub, b"e0")
    register(hub, b"e1")
    hub.client_message(b"c", Message(MsgType.EXECUTE, "c-1", targets=[0, 1]))
    hub.client_message(b"c", Message(MsgType.EXECUTE, "c-2", targets=[0]))
    for _ in range(4):  # 4 pings over 2 s: both answer
        clock.now += 0.5
        ping = hub.next_ping()
        hub.heartbeat(b"e0", ping)
        hub.heartbeat(b"e1", ping)
    for _ in range(8):  # 8 more over 4 s: only e1 answers
        clock.now += 0.5
        hub.heartbeat(b"e1", hub.next_ping())
    out = hub.check_liveness()
    replies = [o.msg for o in out if o.msg.type == MsgType.REPLY]
    failed = [(m.parent, m.engine, m.status) for m in replies]
    assert failed == [("c-1", 0, Status.ENGINE_ERROR), ("c-2", 0, Status.ENGINE_ERROR)]
    assert [o.msg.content for o in out if o.msg.type == MsgType.NOTIFY] == [
        {"event": "died", "engine": 0, "version": 3}]
    assert hub.engine_ids() == [1]
    # a late message from the dead engine is not routed; it is asked to register again
    late = hub.engine_message(b"e0", Message(MsgType.REPLY, "e-9", parent="c-2"))
    assert late[0].to == "engine"
    assert late[0].msg.content == {"event": "register", "reason": "declared dead"}


def test_shutdown_without_targets_stops_the_controller_and_engines(make_hub):
    hub = make_hub(heartbeat_timeout=3.0, clock=Clock())
    register(hub, b"e0")
    out = hub.client_message(b"c", Message(MsgType.SHUTDOWN, "c-1"))
    assert hub.shutdown_requested
    assert [(o.to, o.msg.type) for o in out] == [("client", MsgType.REPLY),
                                                 ("engine", MsgType.SHUTDOWN)]


def test_engine_confirming_a_kill_is_forgotten_at_once(make_hub):
    hub = make_hub(heartbeat_timeout=3.0, clock=Clock())
    hub.client_message(b"c", Message(MsgType.CONNECT, "c-0"))
    register(hub, b"e0")
    register(hub, b"e1")
    hub.client_message(b"c", Message(MsgType.SHUTDOWN, "c-1", targets=[1]))
    out = hub.engine_message(b"e1", Message(MsgType.REPLY, "e-1", parent="c-1", header=b"R"))
    assert out[0].header == b"R"
    assert [o.msg.content for o in out[1:]] == [{"event": "stopped", "engine": 1, "version": 3}]
    assert hub.engine_ids() == [0]


def test_a_killed_engine_still_talking_on_its_way_out_never_comes_back(make_hub):
    # Seen in CI: a killed engine's last pong was answered "please register", the engine
    # did, and 'all' then held a new engine 4 whose process had exited.
    hub = make_hub(heartbeat_timeout=3.0, clock=Clock())
    hub.client_message(b"c", Message(MsgType.CONNECT, "c-0"))
    register(hub, b"e0")
    register(hub, b"e1")
    hub.client_message(b"c", Message(MsgType.SHUTDOWN, "c-1", targets=[1]))
    hub.engine_message(b"e1", Message(MsgType.REPLY, "e-1", parent="c-1"))
    assert hub.heartbeat(b"e1", hub.next_ping()) == []  # not asked to register
    again = Message(MsgType.REGISTER, "e1-again", {"hostname": "h", "pid": 1, "id": 1})
    (told,) = hub.engine_message(b"e1", again)
    assert (told.to, told.msg.type) == ("engine", MsgType.SHUTDOWN)
    assert hub.engine_ids() == [0]
    # an engine the hub never met is still asked to register (a restarted controller)
    (ask,) = hub.heartbeat(b"e9", hub.next_ping())
    assert ask.msg.content == {"event": "register"}


def test_a_stalled_controller_blames_no_engine(make_hub):
    clock = Clock()
    hub = make_hub(heartbeat_timeout=3.0, clock=clock, heartbeat_period=0.5)
    register(hub, b"e0")
    hub.heartbeat(b"e0", hub.next_ping())
    clock.now += 60.0  # the controller was busy for a minute: it sent no pings
    assert hub.check_liveness() == []
    assert hub.engine_ids() == [0]
    for _ in range(hub.misses_allowed + 1):  # now pings go out and none is answered
        hub.next_ping()
    hub.check_liveness()
    assert hub.engine_ids() == []


def test_an_engine_back_after_a_controller_restart_gets_its_old_id_if_free(make_hub):
    hub = make_hub(heartbeat_timeout=3.0, clock=Clock())

    def register_as(identity, wanted):
        msg = Message(MsgType.REGISTER, f"{identity!r}-r", {"hostname": "h", "id": wanted})
        return hub.engine_message(identity, msg)[0].msg.content["id"]

    assert register_as(b"old3", 3) == 3
    assert register(hub, b"fresh") == 4  # new engines get ids after every id given out
    assert register_as(b"old1", 1) == 1
    assert register_as(b"clash", 3) == 5  # taken: the next free one
    assert register_as(b"bogus", -2) == 6
    assert register_as(b"bogus2", True) == 7


def test_a_hub_taking_over_keeps_the_gone_controllers_id_ledger(make_hub):
    clock = Clock()
    old = make_hub(heartbeat_timeout=3.0, clock=clock)
    assert [register(old, b"e%d" % i) for i in range(3)] == [0, 1, 2]
    kill_silently(old, clock, alive=[b"e0", b"e2"])  # engine 1 dies
    _, next_id, retired = old.id_ledger()
    assert (next_id, retired) == (3, [1])

    new = make_hub(heartbeat_timeout=3.0, clock=Clock())
    new.restore_ids(next_id, retired)

    def register_as(identity, wanted):
        msg = Message(MsgType.REGISTER, f"{identity!r}-r", {"hostname": "h", "id": wanted})
        return new.engine_message(identity, msg)[0].msg.content["id"]

    assert register(new, b"relaunched") == 3  # a new engine first: not 0, 1 or 2
    assert register_as(b"e2", 2) == 2  # survivors get their ids back
    assert register_as(b"e1", 1) == 4  # a dead engine's id, never again
    assert register_as(b"e0", 0) == 0


# -- every path of a task, and engines that come back from the dead ------------------------


def connect_and_engines(hub, n):
    hub.client_message(b"c", Message(MsgType.CONNECT, "c-0"))
    return [register(hub, b"e%d" % i) for i in range(n)]


def with_header(msg):
    return dataclasses.replace(msg, header=pack_header(msg))


def task(hub, task_id, **spec):
    content = {"kind": "map", "counts": [1], **spec}
    msg = Message(MsgType.TASK, task_id, content, [b"f"], session="c")
    return hub.client_message(b"c", with_header(msg))


def sent_tasks(out):
    """(engine identity, task wire id) of each task the hub sent an engine."""
    return [(o.identity, unpack_header(o.header, o.buffers).id)
            for o in out if o.to == "engine" and o.msg is None]


def reply(hub, engine, parent, status=Status.OK, **content):
    msg = Message(MsgType.REPLY, f"{engine.decode()}-{parent}", content, parent=parent,
                  status=status)
    return hub.engine_message(engine, with_header(msg))


def settled(out, task_id):
    """The client-bound messages (made or forwarded) about ``task_id`` in ``out``."""
    found = []
    for o in out:
        if o.to == "client":
            msg = o.msg or unpack_header(o.header, o.buffers)
            if msg.parent == task_id:
                found.append(msg)
    return found


def kill_silently(hub, clock, alive=()):
    for _ in range(hub.misses_allowed + 2):
        clock.now += 1.0
        ping = hub.next_ping()
        for identity in alive:
            hub.heartbeat(identity, ping)
    return hub.check_liveness()


def test_a_task_on_an_engine_that_dies_is_retried_elsewhere_then_fails(make_hub):
    clock = Clock()
    hub = make_hub(heartbeat_timeout=3.0, clock=clock, heartbeat_period=1.0)
    connect_and_engines(hub, 2)
    out = task(hub, "t-1", retries=1)
    (first, _), = sent_tasks(out)
    other = b"e1" if first == b"e0" else b"e0"
    out = kill_silently(hub, clock, alive=[other])
    assert settled(out, "t-1") == []  # retried, not failed
    (again, wire_id), = sent_tasks(out)
    assert again == other
    assert wire_id != "t-1"  # a re-send travels under a fresh id
    out = kill_silently(hub, clock)  # the second engine dies too: no retries left
    (failed,) = settled(out, "t-1")
    assert failed.status == Status.ENGINE_ERROR
    assert failed.content["kind"] == "died"
    # a late reply from the first engine, if it ever came back, settles nothing twice
    assert settled(reply(hub, first, "t-1"), "t-1") == []


def test_an_error_is_retried_and_a_refusal_tries_another_engine(make_hub):
    hub = make_hub(heartbeat_timeout=3.0, clock=Clock())
    connect_and_engines(hub, 2)
    (engine, _), = sent_tasks(task(hub, "t-1", retries=1))
    out = reply(hub, engine, "t-1", Status.ERROR, ename="ValueError")
    assert settled(out, "t-1") == []
    (engine2, wire2), = sent_tasks(out)
    out = reply(hub, engine2, wire2, Status.REFUSED)  # depend said no there
    (engine3, wire3), = sent_tasks(out)
    assert engine3 != engine2
    out = reply(hub, engine3, wire3, Status.REFUSED)  # every live engine refused
    (failed,) = settled(out, "t-1")
    assert failed.content["kind"] == "unmet"


def test_abort_while_running_and_withdrawal_racing_the_reply(make_hub):
    hub = make_hub(heartbeat_timeout=3.0, clock=Clock())
    connect_and_engines(hub, 1)
    (engine, _), = sent_tasks(task(hub, "t-1"))
    out = hub.client_message(b"c", Message(MsgType.TASK_ABORT, "c-2", {"id": "t-1"}))
    assert out[0].msg.content == {"state": "aborting", "id": "t-1"}
    assert out[1].msg.type == MsgType.INTERRUPT  # it runs: interrupted where it runs
    out = reply(hub, engine, "t-1", Status.ERROR, ename="KeyboardInterrupt")
    (aborted,) = settled(out, "t-1")
    assert aborted.status == Status.ABORTED
    # withdrawn (work stealing) but its reply came first: settled once, by the reply
    (engine, _), = sent_tasks(task(hub, "t-3"))
    first = reply(hub, engine, "t-3")
    late = reply(hub, engine, "t-3", Status.ABORTED, withdrawn=True)
    assert len(settled(first, "t-3")) == 1
    assert settled(late, "t-3") == []


def test_after_a_failed_task_fails_its_dependents(make_hub):
    hub = make_hub(heartbeat_timeout=3.0, clock=Clock())
    connect_and_engines(hub, 1)
    (engine, _), = sent_tasks(task(hub, "t-1"))
    assert task(hub, "t-2", after=["t-1"]) == []  # waits
    out = reply(hub, engine, "t-1", Status.ERROR, ename="ValueError")
    (doomed,) = settled(out, "t-2")
    assert doomed.content["kind"] == "unmet"
    out = task(hub, "t-3", after=["t-1"])  # after a task already failed: at once
    assert settled(out, "t-3")[0].content["kind"] == "unmet"
    out = task(hub, "t-4", after=["nobody-9"])
    assert "not known" in settled(out, "t-4")[0].content["error"]


def test_an_engine_back_from_the_dead_drops_its_queue_and_gets_a_new_id(make_hub):
    clock = Clock()
    hub = make_hub(heartbeat_timeout=3.0, clock=clock, heartbeat_period=1.0)
    connect_and_engines(hub, 1)
    hub.client_message(b"c", Message(MsgType.EXECUTE, "c-1", {"code": "1"}, targets=[0]))
    out = kill_silently(hub, clock)  # SIGSTOP: silent past the timeout
    assert [o.msg.status for o in out if o.msg.type == MsgType.REPLY] == [Status.ENGINE_ERROR]
    # SIGCONT: its next pong or reply is answered with "you were declared dead"
    (ask,) = hub.heartbeat(b"e0", hub.next_ping())
    assert ask.msg.content == {"event": "register", "reason": "declared dead"}
    late = reply(hub, b"e0", "c-1")
    assert [o.to for o in late] == ["engine"]  # its late reply reaches no client
    msg = Message(MsgType.REGISTER, "e0-back", {"hostname": "h", "pid": 1, "id": 0})
    assert hub.engine_message(b"e0", msg)[0].msg.content["id"] == 1  # never 0 again
    assert hub.engine_ids() == [1]


def test_an_engine_back_from_the_dead_that_would_rather_exit_is_not_registered(make_hub):
    clock = Clock()
    hub = make_hub(heartbeat_timeout=3.0, clock=clock, heartbeat_period=1.0)
    connect_and_engines(hub, 1)
    kill_silently(hub, clock)
    back = Message(MsgType.REGISTER, "e0-back", {"hostname": "h", "id": 0, "rejoin": False})
    (answer,) = hub.engine_message(b"e0", back)
    assert answer.msg.content == {"event": "register", "reason": "declared dead"}
    assert hub.engine_ids() == []


def test_an_interrupt_is_aimed_at_what_runs_and_escalated_when_unanswered(make_hub):
    clock = Clock()
    hub = make_hub(heartbeat_timeout=30.0, clock=clock)
    connect_and_engines(hub, 1)
    hub.client_message(b"c", with_header(Message(MsgType.EXECUTE, "c-1", {"code": "1"},
                                                 targets=[0])))
    hub.client_message(b"c", with_header(Message(MsgType.EXECUTE, "c-2", {"code": "2"},
                                                 targets=[0])))
    (out,) = hub.client_message(b"c", with_header(Message(MsgType.INTERRUPT, "c-3", {},
                                                          targets=[0])))
    assert unpack_header(out.header, ()).content == {"request": "c-1"}  # the running one
    assert hub.overdue_interrupts() == []  # not yet overdue
    clock.now += 1.5
    assert [e.id for e in hub.overdue_interrupts()] == [0]  # unanswered: signal it
    assert hub.overdue_interrupts() == []  # once
    # answered in time: nothing to escalate; another session's request is not aimed at
    (out,) = hub.client_message(b"c", with_header(Message(
        MsgType.INTERRUPT, "c-4", {"session": "other"}, targets=[0])))
    assert unpack_header(out.header, ()).content == {"session": "other"}
    reply(hub, b"e0", "c-4")
    clock.now += 5
    assert hub.overdue_interrupts() == []


def test_many_engines_stretch_the_ping_period_but_a_silent_one_still_dies_in_time(make_hub):
    from pxcluster.controller._hub import PINGS_PER_SECOND

    clock = Clock()
    hub = make_hub(heartbeat_timeout=3.0, clock=clock, heartbeat_period=0.5)
    register(hub, b"e0")
    assert (hub.beat_period(), hub.misses_allowed) == (0.5, 6)
    for i in range(1, int(1.5 * PINGS_PER_SECOND)):
        register(hub, b"e%d" % i)
    assert (hub.beat_period(), hub.misses_allowed) == (1.0, 3)  # capped at timeout / 3
    dead_at = None
    for beat in range(1, 10):
        clock.now += hub.beat_period()
        ping = hub.next_ping()
        for identity in [b"e%d" % i for i in range(1, len(hub.engines))]:
            hub.heartbeat(identity, ping)  # all answer but e0
        hub.check_liveness()
        if 0 not in hub.engines:
            dead_at = beat
            break
    assert dead_at is not None
    assert dead_at * 1.0 <= 3.0 + 2 * 1.0  # within the timeout and two periods
    assert len(hub.engines) == int(1.5 * PINGS_PER_SECOND) - 1
