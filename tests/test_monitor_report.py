"""Controller layer: the MONITOR reply, driven through the hub with messages and a fake clock."""

from pxcluster.controller._activity import EVENTS_PER_REPLY
from pxcluster.wire import Message, MsgType, Status


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def register(hub, identity, pid):
    msg = Message(MsgType.REGISTER, f"{identity!r}-r", {"hostname": "node7", "pid": pid})
    return hub.engine_message(identity, msg)[0].msg.content["id"]


def monitor(hub, since=0):
    out = hub.client_message(b"dash", Message(MsgType.MONITOR, f"m-{since}", {"since": since}))
    return out[0].msg.content


def test_monitor_reports_engines_queues_clients_and_finished_requests(make_hub):
    clock = Clock()
    hub = make_hub(heartbeat_timeout=3.0, clock=clock)
    hub.client_message(b"alice", Message(MsgType.CONNECT, "a-0"))
    register(hub, b"e0", 111)
    register(hub, b"e1", 222)
    hub.client_message(b"alice", Message(MsgType.EXECUTE, "a-1", {"code": "1"}, targets=[0, 1]))
    clock.now += 0.25
    report = monitor(hub)
    assert report["engine_rows"] == [[0, "node7", 111, 1, 0.25], [1, "node7", 222, 1, 0.25]]
    assert report["clients"] == [["alice", 0.25]]
    assert (report["finished"], report["events"]) == (0, [])

    hub.engine_message(b"e1", Message(MsgType.REPLY, "e-1", {}, parent="a-1"))
    error = {"ename": "ZeroDivisionError", "evalue": "division by zero", "traceback": "TB"}
    hub.engine_message(
        b"e0", Message(MsgType.REPLY, "e-2", error, parent="a-1", status=Status.ERROR)
    )
    report = monitor(hub)
    assert [e[1:4] + e[5:] for e in report["events"]] == [
        [1, "EXECUTE", "a-1", 0.25, "OK"],
        [0, "EXECUTE", "a-1", 0.25, "ERROR"],
    ]
    assert [(e["engine"], e["ename"], e["traceback"]) for e in report["errors"]] == [
        (0, "ZeroDivisionError", "TB")
    ]
    assert (report["finished"], report["errors_total"]) == (2, 1)
    assert [e[3] for e in report["engine_rows"]] == [0, 0]
    # asking with the last sequence number seen gives only what is newer: nothing
    assert monitor(hub, since=report["seq"])["events"] == []


def test_monitor_remembers_dead_engines_and_caps_events_per_reply(make_hub):
    clock = Clock()
    hub = make_hub(heartbeat_timeout=3.0, clock=clock)
    register(hub, b"e0", 111)
    for i in range(EVENTS_PER_REPLY + 10):
        hub.client_message(b"c", Message(MsgType.KEYS, f"c-{i}", targets=[0]))
        hub.engine_message(b"e0", Message(MsgType.REPLY, f"e-{i}", {}, parent=f"c-{i}"))
    hub.remove_engine(0, "no heartbeat for 3.1 s")
    report = monitor(hub)
    assert report["finished"] == EVENTS_PER_REPLY + 10
    assert len(report["events"]) == EVENTS_PER_REPLY
    assert report["events"][-1][3] == f"c-{EVENTS_PER_REPLY + 9}"  # the newest are kept
    assert report["engine_rows"] == []
    assert [(g["id"], g["pid"], g["event"]) for g in report["gone"]] == [(0, 111, "died")]


def test_top_screen_fits_the_terminal_and_shows_dead_engines_and_jobs():
    from pxcluster.monitor import ClusterSnapshot, EngineRow, render_text
    from pxcluster.monitor._source import _job_name

    job = _job_name({"launcher": "slurm", "job_id": "1234", "array_index": 3})
    assert job == "slurm 1234_3"
    engines = tuple(EngineRow(i, "node1", 100 + i, "busy" if i % 2 else "idle", i % 2, 0.2,
                              50_000_000, 12.0, job=job) for i in range(300))
    dead = EngineRow(300, "node2", 999, "dead", 0, 4.0, why="no heartbeat for 3.1 s")
    snap = ClusterSnapshot(1e9, "big", "tcp://h:1", True, (*engines, dead),
                           throughput=((1.0, 10.0), (2.0, 20.0)), finished=30)
    lines = render_text(snap, width=90, height=30, unicode=False)
    assert len(lines) == 30
    assert all(len(line) <= 90 for line in lines)
    assert "engines: 300 live (150 busy, 150 idle), 1 dead" in lines[1]
    assert "throughput: 20.0/s" in lines[2]
    assert any("... and" in line and "more engines" in line for line in lines)
    assert all(line.isascii() for line in lines)
    tall = render_text(snap, width=120, height=400)
    dead_line = next(line for line in tall if " DEAD " in line)
    assert "999" in dead_line
    assert "ago" in dead_line
    assert "slurm 1234_3" in next(line for line in tall if "node1" in line)
