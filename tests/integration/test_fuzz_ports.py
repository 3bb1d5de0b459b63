"""Fuzz each controller port with real sockets (a bounded count; benchmarks/fuzz.py runs
100,000 a port): the controller survives, answers, loses no engine, runs no fuzzed code,
and its memory stays within twice its idle size."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from pxcluster.testing import cluster_in, wait_for

_FUZZ = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz.py"


def load_fuzz():
    spec = importlib.util.spec_from_file_location("px_bench_fuzz", _FUZZ)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(240)
def test_hostile_messages_on_every_port_change_nothing(tmp_path):
    fuzz = load_fuzz()
    with cluster_in(tmp_path / "profile", n=2) as cluster:
        figures = fuzz.fuzz_ports(cluster, 1500, seed=11)
        log = (cluster.paths.log / "controller.log").read_text(errors="replace")
    for port, row in figures["ports"].items():
        assert row["alive"], f"controller died from fuzz on the {port} port"
        assert row["answered"], f"a good request after the {port} port's fuzz failed"
    assert not figures["code_ran"]
    assert figures["engines_same"]
    assert figures["rss_after"] <= 2 * figures["idle_rss"], figures
    # 4,500 dropped messages, but a rate-limited log: a few lines per kind of drop
    assert log.count("dropped a message") < 100, log[-3000:]


@pytest.mark.timeout(240)
def test_a_flood_from_a_peer_that_reads_nothing_stays_bounded(tmp_path):
    import json

    import msgpack
    import psutil
    import zmq

    from pxcluster.wire import DELIMITER, Message, MsgType, Signer, encode

    with cluster_in(tmp_path / "profile", n=1) as cluster:
        mec = cluster.client()
        client = json.loads(cluster.paths.client_file.read_text())
        controller = psutil.Process(cluster.controller_pid)
        idle = controller.memory_info().rss
        ctx = zmq.Context()
        try:
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 0)
            sock.connect(client["url"])
            # wrongly signed but well-formed: each would earn an error answer, never read
            for n in range(120_000):
                header = msgpack.packb({"t": 10, "i": f"flood-{n}", "c": {"code": "1"}})
                sock.send_multipart([DELIMITER, b"0" * 64, header])
            # one socket's messages are handled in order: once this one ran, the flood was
            # read (its answers still unread)
            probe = Message(MsgType.EXECUTE, "probe-1", {"code": "probe = 1"}, targets=[0])
            sock.send_multipart(encode(probe, Signer(client["key"].encode())))
            wait_for(lambda: "probe" in mec.keys(timeout=10)[0], timeout=300,
                     message="the flood and the probe behind it handled")
            grown = controller.memory_info().rss - idle
        finally:
            ctx.destroy(linger=0)
    assert grown < 32 * 2**20, f"controller grew {grown >> 20} MiB from one socket's flood"
