"""Controller layer: the hub state machine driven directly with messages and a fake clock."""

from pxcluster.wire import Message, MsgType, Status


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
    assert late[0].msg.content == {"event": "register"}


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
