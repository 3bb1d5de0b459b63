"""Benchmarks: the floor, a bare pyzmq relay with no framework around it.

Client -> relay process -> worker process -> relay -> client, over TCP on loopback as
pxcluster's controller does, with the same message pattern as the systems compared: a
function and its arguments pickled (cloudpickle) per call, numpy buffers sent out of band
without copies, one request fanned out to every worker, least-loaded choice for tasks. No
signing, no headers, no threads, no bookkeeping: what Python and ZeroMQ allow here.

Run as a script (kept free of other imports so that it starts fast)::

    python benchmarks/relay.py relay                 # prints "PORTS <client> <worker>"
    python benchmarks/relay.py worker URL IDENTITY   # serves requests from the relay

Client to relay: ``[target, request id, op, *payload]``; target is a worker identity,
``*`` (every worker), ``lb`` (the least loaded worker), ``?`` (how many workers are ready:
answered by the relay) or ``stop``. Worker to relay: ``[client, request id, status,
*payload]``, or ``["", "ready"]`` once at start.
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable
from typing import Any

import zmq

Frames = list[Any]


def _socket(ctx: zmq.Context[zmq.Socket[bytes]], kind: int) -> zmq.Socket[bytes]:
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    return sock


def run_relay() -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    front = _socket(ctx, zmq.ROUTER)
    back = _socket(ctx, zmq.ROUTER)
    front_port = front.bind_to_random_port("tcp://127.0.0.1")
    back_port = back.bind_to_random_port("tcp://127.0.0.1")
    print(f"PORTS {front_port} {back_port}", flush=True)
    load: dict[bytes, int] = {}  # ready workers and their outstanding requests
    poller = zmq.Poller()
    poller.register(front, zmq.POLLIN)
    poller.register(back, zmq.POLLIN)
    while True:
        for sock, _ in poller.poll():
            if sock is back:
                worker, client, *rest = back.recv_multipart(copy=False)
                if not client.bytes:
                    load[worker.bytes] = 0
                    continue
                load[worker.bytes] -= 1
                front.send_multipart([client, *rest], copy=False)
                continue
            client, target, *body = front.recv_multipart(copy=False)
            where = target.bytes
            if where == b"?":
                front.send_multipart([client, b"?", b"ok", str(len(load)).encode()])
                continue
            if where == b"stop":
                for worker_id in load:
                    back.send_multipart([worker_id, b"", b"", b"stop"])
                ctx.destroy(linger=1000)
                return
            if where == b"*":
                dests = list(load)
            elif where == b"lb":
                dests = [min(load, key=load.__getitem__)]
            else:
                dests = [where]
            for worker_id in dests:
                load[worker_id] += 1
                back.send_multipart([worker_id, client, *body], copy=False)


# -- worker ------------------------------------------------------------------------------


def _call(ns: dict[str, Any], payload: Frames) -> Frames:
    func, args = pickle.loads(payload[0]), pickle.loads(payload[1])
    return [pickle.dumps(func(*args), protocol=5)]


def _map(ns: dict[str, Any], payload: Frames) -> Frames:
    func, seq = pickle.loads(payload[0])
    return [pickle.dumps(list(map(func, seq)), protocol=5)]


def _exec(ns: dict[str, Any], payload: Frames) -> Frames:
    exec(payload[0].bytes.decode(), ns)
    return []


def _push(ns: dict[str, Any], payload: Frames) -> Frames:
    ns[payload[0].bytes.decode()] = pickle.loads(payload[1], buffers=payload[2:])
    return []


def _pull(ns: dict[str, Any], payload: Frames) -> Frames:
    buffers: list[pickle.PickleBuffer] = []
    head = pickle.dumps(ns[payload[0].bytes.decode()], protocol=5, buffer_callback=buffers.append)
    return [head, *(b.raw() for b in buffers)]


def _pid(ns: dict[str, Any], payload: Frames) -> Frames:
    return [str(os.getpid()).encode()]


HANDLERS: dict[bytes, Callable[[dict[str, Any], Frames], Frames]] = {
    b"call": _call,
    b"map": _map,
    b"exec": _exec,
    b"push": _push,
    b"pull": _pull,
    b"pid": _pid,
}


def run_worker(url: str, identity: str) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = _socket(ctx, zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, identity.encode())
    sock.connect(url)
    sock.send_multipart([b"", b"ready"])
    ns: dict[str, Any] = {}
    while True:
        client, request, op, *payload = sock.recv_multipart(copy=False)
        if op.bytes == b"stop":
            break
        try:
            reply, status = HANDLERS[op.bytes](ns, payload), b"ok"
        except Exception as exc:
            reply, status = [repr(exc).encode()], b"error"
        sock.send_multipart([client, request, status, *reply], copy=False)
    ctx.destroy(linger=1000)


if __name__ == "__main__":
    if sys.argv[1] == "relay":
        run_relay()
    else:
        run_worker(sys.argv[2], sys.argv[3])
