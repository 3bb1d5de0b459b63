"""Benchmarks: ipyparallel 9 through its usual API (``Cluster``, direct and load-balanced views)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import ipyparallel as ipp

from benchmarks.systems.base import System

TIMEOUT = 120.0


class IpyparallelSystem(System):
    name = "ipyparallel"
    how: ClassVar[dict[str, str]] = {
        "start": "ipp.Cluster(n=N).start_and_connect_sync(); rc.wait_for_engines(N)",
        "stop": "rc.close(); cluster.stop_cluster_sync()",
        "call": "rc[0].apply_sync(noop)",
        "execute_one": "rc[0].execute(code, block=True)",
        "execute_all": "rc[:].execute(code, block=True)",
        "submit_each": "lview.apply_async(f, x) each; ar.get() each",
        "task_map": "lview.map_sync(f, seq) (default chunksize=1)",
        "map_all": "rc[:].map_sync(f, seq)",
        "push": "rc[0].push({name: value}, block=True)",
        "pull": "rc[0].pull(name, block=True)",
        "scatter": "rc[:].scatter(name, array, block=True)",
        "gather": "rc[:].gather(name, block=True)",
    }

    def __init__(self) -> None:
        self._cluster: Any = None
        self._rc: Any = None
        self._one: Any = None  # the usual views, made once as a user would
        self._all: Any = None
        self._balanced: Any = None

    def versions(self) -> dict[str, str]:
        return {"ipyparallel": ipp.__version__}

    @property
    def rc(self) -> Any:
        assert self._rc is not None, "not started"
        return self._rc

    def start(self, n: int) -> None:
        self._cluster = ipp.Cluster(n=n, log_level=logging.ERROR)
        self._rc = self._cluster.start_and_connect_sync()
        self._rc.wait_for_engines(n, timeout=TIMEOUT)
        self._one, self._all = self._rc[0], self._rc[:]
        self._balanced = self._rc.load_balanced_view()

    def stop(self) -> None:
        if self._rc is not None:
            self._rc.close()
        if self._cluster is not None:
            self._cluster.stop_cluster_sync()
        self._cluster = self._rc = None

    def engine_count(self) -> int:
        return len(self.rc.ids)

    def engine_pids(self) -> list[int]:
        return list(self._all.apply_sync(os.getpid))

    def call(self, func: Callable[[], Any]) -> Any:
        return self._one.apply_sync(func)

    def execute_one(self, code: str) -> None:
        self._one.execute(code, block=True)

    def execute_all(self, code: str) -> None:
        self._all.execute(code, block=True)

    def submit_each(self, func: Callable[[Any], Any], args: Sequence[Any]) -> list[Any]:
        pending = [self._balanced.apply_async(func, a) for a in args]
        return [ar.get(timeout=TIMEOUT) for ar in pending]

    def task_map(self, func: Callable[[Any], Any], args: Sequence[Any]) -> list[Any]:
        return list(self._balanced.map_sync(func, args))

    def map_all(self, func: Callable[[Any], Any], seq: Sequence[Any]) -> list[Any]:
        return list(self._all.map_sync(func, seq))

    def push(self, name: str, value: Any) -> None:
        self._one.push({name: value}, block=True)

    def pull(self, name: str) -> Any:
        return self._one.pull(name, block=True)

    def scatter(self, name: str, array: Any) -> None:
        self._all.scatter(name, array, block=True)

    def gather(self, name: str) -> Any:
        return self._all.gather(name, block=True)
