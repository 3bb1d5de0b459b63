"""Controller layer: how the hub keeps track of direct calls (DIRECT messages from engines),
driven directly with messages and a fake clock."""

from pxcluster.wire import Message, MsgType, Status


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


PORT = "ipc:///dev/shm/pxdirect-1-abc.sock"


def register(hub, identity, direct=True):
    content = {"hostname": "h", "pid": 1, "host": "here"}
    if direct:
        content.update(direct=PORT, direct_key="ab" * 32)
    out = hub.engine_message(identity, Message(MsgType.REGISTER, f"{identity!r}-r", content))
    return out[0].msg.content["id"]


def direct(state, request_id, n):
    content = {"state": state, "kind": int(MsgType.EXECUTE)}
    return Message(MsgType.DIRECT, f"eng-{n}", content, parent=request_id)


def queues(hub):
    return hub.client_message(b"cli1-x", Message(MsgType.QUEUE_STATUS, "cli1-x-q"))[0].msg.content[
        "queues"
    ]


def test_clients_learn_each_engines_direct_port_and_key(make_hub):
    hub = make_hub(heartbeat_timeout=3.0, clock=Clock())
    hub.client_message(b"cli1-x", Message(MsgType.CONNECT, "cli1-x-0"))
    register(hub, b"e0")
    notes = hub.engine_message(b"e1", Message(MsgType.REGISTER, "r", {"host": "here"}))[1:]
    assert notes[0].msg.content["event"] == "registered"
    assert "direct" not in notes[0].msg.content  # an engine without a port offers none
    hosts = hub.client_message(b"cli1-x", Message(MsgType.CONNECT, "cli1-x-1"))[0].msg.content
    assert hosts["hosts"] == [[0, "here", PORT, "ab" * 32], [1, "here", "", ""]]


def test_announced_direct_call_is_queued_until_done(make_hub):
    hub = make_hub(heartbeat_timeout=3.0, clock=Clock())
    hub.client_message(b"cli1-x", Message(MsgType.CONNECT, "cli1-x-0"))
    register(hub, b"e0")
    assert hub.engine_message(b"e0", direct("queued", "cli1-x-7", 1)) == []
    assert queues(hub) == [[0, 1]]
    assert hub.engines[0].outstanding["cli1-x-7"].client == b"cli1-x"  # failures go there
    assert hub.engine_message(b"e0", direct("done", "cli1-x-7", 2)) == []  # nothing forwarded
    assert queues(hub) == [[0, 0]]
    events = hub.monitor_report(0)["events"]
    assert [e[3] for e in events] == ["cli1-x-7"]


def test_done_before_queued_leaves_nothing_queued(make_hub):
    hub = make_hub(heartbeat_timeout=3.0, clock=Clock())
    register(hub, b"e0")
    hub.engine_message(b"e0", direct("done", "cli1-x-3", 1))
    hub.engine_message(b"e0", direct("queued", "cli1-x-3", 2))
    assert queues(hub) == [[0, 0]]
    assert hub.engines[0].done_early == set()


def test_an_engine_that_dies_fails_its_announced_direct_call(make_hub):
    clock = Clock()
    hub = make_hub(heartbeat_timeout=3.0, clock=clock)
    hub.client_message(b"cli1-x", Message(MsgType.CONNECT, "cli1-x-0"))
    register(hub, b"e0")
    hub.engine_message(b"e0", direct("queued", "cli1-x-9", 1))
    clock.now += 10
    for _ in range(10):
        hub.next_ping()
    out = hub.check_liveness()
    failed = [o.msg for o in out if o.msg is not None and o.msg.type == MsgType.REPLY]
    assert [(m.parent, m.status, m.engine) for m in failed] == [
        ("cli1-x-9", Status.ENGINE_ERROR, 0)
    ]


def test_quick_direct_calls_reported_in_bulk_reach_the_history(make_hub):
    hub = make_hub(heartbeat_timeout=3.0, clock=Clock())
    register(hub, b"e0")
    ran = [
        ["cli1-x-1", int(MsgType.APPLY), int(Status.OK), 1.0, 1.001, "", "", ""],
        ["cli1-x-2", int(MsgType.EXECUTE), int(Status.ERROR), 2.0, 2.5, "ZeroDivisionError",
         "division by zero", "Traceback ...\nZeroDivisionError: division by zero"],
        ["not", "a", "record"],
    ]  # fmt: skip
    report = Message(MsgType.DIRECT, "eng-1", {"state": "ran", "ran": ran})
    assert hub.engine_message(b"e0", report) == []
    monitor = hub.monitor_report(0)
    assert [(e[1], e[2], e[3]) for e in monitor["events"]] == [
        (0, "APPLY", "cli1-x-1"),
        (0, "EXECUTE", "cli1-x-2"),
    ]
    assert [(e["id"], e["ename"]) for e in monitor["errors"]] == [("cli1-x-2", "ZeroDivisionError")]
    assert queues(hub) == [[0, 0]]
