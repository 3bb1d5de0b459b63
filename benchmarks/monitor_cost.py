"""What the dashboard costs the controller: the MONITOR answer with 256 engines and a full
activity log (time to build and encode, size), and the per-reply bookkeeping the hub does
for it. Pure (no sockets): run `python benchmarks/monitor_cost.py`."""

import time

import msgpack

from pxcluster.controller import Hub
from pxcluster.wire import Message, MsgType, Signer, encode, new_key


def main():
    hub = Hub(heartbeat_timeout=3.0)
    for i in range(256):
        hub.engine_message(b"e%d" % i, Message(MsgType.REGISTER, f"r{i}",
                                               {"hostname": f"node{i // 16}", "pid": 1000 + i}))
    for i in range(100):
        hub.client_message(b"c%d" % i, Message(MsgType.CONNECT, f"c{i}"))
    signer = Signer(new_key())
    n = 20_000
    began = time.perf_counter()
    for i in range(n):
        engine = i % 256
        hub.client_message(b"c0", Message(MsgType.KEYS, f"k{i}", targets=[engine]))
        hub.engine_message(b"e%d" % engine, Message(MsgType.REPLY, f"x{i}", {}, parent=f"k{i}"))
    per_pair = (time.perf_counter() - began) / n
    for i in range(40):
        hub.client_message(b"c0", Message(MsgType.KEYS, f"err{i}", targets=[0]))
        hub.engine_message(b"e0", Message(
            MsgType.REPLY, f"y{i}", {"ename": "ValueError", "evalue": "bad",
                                     "traceback": "Traceback...\n" * 40},
            parent=f"err{i}", status=2 - 1))
    runs = 200
    began = time.perf_counter()
    for _ in range(runs):
        reply = hub.client_message(b"c1", Message(MsgType.MONITOR, "m", {"since": 0}))
        frames = encode(reply[0].msg, signer)
    per_monitor = (time.perf_counter() - began) / runs
    size = sum(len(f) for f in frames)
    content = reply[0].msg.content
    print(f"request + reply through the hub (with activity bookkeeping): {per_pair * 1e6:.1f} us")
    print(f"MONITOR answer, 256 engines, {len(content['events'])} events, "
          f"{len(content['errors'])} errors: {per_monitor * 1e3:.2f} ms to build and sign, "
          f"{size / 1024:.0f} KiB")
    print(f"msgpack size check: {len(msgpack.packb(content)) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
