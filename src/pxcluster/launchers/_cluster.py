"""Launchers layer: a local cluster (controller + engines as subprocesses) and its record.

``Cluster`` is what ``pxcluster start`` uses and what tests and benchmarks use from Python::

    with Cluster(n=4) as cluster:
        mec = cluster.client()

What it started is written to the profile's ``pid/cluster.json`` so that ``pxcluster stop``
and ``pxcluster list``, run later from another process, find it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pxcluster._errors import (
    ClusterAlreadyRunning,
    LaunchFailed,
    NoClusterRunning,
    PxclusterError,
    PxclusterTimeoutError,
)
from pxcluster.client import MultiEngineClient
from pxcluster.launchers._processes import ProcessRef, log_tail, spawn, terminate, wait_gone
from pxcluster.profile import ProfilePaths, read_client_connection
from pxcluster.serialize import sweep_stale


@dataclasses.dataclass(frozen=True)
class ClusterRecord:
    """What ``pid/cluster.json`` says a ``start`` launched."""

    profile: str
    launcher: str
    controller: ProcessRef
    engines: list[ProcessRef]

    def write(self, path: Path) -> None:
        data = dataclasses.asdict(self)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: Path) -> ClusterRecord | None:
        try:
            data = json.loads(path.read_text())
            return cls(
                profile=data["profile"],
                launcher=data["launcher"],
                controller=ProcessRef(**data["controller"]),
                engines=[ProcessRef(**e) for e in data["engines"]],
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None


def running_controller(paths: ProfilePaths) -> ProcessRef | None:
    """The live controller of this profile, if any (from cluster.json or the connection file)."""
    record = ClusterRecord.read(paths.cluster_file)
    if record is not None and record.controller.alive():
        return record.controller
    try:
        conn = read_client_connection(paths.client_file)
    except NoClusterRunning:
        return None
    ref = ProcessRef.of(conn.controller_pid) if conn.controller_pid else None
    return ref if ref is not None and ref.alive() else None


class Cluster:
    """A controller and ``n`` engines on this machine, started and stopped as one.

    Args:
        n: number of engines (default: the number of CPU cores).
        profile: profile name; its folder holds connection files, logs and the pid record.
        profile_dir: the profile folder itself, instead of ``~/.pxcluster/profile_NAME``.
        controller_args: extra ``pxcontroller`` flags (e.g. ``["--heartbeat-timeout", "2"]``).
        engine_args: extra ``pxengine`` flags.
        timeout: seconds to wait for the controller and all engines to be ready.
    """

    def __init__(
        self,
        n: int | None = None,
        *,
        profile: str = "default",
        profile_dir: str | Path | None = None,
        controller_args: Sequence[str] = (),
        engine_args: Sequence[str] = (),
        timeout: float = 60.0,
    ) -> None:
        self.n = n if n is not None else (os.cpu_count() or 1)
        if self.n < 0:
            raise ValueError("the number of engines cannot be negative")
        self.paths = ProfilePaths.for_profile(profile, profile_dir)
        self.controller_args = list(controller_args)
        self.engine_args = list(engine_args)
        self.timeout = timeout
        self._procs: list[subprocess.Popen[bytes]] = []
        self._controller: ProcessRef | None = None
        self._engines: list[ProcessRef] = []
        self._client: MultiEngineClient | None = None  # ours, for start and add_engines
        self._clients: list[MultiEngineClient] = []  # handed out by client()

    # -- start -----------------------------------------------------------------------------

    def _common_args(self) -> list[str]:
        return ["--profile", self.paths.name, "--profile-dir", str(self.paths.dir)]

    def start(self, progress: Callable[[int, int], None] | None = None) -> Cluster:
        """Start the controller, then the engines; return once all are registered.

        Args:
            progress: called with (engines registered, engines expected) while waiting,
                so a long start can show the engines coming up.

        Raises:
            ClusterAlreadyRunning: this profile's cluster is running already.
            LaunchFailed: a process exited, or not all were ready within ``timeout``.
        """
        self.paths.ensure()
        running = running_controller(self.paths)
        if running is not None:
            raise ClusterAlreadyRunning(
                f"a cluster of profile {self.paths.name!r} is already running "
                f"(controller pid {running.pid}); stop it with "
                f"`pxcluster stop --profile {self.paths.name}` or use another --profile"
            )
        for stale in (self.paths.client_file, self.paths.engine_file, self.paths.cluster_file):
            stale.unlink(missing_ok=True)
        deadline = time.monotonic() + self.timeout
        try:
            self._start_controller(deadline)
            self._client = MultiEngineClient(
                profile_dir=self.paths.dir, timeout=max(1.0, deadline - time.monotonic())
            )
            self.add_engines(self.n, deadline - time.monotonic(), progress)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_controller(self, deadline: float) -> None:
        log = self.paths.log / "controller.log"
        proc = spawn(
            "pxcluster.cli.controller",
            [*self._common_args(), "--log-file", str(log), *self.controller_args],
            log,
        )
        self._procs.append(proc)
        self._controller = ProcessRef.of(proc.pid)
        self._write_record()
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LaunchFailed(
                    f"the controller exited with code {proc.returncode} at start-up; "
                    f"last lines of {log}:\n{log_tail(log)}"
                )
            with contextlib.suppress(NoClusterRunning):
                if read_client_connection(self.paths.client_file).controller_pid == proc.pid:
                    return
            time.sleep(0.02)
        raise LaunchFailed(f"the controller was not ready within {self.timeout} s; see {log}")

    def add_engines(
        self,
        count: int,
        timeout: float | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[int]:
        """Start ``count`` more engines and wait until they are registered; returns all ids.

        ``progress`` is called with (registered, expected) as they register.
        """
        client = self._own_client()
        expected = len(client.get_ids()) + count
        new = []
        for _ in range(count):
            proc = spawn(
                "pxcluster.cli.engine", [*self._common_args(), "--log-to-file", *self.engine_args]
            )
            self._procs.append(proc)
            new.append(proc)
            self._engines.append(ProcessRef.of(proc.pid))
        self._write_record()
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                ids = client.wait_for_engines(expected, timeout=0.1)
            except PxclusterTimeoutError:
                if progress is not None:
                    progress(len(client.get_ids()), expected)
            else:
                if progress is not None:
                    progress(len(ids), expected)
                return ids
            for proc in new:
                if proc.poll() is not None:
                    log = self.paths.log / f"engine-{proc.pid}.log"
                    raise LaunchFailed(
                        f"engine pid {proc.pid} exited with code {proc.returncode} at "
                        f"start-up; last lines of {log}:\n{log_tail(log)}"
                    )
            if time.monotonic() > deadline:
                got = len(client.get_ids())
                raise LaunchFailed(
                    f"only {got} of {expected} engines registered within {self.timeout} s; "
                    f"see the logs in {self.paths.log}"
                )

    def _write_record(self) -> None:
        if self._controller is None:
            return
        ClusterRecord(self.paths.name, "local", self._controller, list(self._engines)).write(
            self.paths.cluster_file
        )

    # -- use -------------------------------------------------------------------------------

    def client(self, **kwargs: Any) -> MultiEngineClient:
        """A new MultiEngineClient of this cluster (``kwargs`` as MultiEngineClient takes).

        Each call connects a new client; ``stop()`` closes any still open.
        """
        made = MultiEngineClient(profile_dir=self.paths.dir, **kwargs)
        self._clients.append(made)
        return made

    def _own_client(self) -> MultiEngineClient:
        if self._client is None:
            self._client = MultiEngineClient(profile_dir=self.paths.dir)
        return self._client

    def engine_ids(self) -> list[int]:
        """Ids of the engines registered with this cluster's controller now."""
        return self._own_client().get_ids()

    def controller_alive(self) -> bool:
        """True while this cluster's controller process runs."""
        return self._controller is not None and self._controller.alive()

    @property
    def engine_pids(self) -> list[int]:
        return [e.pid for e in self._engines]

    @property
    def controller_pid(self) -> int | None:
        return self._controller.pid if self._controller else None

    # -- stop ------------------------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the engines and the controller; leaves no process behind."""
        for made in [*self._clients, self._client]:
            if made is not None:
                made.close()
        self._clients.clear()
        self._client = None
        refs = [r for r in [self._controller, *self._engines] if r is not None]
        stop_processes(self.paths, refs, timeout)
        sweep_stale()  # shared-memory segments whose creators are gone
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1.0)
        self._procs.clear()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def stop_processes(paths: ProfilePaths, refs: Sequence[ProcessRef], timeout: float) -> None:
    """Ask the controller to shut everything down, then make sure ``refs`` are gone."""
    if any(r.alive() for r in refs):
        try:
            with MultiEngineClient(profile_dir=paths.dir, timeout=2.0) as client:
                client.kill(controller=True, timeout=2.0)
        except (PxclusterError, OSError):
            pass  # not answering: the signals below do it
        terminate(wait_gone(refs, timeout))
    for path in (paths.cluster_file, paths.client_file, paths.engine_file):
        path.unlink(missing_ok=True)


def stop_profile(paths: ProfilePaths, timeout: float = 10.0) -> ClusterRecord | None:
    """Stop the cluster of a profile from any process (``pxcluster stop``).

    Raises:
        NoClusterRunning: nothing of this profile is running.
    """
    record = ClusterRecord.read(paths.cluster_file)
    refs: list[ProcessRef] = []
    if record is not None:
        refs = [record.controller, *record.engines]
    controller = running_controller(paths)
    if controller is not None and controller not in refs:
        refs.append(controller)
    if not any(r.alive() for r in refs):
        for path in (paths.cluster_file, paths.client_file, paths.engine_file):
            path.unlink(missing_ok=True)
        raise NoClusterRunning(f"no cluster of profile {paths.name!r} is running")
    stop_processes(paths, refs, timeout)
    return record
