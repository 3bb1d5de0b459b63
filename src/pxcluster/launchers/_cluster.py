"""Launchers layer: a cluster (controller + engines) started through launchers, and stopped.

``Cluster`` is what ``pxcluster start`` uses and what tests and benchmarks use from Python::

    with Cluster(n=4) as cluster:                       # local processes
        mec = cluster.client()
    with Cluster(n=4, engines="slurm") as cluster:      # engines as a Slurm job array
        ...

What it started is written to the profile's ``pid/cluster.json`` (``ClusterRecord``) so that
``pxcluster stop``, ``list``, ``logs`` and ``add``, run later from another process, find it.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pxcluster._errors import (
    ClusterAlreadyRunning,
    LauncherError,
    LaunchFailed,
    NoClusterRunning,
    PxclusterError,
)
from pxcluster.client import MultiEngineClient, TaskClient
from pxcluster.launchers._engines import engine_handle, engine_logs
from pxcluster.launchers._keeper import EngineKeeper
from pxcluster.launchers._launcher import (
    Launcher,
    LaunchHandle,
    LaunchSpec,
    make_launcher,
    match_handle,
)
from pxcluster.launchers._record import ClusterRecord, handle_alive, running_controller
from pxcluster.launchers._startup import (
    Progress,
    StatusReport,
    wait_for_controller,
    wait_for_engines,
)
from pxcluster.profile import LauncherConfig, ProfilePaths, load_launcher_config
from pxcluster.serialize import sweep_stale


class Cluster:
    """A controller and ``n`` engines, started and stopped as one.

    Args:
        n: number of engines (default: the number of CPU cores).
        profile: profile name; its folder holds connection files, logs and the pid record.
        profile_dir: the profile folder itself, instead of ``~/.pxcluster/profile_NAME``.
        controller_args: extra ``pxcontroller`` flags (e.g. ``["--heartbeat-timeout", "2"]``).
        engine_args: extra ``pxengine`` flags.
        timeout: seconds to wait for the controller and all engines to be ready.
        engines: the engines' launcher ("local", "mpi", "ssh", "slurm", "sge", "pbs").
        controller: the controller's launcher (same names).
        options: launcher settings by launcher name; a launcher not given here reads its
            own from the profile's ``pxcluster.toml``.
        restart: relaunch engines that die, at most this many times in all (0: never);
            a relaunched engine gets a new id and an empty namespace (``EngineKeeper``).
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
        engines: str = "local",
        controller: str = "local",
        options: dict[str, LauncherConfig] | None = None,
        restart: int = 0,
    ) -> None:
        self.n = n if n is not None else (os.cpu_count() or 1)
        if self.n < 0:
            raise ValueError("the number of engines cannot be negative")
        self.paths = ProfilePaths.for_profile(profile, profile_dir)
        self.controller_args = list(controller_args)
        self.engine_args = list(engine_args)
        self.timeout = timeout
        self.engine_launcher = engines
        self.controller_launcher = controller
        self._options = dict(options or {})
        self._launchers: dict[str, Launcher] = {}
        self._controller: LaunchHandle | None = None
        self._engines: list[LaunchHandle] = []
        self._client: MultiEngineClient | None = None  # ours, for start and add_engines
        self._clients: list[MultiEngineClient | TaskClient] = []  # handed out to the user
        self.keeper = EngineKeeper(self, restart) if restart else None

    @classmethod
    def attach(
        cls,
        profile: str = "default",
        profile_dir: str | Path | None = None,
        timeout: float = 60.0,
        options: dict[str, LauncherConfig] | None = None,
    ) -> Cluster:
        """The running cluster of a profile, from its ``pid/cluster.json`` (for ``add``,
        ``restart`` and ``stop`` from another process than the one that started it).

        Raises:
            NoClusterRunning: the profile has no record of a started cluster.
        """
        cluster = cls(0, profile=profile, profile_dir=profile_dir, timeout=timeout, options=options)
        record = ClusterRecord.read(cluster.paths.cluster_file)
        if record is None or running_controller(cluster.paths) is None:
            raise NoClusterRunning(
                f"no cluster of profile {cluster.paths.name!r} is running "
                "(start one with `pxcluster start`)"
            )
        cluster.engine_launcher = record.launcher
        cluster.controller_launcher = record.controller.launcher
        cluster._controller = record.controller
        cluster._engines = list(record.engines)
        return cluster

    def launcher(self, name: str) -> Launcher:
        """This cluster's instance of launcher ``name`` (made on first use)."""
        if name not in self._launchers:
            options = self._options.get(name)
            if options is None:
                options = load_launcher_config(self.paths.config_file, name)
            self._launchers[name] = make_launcher(name, self.paths, options)
        return self._launchers[name]

    # -- start -----------------------------------------------------------------------------

    def _common_args(self) -> list[str]:
        return ["--profile", self.paths.name, "--profile-dir", str(self.paths.dir)]

    def start(
        self, progress: Progress | None = None, status: StatusReport | None = None
    ) -> Cluster:
        """Start the controller, then the engines; return once all are registered.

        Args:
            progress: called with (engines registered, engines expected) while waiting,
                so a long start can show the engines coming up.
            status: called with a line whenever the launcher's jobs change state
                ("slurm job 12: 4 pending (Resources)").

        Raises:
            ClusterAlreadyRunning: this profile's cluster is running already.
            LaunchFailed: a process or job ended, or not all were ready within ``timeout``
                (the message names the jobs, their states and output files).
        """
        self.paths.ensure()
        running = running_controller(self.paths)
        if running is not None:
            raise ClusterAlreadyRunning(
                f"a cluster of profile {self.paths.name!r} is already running "
                f"(controller {running.describe()}); stop it with "
                f"`pxcluster stop --profile {self.paths.name}` or use another --profile"
            )
        for stale in (self.paths.client_file, self.paths.engine_file, self.paths.cluster_file):
            stale.unlink(missing_ok=True)
        deadline = time.monotonic() + self.timeout
        try:
            self._start_controller(deadline, status)
            self._client = MultiEngineClient(
                profile_dir=self.paths.dir, timeout=max(1.0, deadline - time.monotonic())
            )
            self._add(self.n, deadline, self.timeout, progress, None, status)
        except BaseException:
            # engines that never registered get no kill from the controller: a short wait
            # before signalling them, so a failed start reports promptly
            with contextlib.suppress(PxclusterError):  # the start's own error matters more
                self.stop(timeout=3.0)
            raise
        if self.keeper is not None:
            self.keeper.start()
        return self

    def _start_controller(self, deadline: float, status: StatusReport | None) -> None:
        launcher = self.launcher(self.controller_launcher)
        log = self.paths.log / "controller.log"
        spec = LaunchSpec(
            role="controller",
            module="pxcluster.cli.controller",
            args=(*self._common_args(), "--log-file", str(log), *self.controller_args),
            timeout=self.timeout,
        )
        (handle,) = launcher.start(spec)
        self._controller = handle
        self._write_record()
        self._controller = wait_for_controller(
            self.paths, launcher, handle, deadline, self.timeout, status
        )
        self._write_record()

    def add_engines(
        self,
        count: int,
        timeout: float | None = None,
        progress: Progress | None = None,
        launcher: str | None = None,
        status: StatusReport | None = None,
    ) -> list[int]:
        """Start ``count`` more engines and wait until they are registered; returns all ids.

        Args:
            count: how many engines.
            timeout: seconds to wait (default: the cluster's ``timeout``).
            progress: called with (registered, expected) as they register.
            launcher: their launcher (default: the cluster's engine launcher); a batch
                launcher submits a further job, tracked and cancelled with the others.
            status: called with a line whenever their jobs change state.
        """
        wait = self.timeout if timeout is None else timeout
        return self._add(count, time.monotonic() + wait, wait, progress, launcher, status)

    def _add(
        self,
        count: int,
        deadline: float,
        said_timeout: float,
        progress: Progress | None,
        launcher: str | None,
        status: StatusReport | None,
    ) -> list[int]:
        client = self._own_client()
        expected = len(client.get_ids()) + count
        handles = self.launch_engines(count, launcher)
        chosen = self.launcher(launcher or self.engine_launcher)
        try:
            return wait_for_engines(
                client, expected, chosen, handles, deadline, said_timeout, progress, status
            )
        except LaunchFailed:
            # what did not come up is cancelled, not left queued (the rest keeps running)
            with contextlib.suppress(PxclusterError):  # kept in the record if this fails
                chosen.stop(handles, timeout=10.0)
                self._engines = [h for h in self._engines if h not in handles]
            self._write_record()
            raise

    def launch_engines(self, count: int, launcher: str | None = None) -> list[LaunchHandle]:
        """Start ``count`` engines and record them, without waiting for them to register."""
        chosen = self.launcher(launcher or self.engine_launcher)
        try:
            connection = self.paths.engine_file.read_text()
        except OSError:
            connection = ""
        spec = LaunchSpec(
            role="engine",
            module="pxcluster.cli.engine",
            args=(*self._common_args(), "--log-to-file", *self.engine_args),
            count=count,
            connection=connection,
            timeout=self.timeout,
        )
        handles = chosen.start(spec) if count else []
        self._engines.extend(handles)
        self._write_record()
        return handles

    def _write_record(self) -> None:
        if self._controller is None:
            return
        record = ClusterRecord(
            self.paths.name, self.engine_launcher, self._controller, list(self._engines)
        )
        record.write(self.paths.cluster_file)

    # -- use -------------------------------------------------------------------------------

    def client(self, **kwargs: Any) -> MultiEngineClient:
        """A new MultiEngineClient of this cluster (``kwargs`` as MultiEngineClient takes).

        Each call connects a new client; ``stop()`` closes any still open.
        """
        made = MultiEngineClient(profile_dir=self.paths.dir, **kwargs)
        self._clients.append(made)
        return made

    def task_client(self, **kwargs: Any) -> TaskClient:
        """A new TaskClient of this cluster (``kwargs`` as TaskClient takes); ``stop()``
        closes it if it is still open."""
        made = TaskClient(profile_dir=self.paths.dir, **kwargs)
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
        """True while this cluster's controller process runs (or its job is queued)."""
        if self._controller is None:
            return False
        launcher = self.launcher(self._controller.launcher)
        return not launcher.poll([self._controller])[0].state.ended

    def engine_logs(self, engine_id: int, lines: int = 50) -> str:
        """Engine ``engine_id``'s log and its launcher's output (``pxcluster logs ID``)."""
        return engine_logs(self.paths, engine_id, lines)

    def restart_engine(self, engine_id: int, timeout: float | None = None) -> list[int]:
        """Replace engine ``engine_id``: stop it (a kill through the controller, then its
        launcher makes sure: a batch array task is cancelled) and start one engine in its
        place with the same launcher. Returns the engine ids once the new one registered.

        Raises:
            EngineNotRegistered: no such engine.
            LauncherError: it was not started by this cluster's launchers.
        """
        engine, handle = engine_handle(self.paths, engine_id)
        stored = match_handle(self._engines, engine.launch, engine.pid, engine.hostname)
        if handle is None or stored is None:
            raise LauncherError(
                f"engine {engine_id} was not started by this cluster's launchers; "
                "pxcluster cannot start another like it"
            )
        client = self._own_client()
        client.kill(targets=engine_id, block=True, timeout=10.0)
        self.launcher(handle.launcher).stop([handle], timeout=10.0)
        self.forget_engines([stored])
        # the client hears of the engine's end by a notification that may trail the kill's
        # reply; add_engines counts on the list being current
        deadline = time.monotonic() + 10.0
        while engine_id in client.get_ids() and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.add_engines(1, timeout, launcher=handle.launcher)

    def signal_engine(self, engine_id: int, signum: int) -> LaunchHandle:
        """Send ``signum`` to engine ``engine_id`` through its launcher; returns its handle.

        Raises:
            EngineNotRegistered: no such engine.
            LauncherError: it was not started by this cluster's launchers, or its launcher
                cannot send that signal.
        """
        _engine, handle = engine_handle(self.paths, engine_id)
        if handle is None:
            raise LauncherError(f"engine {engine_id} was not started by this cluster's launchers")
        self.launcher(handle.launcher).signal(handle, signum)
        return handle

    @property
    def engine_handles(self) -> list[LaunchHandle]:
        """The handle of every engine this cluster launched."""
        return list(self._engines)

    def forget_engines(self, handles: Sequence[LaunchHandle]) -> None:
        """Stop tracking engines whose processes ended (``EngineKeeper``)."""
        self._engines = [h for h in self._engines if h not in handles]
        self._write_record()

    @property
    def controller_handle(self) -> LaunchHandle | None:
        return self._controller

    @property
    def engine_pids(self) -> list[int]:
        """Pids of the engines launched on this machine (batch engines' are not known)."""
        return [e.pid for e in self._engines if e.pid]

    @property
    def controller_pid(self) -> int | None:
        return self._controller.pid if self._controller and self._controller.pid else None

    # -- stop ------------------------------------------------------------------------------

    def close_clients(self) -> None:
        """Close the clients this object made (the cluster keeps running)."""
        for made in [*self._clients, self._client]:
            if made is not None:
                made.close()
        self._clients.clear()
        self._client = None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the engines and the controller (cancelling their jobs); leaves nothing behind."""
        if self.keeper is not None:
            self.keeper.stop()  # first: nothing may be relaunched while we stop
        self.close_clients()
        handles = [h for h in [self._controller, *self._engines] if h is not None]
        stop_handles(self.paths, handles, timeout, self._launchers)
        sweep_stale()  # shared-memory segments whose creators are gone

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def stop_handles(
    paths: ProfilePaths,
    handles: Sequence[LaunchHandle],
    timeout: float,
    launchers: dict[str, Launcher] | None = None,
) -> None:
    """Ask the controller to shut everything down, then have each launcher make sure its
    processes are gone (cancelling their jobs); removes the profile's run files.

    Raises:
        LauncherError: a launcher could not stop its processes (its cancel command is
            missing here); the record (pid/cluster.json) is kept so a later stop can retry.
    """
    launchers = launchers if launchers is not None else {}
    if paths.client_file.exists():
        try:
            with MultiEngineClient(profile_dir=paths.dir, timeout=2.0) as client:
                client.kill(controller=True, timeout=2.0)
        except (PxclusterError, OSError):
            pass  # not answering: the launchers' stop does it
    deadline = time.monotonic() + timeout
    by_launcher: dict[str, list[LaunchHandle]] = {}
    for handle in handles:
        by_launcher.setdefault(handle.launcher, []).append(handle)
    problems = []
    for name, group in by_launcher.items():
        try:
            launcher = launchers.get(name) or make_launcher(
                name, paths, load_launcher_config(paths.config_file, name)
            )
            launcher.stop(group, max(1.0, deadline - time.monotonic()))
        except (PxclusterError, ValueError) as exc:
            problems.append(f"{name}: {exc}")
    kept = (paths.cluster_file,) if problems else ()
    for path in (paths.cluster_file, paths.client_file, paths.engine_file):
        if path not in kept:
            path.unlink(missing_ok=True)
    if problems:
        raise LauncherError(
            "could not stop everything: " + "; ".join(problems) + f". The record stays in "
            f"{paths.cluster_file}: `pxcluster stop` again once that is fixed"
        )


def stop_profile(paths: ProfilePaths, timeout: float = 10.0) -> ClusterRecord | None:
    """Stop the cluster of a profile from any process (``pxcluster stop``).

    Raises:
        NoClusterRunning: nothing of this profile is running.
    """
    record = ClusterRecord.read(paths.cluster_file)
    handles: list[LaunchHandle] = []
    if record is not None:
        handles = [record.controller, *record.engines]
    controller = running_controller(paths)
    if controller is not None and controller not in handles:
        handles.append(controller)
    if not any(handle_alive(paths, h) for h in handles):
        for path in (paths.cluster_file, paths.client_file, paths.engine_file):
            path.unlink(missing_ok=True)
        raise NoClusterRunning(f"no cluster of profile {paths.name!r} is running")
    stop_handles(paths, handles, timeout)
    return record
