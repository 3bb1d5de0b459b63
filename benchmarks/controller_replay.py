"""The controller's own work per tiny task, replayed without sockets (a steady figure).

``task_cpu.py`` measures the controller among client and engines on the shared machine,
where its column moves by ±20 % from run to run. This replays the same traffic into a
``ControllerServer`` whose sockets are stubs, so only the controller's code runs:

    python benchmarks/controller_replay.py                  # CPU µs per task
    python benchmarks/controller_replay.py --record F.pkl   # make the traffic once
    python benchmarks/controller_replay.py --replay F.pkl [--messages K]

The traffic is a client's tiny MapTasks in BATCHes of ``--client-batch`` (64, as the
client sends a burst) and two engines' replies in BATCHes of ``--engine-batch`` (16),
made by a throwaway controller's dispatch. For a figure that does not depend on the load
of the machine, count instructions: replay under ``valgrind --tool=callgrind
--callgrind-out-file=/dev/null`` once in full and once with ``--messages 0``; the
difference of the "Collected" counts over the tasks is the controller's instructions per
task (deterministic to 0.1 % with ``PYTHONHASHSEED=0``).
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pxcluster import MapTask
from pxcluster.controller._server import ControllerServer
from pxcluster.profile import ClusterConfig, ProfilePaths
from pxcluster.wire import (
    Message,
    MsgType,
    Signer,
    decode,
    encode,
    encode_raw,
    pack_batch,
    pack_header,
    unbatch,
)

ENGINES = (b"engine-0", b"engine-1")
CLIENT = b"client-1"


def noop(x: object = None) -> None:
    return None


class _Stub:
    """A socket that sends nothing (records what the controller sent, when asked)."""

    def __init__(self, keep: bool) -> None:
        self.sent: list[list[Any]] = []
        self._keep = keep

    def send(self, frames: list[Any]) -> None:
        if self._keep:
            self.sent.append(frames)


def _server(keys: tuple[bytes, bytes] | None, keep: bool) -> ControllerServer:
    paths = ProfilePaths.for_profile("replay", Path(tempfile.mkdtemp()) / "profile")
    server = ControllerServer(ClusterConfig(), paths)
    if keys is not None:
        server._client_signer, server._engine_signer = Signer(keys[0]), Signer(keys[1])
    server.clients.close()
    server.engines.close()
    server.clients, server.engines = _Stub(False), _Stub(keep)  # type: ignore[assignment]
    return server


def _close(server: ControllerServer) -> None:
    server.store.close()
    server._ping.close()
    server._pong.close()
    server._ctx.close()


def _short_tasks(server: ControllerServer) -> None:
    """Both engines run tiny tasks already (their deep prefetch), as in a long run."""
    for engine in range(len(ENGINES)):
        for _ in range(20):
            server.hub.scheduler.ran(engine, 0.0001)


def record(tasks: int, client_batch: int, engine_batch: int) -> dict[str, Any]:
    """The messages a client and two engines send for ``tasks`` tiny tasks."""
    server = _server(None, keep=True)
    client_key, engine_key = server._client_key, server._engine_key
    client, engine = Signer(client_key), Signer(engine_key)
    log: list[tuple[str, list[bytes]]] = []
    counters = {"c": 0, 0: 0, 1: 0}

    def new_id(who: str | int) -> str:
        counters[who] += 1
        return f"{who}-{counters[who]}" if who != "c" else f"client1-{counters[who]}"

    def feed(kind: str, frames: Sequence[Any]) -> None:
        take = server._from_client if kind == "c" else server._from_engine
        take(list(frames))
        log.append((kind, [bytes(f) for f in frames]))

    for i, identity in enumerate(ENGINES):
        register = Message(MsgType.REGISTER, new_id(i), {"pid": 1, "hostname": "h"}, ts=time.time())
        feed("e", [identity, *encode(register, engine)])
    feed("c", [CLIENT, *encode(Message(MsgType.CONNECT, new_id("c"), ts=time.time()), client)])
    _short_tasks(server)
    spec, frames = MapTask(noop).encode()
    result = [pickle.dumps(None, protocol=5)]

    def answer() -> None:
        sent, server.engines.sent = server.engines.sent, []  # type: ignore[attr-defined]
        for message in sent:
            identity, e = message[0], ENGINES.index(message[0])
            msg = decode(message[1:], engine)
            got = unbatch(msg)[0] if msg.type == MsgType.BATCH else [msg]
            now = time.time()
            content = {"started": now, "completed": now, "stdout": "", "stderr": ""}
            replies = [
                Message(MsgType.REPLY, new_id(e), content, result, parent=t.id, engine=e, ts=now)
                for t in got
            ]
            for start in range(0, len(replies), engine_batch):
                group = replies[start : start + engine_batch]
                if len(group) == 1:
                    feed("e", [identity, *encode(group[0], engine)])
                    continue
                header, payload = pack_batch(
                    new_id(e), [(pack_header(r), r.buffers) for r in group]
                )
                feed("e", [identity, *encode_raw(header, payload, engine)])

    for _ in range(0, tasks, client_batch):
        now = time.time()
        msgs = [
            Message(MsgType.TASK, new_id("c"), dict(spec), frames, session="client1", ts=now)
            for _ in range(client_batch)
        ]
        header, payload = pack_batch(new_id("c"), [(pack_header(m), m.buffers) for m in msgs])
        feed("c", [CLIENT, *encode_raw(header, payload, client)])
        answer()
        answer()  # the tasks dispatched as the first replies freed room
    _close(server)
    return {"keys": (client_key, engine_key), "log": log, "tasks": tasks}


def replay(traffic: dict[str, Any], messages: int | None) -> tuple[float, int]:
    """Feed the recorded messages (the first ``messages`` after set-up) to a fresh
    controller; returns its CPU seconds and the tasks it recorded as finished."""
    server = _server(traffic["keys"], keep=False)
    log = traffic["log"]
    takes: dict[str, Callable[[list[Any]], None]] = {
        "c": server._from_client,
        "e": server._from_engine,
    }
    for kind, frames in log[:3]:  # registrations and the client's CONNECT
        takes[kind](frames)
    _short_tasks(server)
    body = log[3:] if messages is None else log[3 : 3 + messages]
    began, flushed = time.process_time(), time.monotonic()
    for kind, frames in body:
        takes[kind](frames)
        if time.monotonic() - flushed >= 0.2:  # as the server loop does
            server.store.flush()
            flushed = time.monotonic()
    server.store.flush()
    spent = time.process_time() - began
    finished = int(server.store.stats()["records"])
    _close(server)
    return spent, finished


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=8192)
    parser.add_argument("--client-batch", type=int, default=64)
    parser.add_argument("--engine-batch", type=int, default=16)
    parser.add_argument("--record", metavar="FILE")
    parser.add_argument("--replay", metavar="FILE")
    parser.add_argument("--messages", type=int, default=None)
    args = parser.parse_args()
    if args.replay:
        traffic = pickle.loads(Path(args.replay).read_bytes())
    else:
        traffic = record(args.tasks, args.client_batch, args.engine_batch)
        if args.record:
            Path(args.record).write_bytes(pickle.dumps(traffic))
            return
    spent, finished = replay(traffic, args.messages)
    if args.messages is None and finished != traffic["tasks"]:
        sys.exit(f"replay settled {finished} of {traffic['tasks']} tasks: traffic does not fit")
    if finished:
        print(f"controller CPU {spent / finished * 1e6:.1f} us per task ({finished} tasks)")


if __name__ == "__main__":
    main()
