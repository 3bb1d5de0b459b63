"""What one TCP connection costs a ROUTER process in libzmq alone, without pxcluster.

Run: ``python benchmarks/zmq_connection_memory.py [N] [SOCKETS] [MESSAGES]`` (defaults 1000,
1, 1000). One process binds SOCKETS ROUTERs; a child opens N DEALERs to each and sends
MESSAGES short messages on every one, paced (one round every 20 ms) so the ROUTER keeps up
and nothing queues. The ROUTER process's RSS growth over N is printed after the first
round of messages and after the last (and again after ``malloc_trim`` on glibc).

Why: the controller's memory per directly connected engine (``scale.py``) is almost all
libzmq's per-connection buffers; its pipes hold messages in chunks of 256 (16 KB), and a
connection that carries traffic settles with a spare chunk and some heap between chunks.
This measures that floor, so the controller's own figure can be read against it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
import subprocess
import sys
import time

import psutil
import zmq

_PACE_S = 0.02


def _raise_fd_limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def dealers(n: int, ports: list[int], messages: int) -> None:
    """The child: N DEALERs to each port, MESSAGES rounds of one message on each."""
    ctx = zmq.Context()
    ctx.max_sockets = n * len(ports) + 16
    socks = []
    for _ in range(n):
        for port in ports:
            sock = ctx.socket(zmq.DEALER)
            sock.connect(f"tcp://127.0.0.1:{port}")
            socks.append(sock)
    for _ in range(messages):
        for sock in socks:
            sock.send(b"hi")
        time.sleep(_PACE_S)
    print("sent", flush=True)
    sys.stdin.read()  # held open until the parent has measured
    ctx.destroy(linger=0)


def receive(routers: list[zmq.Socket[bytes]], count: int) -> None:
    """Take ``count`` messages from the routers (a 10 s silence is an error)."""
    poller = zmq.Poller()
    for router in routers:
        poller.register(router, zmq.POLLIN)
    got = 0
    while got < count:
        ready = poller.poll(10_000)
        if not ready:
            raise SystemExit(f"only {got} of {count} messages came")
        for sock, _ in ready:
            sock.recv_multipart()
            got += 1


def main() -> None:
    given = [int(a) for a in sys.argv[1:4]]
    n, sockets, messages = given + [1000, 1, 1000][len(given) :]
    _raise_fd_limit()
    ctx = zmq.Context()
    routers = [ctx.socket(zmq.ROUTER) for _ in range(sockets)]
    ports = [r.bind_to_random_port("tcp://127.0.0.1") for r in routers]
    me = psutil.Process()
    time.sleep(0.5)
    before = me.memory_info().rss
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", str(n), ",".join(map(str, ports)), str(messages)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        receive(routers, n * sockets)
        first = me.memory_info().rss
        receive(routers, n * sockets * (messages - 1))
        assert child.stdout is not None
        child.stdout.readline()
        time.sleep(1.0)
        last = me.memory_info().rss
        name = ctypes.util.find_library("c")
        trimmed = None
        if name is not None and hasattr(ctypes.CDLL(name), "malloc_trim"):
            ctypes.CDLL(name).malloc_trim(0)
            trimmed = me.memory_info().rss
    finally:
        child.kill()
        child.wait()
    per = n * sockets * 1024
    print(f"{n} peers x {sockets} connections, {messages} messages each")
    print(f"  after one message:  {(first - before) / per:.1f} KB per connection")
    print(f"  after all of them:  {(last - before) / per:.1f} KB per connection")
    if trimmed is not None:
        print(f"  after malloc_trim:  {(trimmed - before) / per:.1f} KB per connection")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _raise_fd_limit()
        dealers(int(sys.argv[2]), [int(p) for p in sys.argv[3].split(",")], int(sys.argv[4]))
    else:
        main()
