"""Nothing a peer sends ends a relay's loop or the controller's: a real ``pxrelay`` process
between a real ROUTER standing for its controller and real local peers, and a real
controller sent malformed relay notes."""

from __future__ import annotations

import subprocess
import sys
import time

import msgpack
import pytest

from pxcluster.profile import EngineConnection, read_engine_connection, write_connection
from pxcluster.testing import cluster_in
from pxcluster.transport import Context, bind, connect
from pxcluster.wire import DELIMITER, FAN, NOTE, pack_note, unpack_note

T = 30


def recv(chan, timeout: float = T):
    """The next message on ``chan``; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frames = chan.recv_nowait()
        if frames is not None:
            return [bytes(f) for f in frames]
        time.sleep(0.005)
    raise AssertionError(f"nothing arrived within {timeout} s")


@pytest.mark.timeout(90)
def test_a_relay_survives_bad_frames_from_its_controller_and_its_engines(tmp_path):
    ctx = Context()
    controller, port = bind(ctx, "router", "127.0.0.1")
    conn = tmp_path / "engine.json"
    write_connection(conn, EngineConnection(f"tcp://127.0.0.1:{port}", b"k" * 32))
    folder = tmp_path / "relay"
    relay = subprocess.Popen(
        [sys.executable, "-m", "pxcluster.cli.relay", "--file", str(conn),
         "--folder", str(folder), "--controller-timeout", "60"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        hello = recv(controller)
        name = hello[0]
        assert unpack_note(hello[2])["kind"] == "hello"
        # from "the controller": fan-outs with bad lists, bad notes, a signal for nobody,
        # a message to an engine that is not there, frames that are not a message
        for frames in (
            [FAN, b"\xc1not msgpack", DELIMITER, b"s", b"h"],
            [FAN, msgpack.packb([1, 2, 3]), DELIMITER],
            [FAN],
            [NOTE, b"\x00\x01"],
            [NOTE, msgpack.packb({"kind": "welcome"})],
            [NOTE, msgpack.packb({"kind": "signal", "engine": b"nobody", "signum": 9})],
            [NOTE, b"x", b"y"],
            [b"nobody", DELIMITER, b"s", b"h"],
            [DELIMITER, b"s", b"h"],
            [b"lonely"],
        ):
            controller.send([name, *frames])
        # from local peers: a name the relay reserves, a single frame, a half message
        engine_url = f"ipc://{folder / 'engine'}"
        bad = connect(ctx, "dealer", engine_url, identity=b"<PX|FAN>x")
        bad.send([DELIMITER, b"s", b"h"])
        odd = connect(ctx, "dealer", engine_url, identity=b"odd")
        odd.send([b"only"])
        odd.send([DELIMITER])
        # the relay still forwards both ways: up with the engine's name, down one by one
        # and fanned out
        engine = connect(ctx, "dealer", engine_url, identity=b"engine-1")
        engine.send([DELIMITER, b"sig", b"head", b"payload"])
        got = recv(controller)
        while got[1] != b"engine-1":  # the odd peer's frames came through too
            got = recv(controller)
        assert got == [name, b"engine-1", DELIMITER, b"sig", b"head", b"payload"]
        controller.send([name, b"engine-1", DELIMITER, b"s", b"h"])
        assert recv(engine) == [DELIMITER, b"s", b"h"]
        controller.send([name, FAN, msgpack.packb([b"engine-1", b"gone-one"]), DELIMITER, b"f"])
        assert recv(engine) == [DELIMITER, b"f"]
        assert relay.poll() is None
    finally:
        relay.terminate()
        relay.wait(timeout=T)
        ctx.close()


@pytest.mark.timeout(90)
def test_the_controller_survives_bad_relay_notes_and_routing(tmp_path):
    with cluster_in(tmp_path / "p", n=1) as cluster:
        info = read_engine_connection(cluster.paths.engine_file)
        ctx = Context()
        try:
            peer = connect(ctx, "dealer", info.url, identity=b"relay-test")
            for frames in (
                [NOTE, b"\xc1"],
                [NOTE, msgpack.packb({"kind": "hello"})],
                [NOTE, msgpack.packb({"kind": "gone", "engines": [1, "x"], "why": "?"})],
                [NOTE, msgpack.packb({"kind": "nonsense"})],
                [NOTE, msgpack.packb({"kind": "signal", "engine": b"e", "signum": 9})],
                [NOTE, b"x" * (5 << 20)],
                [b"e" * 300, DELIMITER, b"s", b"h"],  # a second routing frame too long
                [b"", DELIMITER, b"s", b"h"],
                [FAN, msgpack.packb([b"e"]), DELIMITER, b"s", b"h"],
            ):
                peer.send(frames)
            peer.send(pack_note("hello", pid=1, hostname="h", engines=[b"someone"]))
            welcome = recv(peer)
            assert unpack_note(welcome[1])["kind"] == "welcome"
            notify = recv(peer)  # "someone" is not registered: asked to register
            assert notify[0] == b"someone"
            assert cluster.client(timeout=T).execute("1 + 1", timeout=T)[0]["display"] == "2"
        finally:
            ctx.close()
