"""CurveZMQ (``--curve``): every connection encrypted; only peers that know the
controller's public key (from a connection file) get through."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
import zmq

from pxcluster import client
from pxcluster.testing import cluster_in, controller_restarted
from pxcluster.wire import Message, MsgType, Signer, decode, encode

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CurveZMQ")
T = 30


@pytest.fixture
def curve_cluster(tmp_path):
    with cluster_in(tmp_path / "p", n=2, heartbeat_timeout=2.0,
                    controller_args=["--curve"]) as cluster:
        yield cluster


def ask_controller(url, key, curve_server=None):
    """Send a signed CONNECT from a raw socket; the reply, or None after 1.5 s."""
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        if curve_server is not None:
            public, secret = zmq.curve_keypair()
            sock.curve_serverkey = curve_server
            sock.curve_publickey = public
            sock.curve_secretkey = secret
        sock.connect(url)
        signer = Signer(key)
        sock.send_multipart(encode(Message(MsgType.CONNECT, "raw-1"), signer))
        if not sock.poll(1500):
            return None
        return decode(sock.recv_multipart(), signer)
    finally:
        ctx.destroy(linger=0)


def test_a_curve_cluster_computes_and_stays_alive(curve_cluster):
    mec = curve_cluster.client()
    data = json.loads(curve_cluster.paths.client_file.read_text())
    assert len(data["curve_serverkey"]) == 40  # the public key only
    assert "secret" not in json.dumps(data)
    mec.execute("import os; a = 6 * 7")
    assert mec.pull("a", timeout=T) == [42, 42]
    big = np.arange(300_000.0)  # through shared memory on this host, messages encrypted
    mec.push({"big": big}, timeout=T)
    assert float(mec[1].pull("big", timeout=T).sum()) == float(big.sum())
    with client.TaskClient(profile_dir=curve_cluster.paths.dir) as tc:
        assert tc.map(abs, [-1, -2, -3], timeout=T) == [1, 2, 3]
    # Heartbeats travel encrypted too: past the heartbeat timeout (2 s) nobody was declared
    # dead. Waiting is the point here, so this test sleeps.
    pids = mec.apply(os.getpid)
    time.sleep(3)
    assert mec.get_ids() == [0, 1]
    assert mec.apply(os.getpid) == pids


def test_only_peers_with_the_controllers_key_get_through(curve_cluster):
    data = json.loads(curve_cluster.paths.client_file.read_text())
    url, key = data["url"], data["key"].encode("ascii")
    server = data["curve_serverkey"].encode("ascii")
    assert ask_controller(url, key) is None  # plain ZeroMQ: no handshake, no answer
    stranger, _ = zmq.curve_keypair()
    assert ask_controller(url, key, curve_server=stranger) is None  # another server's key
    reply = ask_controller(url, key, curve_server=server)
    assert reply is not None
    assert reply.content["engines"] == [0, 1]


def test_a_restarted_curve_controller_keeps_its_keys(curve_cluster):
    mec = curve_cluster.client()
    with controller_restarted(curve_cluster, mec):  # engines back over CurveZMQ
        mec.execute("b = 1", timeout=T)
        assert mec.pull("b", timeout=T) == [1, 1]
