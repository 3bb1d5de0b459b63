"""Benchmarks: pxcluster through its public API: Cluster, MultiEngineClient, TaskClient."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import pxcluster
from benchmarks.systems.base import NotAvailable, System
from pxcluster import Cluster, MultiEngineClient, client

TIMEOUT = 120.0


class PxclusterSystem(System):
    name = "pxcluster"
    how: ClassVar[dict[str, str]] = {
        "start": "Cluster(n, profile_dir=...).start(); cluster.client()",
        "stop": "cluster.stop()",
        "cli": "pxcluster start -n N / pxcluster stop",
        "call": "mec[0].apply(noop)",
        "execute_one": "mec.execute(code, targets=0)",
        "execute_all": "mec.execute(code)",
        "submit_each": "tc.run(MapTask(f, args=(x,))) each; tc.barrier; get_task_result",
        "task_map": "tc.map(f, seq, chunksize=1)",
        "task_map_default": "tc.map(f, seq) (default chunksize: len / (4 x engines))",
        "map_all": "mec.map(f, seq)",
        "push": "mec.push({name: value}, targets=0)",
        "pull": "mec[0].pull(name)",
        "scatter": "mec.scatter(name, array)",
        "gather": "mec.gather(name)",
    }

    def __init__(self) -> None:
        self._dir: str | None = None
        self._cluster: Cluster | None = None
        self._mec: MultiEngineClient | None = None
        self._one: Any = None
        self._tc: Any = None

    def versions(self) -> dict[str, str]:
        return {"pxcluster": pxcluster.__version__}

    @property
    def mec(self) -> MultiEngineClient:
        assert self._mec is not None, "not started"
        return self._mec

    # -- lifetime ----------------------------------------------------------------------------

    def start(self, n: int) -> None:
        self._dir = tempfile.mkdtemp(prefix="pxbench-")
        self._cluster = Cluster(n, profile="bench", profile_dir=self._dir, timeout=TIMEOUT)
        self._cluster.start()
        self._mec = self._cluster.client()
        self._one = self._mec[0]

    def stop(self) -> None:
        if self._tc is not None:
            getattr(self._tc, "close", lambda: None)()
            self._tc = None
        if self._cluster is not None:
            self._cluster.stop()
        self._cluster = self._mec = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def engine_count(self) -> int:
        return len(self.mec.get_ids())

    def engine_pids(self) -> list[int]:
        assert self._cluster is not None, "not started"
        return list(self._cluster.engine_pids)

    def cli_commands(self, n: int, workdir: str) -> tuple[list[str], list[str]]:
        cli = [sys.executable, "-m", "pxcluster.cli.cluster"]
        where = ["--profile", "benchcli", "--profile-dir", workdir]
        return [*cli, "start", "-n", str(n), *where], [*cli, "stop", *where]

    # -- workloads ---------------------------------------------------------------------------

    def call(self, func: Callable[[], Any]) -> Any:
        return self._one.apply(func)

    def execute_one(self, code: str) -> None:
        self.mec.execute(code, targets=0, timeout=TIMEOUT)

    def execute_all(self, code: str) -> None:
        self.mec.execute(code, timeout=TIMEOUT)

    def _task_client(self) -> Any:
        if not hasattr(client, "TaskClient"):
            raise NotAvailable("pxcluster.client.TaskClient does not exist yet")
        if self._tc is None:
            assert self._dir is not None, "not started"
            self._tc = client.TaskClient(profile_dir=self._dir)
        return self._tc

    def submit_each(self, func: Callable[[Any], Any], args: Sequence[Any]) -> list[Any]:
        tc = self._task_client()
        tids = [tc.run(client.MapTask(func, args=(a,))) for a in args]
        tc.barrier(tids, timeout=TIMEOUT)
        return [tc.get_task_result(tid, block=True).r for tid in tids]

    def task_map(self, func: Callable[[Any], Any], args: Sequence[Any]) -> list[Any]:
        return list(self._task_client().map(func, args, chunksize=1, timeout=TIMEOUT))

    def task_map_default(self, func: Callable[[Any], Any], args: Sequence[Any]) -> list[Any]:
        return list(self._task_client().map(func, args, timeout=TIMEOUT))

    def map_all(self, func: Callable[[Any], Any], seq: Sequence[Any]) -> list[Any]:
        return list(self.mec.map(func, seq, timeout=TIMEOUT))

    def push(self, name: str, value: Any) -> None:
        self.mec.push({name: value}, targets=0, timeout=TIMEOUT)

    def pull(self, name: str) -> Any:
        return self._one.pull(name, timeout=TIMEOUT)

    def scatter(self, name: str, array: Any) -> None:
        self.mec.scatter(name, array, timeout=TIMEOUT)

    def gather(self, name: str) -> Any:
        return self.mec.gather(name, timeout=TIMEOUT)
