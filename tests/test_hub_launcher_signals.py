"""Controller layer: signals the server could not send (engines on other hosts) go to the
cluster's keeper through MONITOR, and its LAUNCHER_ENDED settles the kill; hub driven
directly with messages and a fake clock."""

import signal

from pxcluster.controller._hub import KILL_GRACE
from pxcluster.wire import Message, MsgType, Status


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def register(hub, identity):  # type: ignore[no-untyped-def]
    reply = hub.engine_message(
        identity, Message(MsgType.REGISTER, f"{identity!r}-r", {"hostname": "far", "pid": 7})
    )
    return reply[0].msg.content["id"]


def wanted(hub):  # type: ignore[no-untyped-def]
    report = hub.client_message(b"keeper", Message(MsgType.MONITOR, "k-1", {"since": 2**62}))
    return report[0].msg.content["signal_wanted"]


def test_an_overdue_kill_is_offered_to_the_keeper_and_its_report_settles_the_kill(make_hub):
    clock = Clock()
    hub = make_hub(heartbeat_timeout=30.0, clock=clock)
    register(hub, b"e0")
    register(hub, b"e1")
    hub.client_message(b"c", Message(MsgType.SHUTDOWN, "c-1", targets=[1]))
    clock.now += KILL_GRACE + 0.1
    (overdue,) = hub.overdue_kills()
    hub.want_signal(overdue.id, signal.SIGKILL)  # as the server does for another host
    assert wanted(hub) == [[1, signal.SIGKILL]]

    # a LAUNCHER_ENDED naming an engine nobody asked to kill changes nothing
    out = hub.client_message(b"k", Message(MsgType.LAUNCHER_ENDED, "k-2", {"engines": [0]}))
    assert [o.msg.status for o in out] == [Status.OK]
    assert hub.engine_ids() == [0, 1]

    out = hub.client_message(
        b"k", Message(MsgType.LAUNCHER_ENDED, "k-3", {"engines": [1], "how": "ssh kill"})
    )
    kill_reply = [o.msg for o in out if o.identity == b"c" and o.msg.type == MsgType.REPLY]
    assert [(m.parent, m.status) for m in kill_reply] == [("c-1", Status.OK)]
    assert hub.engine_ids() == [0]
    gone = hub.monitor_report(2**62)["gone"]
    assert [(g["id"], g["event"], g["why"]) for g in gone] == [(1, "stopped", "ssh kill")]
    assert wanted(hub) == []


def test_a_wanted_interrupt_is_offered_for_a_while_only(make_hub):
    clock = Clock()
    hub = make_hub(heartbeat_timeout=300.0, clock=clock)
    register(hub, b"e0")
    hub.want_signal(0, signal.SIGUSR1)
    hub.want_signal(5, signal.SIGUSR1)  # no such engine: nothing to offer
    assert wanted(hub) == [[0, signal.SIGUSR1]]
    # it cannot settle a kill
    hub.client_message(b"k", Message(MsgType.LAUNCHER_ENDED, "k-1", {"engines": [0]}))
    assert hub.engine_ids() == [0]
    clock.now += 31
    assert wanted(hub) == []
