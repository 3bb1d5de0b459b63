"""Benchmarks: the client side of the bare pyzmq relay (the floor); see ``benchmarks/relay.py``."""

from __future__ import annotations

import contextlib
import itertools
import pickle
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import cloudpickle
import zmq

from benchmarks.systems.base import NotAvailable, System

RELAY_SCRIPT = str(Path(__file__).resolve().parents[1] / "relay.py")


class RelayError(Exception):
    """A worker of the relay raised, or did not answer in time."""


def _bounds(length: int, parts: int) -> list[tuple[int, int]]:
    base, extra = divmod(length, parts)
    out, start = [], 0
    for i in range(parts):
        stop = start + base + (1 if i < extra else 0)
        out.append((start, stop))
        start = stop
    return out


class RelaySystem(System):
    name = "relay"
    how: ClassVar[dict[str, str]] = {
        "start": "spawn relay + N worker processes; wait until all said ready",
        "stop": "stop message; wait for every process to exit",
        "call": "[w0, call, cloudpickle(f), pickle(args)] -> pickle(result)",
        "execute_one": "[w0, exec, code]",
        "execute_all": "[*, exec, code], fanned out by the relay",
        "submit_each": "N x [lb, call, cloudpickle(f), pickle((x,))] to the least-loaded worker",
        "task_map": "the same with f pickled once for all N",
        "map_all": "one [w_i, map, cloudpickle((f, part))] per worker",
        "push": "[w0, push, name, pickle-5 head, *out-of-band buffers]",
        "pull": "[w0, pull, name] -> pickle-5 head + out-of-band buffers",
        "scatter": "one push of a contiguous slice per worker",
        "gather": "one pull per worker, numpy.concatenate",
    }

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []
        self._ctx: zmq.Context[zmq.Socket[bytes]] | None = None
        self._sock: zmq.Socket[bytes] | None = None
        self._workers: list[bytes] = []
        self._ids = itertools.count()
        self.timeout = 60.0

    def versions(self) -> dict[str, str]:
        return {"pyzmq": zmq.__version__, "libzmq": zmq.zmq_version()}

    # -- lifetime ----------------------------------------------------------------------------

    def start(self, n: int) -> None:
        relay = subprocess.Popen(
            [sys.executable, RELAY_SCRIPT, "relay"],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        self._procs.append(relay)
        assert relay.stdout is not None
        line = relay.stdout.readline().decode().split()
        if len(line) != 3 or line[0] != "PORTS":
            raise RelayError(f"the relay did not start (said {line!r})")
        client_port, worker_port = line[1], line[2]
        self._workers = [f"w{i}".encode() for i in range(n)]
        for ident in self._workers:
            self._procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        RELAY_SCRIPT,
                        "worker",
                        f"tcp://127.0.0.1:{worker_port}",
                        ident.decode(),
                    ],
                    stdin=subprocess.DEVNULL,
                )
            )
        self._ctx = zmq.Context()
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
        sock.connect(f"tcp://127.0.0.1:{client_port}")
        self._sock = sock
        deadline = time.monotonic() + self.timeout
        while self.engine_count() < n:
            if time.monotonic() > deadline:
                raise RelayError(f"only {self.engine_count()} of {n} relay workers ready")
            time.sleep(0.005)

    def stop(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(zmq.ZMQError):
                self._sock.send_multipart([b"stop"])
        for proc in self._procs:
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        self._procs.clear()
        if self._ctx is not None:
            self._ctx.destroy(linger=0)
        self._ctx = self._sock = None

    def engine_count(self) -> int:
        self._send(b"?", b"", [])
        return int(self._recv()[0])

    def engine_pids(self) -> list[int]:
        return [int(bytes(self._rpc(w, b"pid", [])[0])) for w in self._workers]

    # -- messages ----------------------------------------------------------------------------

    def _send(self, target: bytes, op: bytes, payload: Sequence[Any]) -> bytes:
        assert self._sock is not None, "not started"
        request = str(next(self._ids)).encode()
        self._sock.send_multipart([target, request, op, *payload], copy=False)
        return request

    def _recv(self) -> list[Any]:
        """The payload of the next reply; raises RelayError for a worker's error."""
        return self._recv_with_id()[1]

    def _recv_with_id(self) -> tuple[bytes, list[Any]]:
        assert self._sock is not None, "not started"
        if not self._sock.poll(int(self.timeout * 1000)):
            raise RelayError(f"no reply from the relay within {self.timeout} s")
        request, status, *payload = self._sock.recv_multipart(copy=False)
        if status.bytes != b"ok":
            raise RelayError(bytes(payload[0]).decode())
        return request.bytes, payload

    def _rpc(self, target: bytes, op: bytes, payload: Sequence[Any]) -> list[Any]:
        self._send(target, op, payload)
        return self._recv()

    def _each(self, ops: list[tuple[bytes, bytes, list[Any]]]) -> list[list[Any]]:
        """Send every request, then collect the replies in request order."""
        order = {self._send(t, op, p): i for i, (t, op, p) in enumerate(ops)}
        replies: list[list[Any]] = [[] for _ in ops]
        for _ in ops:
            request, payload = self._recv_with_id()
            replies[order[request]] = payload
        return replies

    # -- workloads ---------------------------------------------------------------------------

    def call(self, func: Callable[[], Any]) -> Any:
        frames = [cloudpickle.dumps(func, protocol=5), pickle.dumps((), protocol=5)]
        return pickle.loads(self._rpc(self._workers[0], b"call", frames)[0])

    def execute_one(self, code: str) -> None:
        self._rpc(self._workers[0], b"exec", [code.encode()])

    def execute_all(self, code: str) -> None:
        self._send(b"*", b"exec", [code.encode()])
        for _ in self._workers:
            self._recv()

    def submit_each(self, func: Callable[[Any], Any], args: Sequence[Any]) -> list[Any]:
        ops = [
            (b"lb", b"call", [cloudpickle.dumps(func, protocol=5), pickle.dumps((a,), protocol=5)])
            for a in args
        ]
        return [pickle.loads(r[0]) for r in self._each(ops)]

    def task_map_default(self, func: Callable[[Any], Any], args: Sequence[Any]) -> list[Any]:
        raise NotAvailable("the floor has no chunking of its own: see the row above")

    def task_map(self, func: Callable[[Any], Any], args: Sequence[Any]) -> list[Any]:
        blob = cloudpickle.dumps(func, protocol=5)
        ops = [(b"lb", b"call", [blob, pickle.dumps((a,), protocol=5)]) for a in args]
        return [pickle.loads(r[0]) for r in self._each(ops)]

    def map_all(self, func: Callable[[Any], Any], seq: Sequence[Any]) -> list[Any]:
        bounds = _bounds(len(seq), len(self._workers))
        ops = [
            (w, b"map", [cloudpickle.dumps((func, seq[lo:hi]), protocol=5)])
            for w, (lo, hi) in zip(self._workers, bounds, strict=True)
        ]
        out: list[Any] = []
        for reply in self._each(ops):
            out.extend(pickle.loads(reply[0]))
        return out

    @staticmethod
    def _push_frames(name: str, value: Any) -> list[Any]:
        buffers: list[pickle.PickleBuffer] = []
        head = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
        return [name.encode(), head, *(b.raw() for b in buffers)]

    def push(self, name: str, value: Any) -> None:
        self._rpc(self._workers[0], b"push", self._push_frames(name, value))

    def pull(self, name: str) -> Any:
        head, *buffers = self._rpc(self._workers[0], b"pull", [name.encode()])
        return pickle.loads(head, buffers=buffers)

    def scatter(self, name: str, array: Any) -> None:
        bounds = _bounds(len(array), len(self._workers))
        self._each(
            [
                (w, b"push", self._push_frames(name, array[lo:hi]))
                for w, (lo, hi) in zip(self._workers, bounds, strict=True)
            ]
        )

    def gather(self, name: str) -> Any:
        import numpy

        replies = self._each([(w, b"pull", [name.encode()]) for w in self._workers])
        return numpy.concatenate([pickle.loads(h, buffers=b) for h, *b in replies])
