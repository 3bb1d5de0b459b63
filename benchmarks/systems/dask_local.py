"""Benchmarks: Dask distributed on a ``LocalCluster`` of single-threaded worker processes.

Dask has no per-worker namespace to execute code in: ``execute`` runs ``exec`` through
``client.run`` in a dict kept on each worker object, the closest thing to an engine's
namespace. Push and pull are ``client.scatter`` to one worker and ``client.gather`` of its
future, with Dask's defaults.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import dask
import distributed
from distributed import Client, Future, LocalCluster

from benchmarks.systems.base import System

TIMEOUT = 120.0


def _make_exec() -> Callable[..., None]:
    def exec_in_worker(code: str, dask_worker: Any = None) -> None:
        if not hasattr(dask_worker, "bench_namespace"):
            dask_worker.bench_namespace = {}
        exec(code, dask_worker.bench_namespace)

    return exec_in_worker


class DaskSystem(System):
    name = "dask"
    how: ClassVar[dict[str, str]] = {
        "start": "LocalCluster(n_workers=N, threads_per_worker=1); Client(cluster)",
        "stop": "client.close(); cluster.close()",
        "call": "client.submit(noop, pure=False, workers=[w0]).result()",
        "execute_one": "client.run(exec_in_worker, code, workers=[w0])",
        "execute_all": "client.run(exec_in_worker, code)",
        "submit_each": "client.submit(f, x, pure=False) each; client.gather(futures)",
        "task_map": "client.gather(client.map(f, seq, pure=False))",
        "map_all": "dask.bag.from_sequence(seq, npartitions=N).map(f).compute()",
        "push": "client.scatter([value], workers=[w0], hash=False)",
        "pull": "client.gather(future)",
        "scatter": "client.scatter(numpy.array_split(array, N), hash=False)",
        "gather": "numpy.concatenate(client.gather(futures))",
    }

    def __init__(self) -> None:
        self._cluster: LocalCluster | None = None
        self._client: Client | None = None
        self._workers: list[str] = []
        self._kept: dict[str, Any] = {}  # name -> future(s) held, as a user holds them
        self._exec = _make_exec()

    def versions(self) -> dict[str, str]:
        return {"distributed": distributed.__version__, "dask": dask.__version__}

    @property
    def client(self) -> Client:
        assert self._client is not None, "not started"
        return self._client

    def start(self, n: int) -> None:
        self._cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        self._client = Client(self._cluster)
        self._client.wait_for_workers(n, timeout=TIMEOUT)
        self._workers = sorted(self._client.nthreads())

    def stop(self) -> None:
        self._kept.clear()
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None

    def engine_count(self) -> int:
        return len(self.client.nthreads())

    def engine_pids(self) -> list[int]:
        pids = self.client.run(os.getpid)
        return [pids[w] for w in self._workers]

    def call(self, func: Callable[[], Any]) -> Any:
        return self.client.submit(func, pure=False, workers=self._workers[:1]).result(TIMEOUT)

    def execute_one(self, code: str) -> None:
        self.client.run(self._exec, code, workers=self._workers[:1])

    def execute_all(self, code: str) -> None:
        self.client.run(self._exec, code)

    def submit_each(self, func: Callable[[Any], Any], args: Sequence[Any]) -> list[Any]:
        futures = [self.client.submit(func, a, pure=False) for a in args]
        return list(self.client.gather(futures))

    def task_map(self, func: Callable[[Any], Any], args: Sequence[Any]) -> list[Any]:
        return list(self.client.gather(self.client.map(func, args, pure=False)))

    def map_all(self, func: Callable[[Any], Any], seq: Sequence[Any]) -> list[Any]:
        import dask.bag

        bag = dask.bag.from_sequence(seq, npartitions=len(self._workers))
        return list(bag.map(func).compute())

    def push(self, name: str, value: Any) -> None:
        self._kept.pop(name, None)
        (future,) = self.client.scatter([value], workers=self._workers[:1], hash=False)
        self._kept[name] = future

    def pull(self, name: str) -> Any:
        future: Future = self._kept[name]
        return self.client.gather(future)

    def scatter(self, name: str, array: Any) -> None:
        import numpy

        self._kept.pop(name, None)
        parts = numpy.array_split(array, len(self._workers))
        self._kept[name] = self.client.scatter(parts, hash=False)

    def gather(self, name: str) -> Any:
        import numpy

        return numpy.concatenate(self.client.gather(self._kept[name]))
