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
from pxcluster.launchers._keeper_files import (
    ENDING_SIGNALS,
    handle_key,
    keeper_file,
    note_released,
    record_lock,
    released_file,
)
from pxcluster.launchers._launcher import (
    BATCH_LAUNCHERS,
    Launcher,
    LaunchHandle,
    LaunchSpec,
    make_launcher,
    match_handle,
)
from pxcluster.launchers._record import ClusterRecord, handle_alive, running_controller
from pxcluster.launchers._relayed import refuse_for_relayed, wants_relay
from pxcluster.launchers._startup import (
    Progress,
    StatusReport,
    wait_for_controller,
    wait_for_engines,
)
from pxcluster.launchers._watcher import (
    KeeperProcess,
    keeper_running,
    start_keeper,
    stop_keeper,
)
from pxcluster.profile import LauncherConfig, ProfilePaths, load_launcher_config
from pxcluster.serialize import sweep_stale

#: Launchers whose engines run on other hosts than the controller's, as a rule.
REMOTE_LAUNCHERS = frozenset({"ssh"}) | BATCH_LAUNCHERS


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
            a relaunched engine gets a new id and an empty namespace. A keeper process
            (``_watcher.py``) does it, so it goes on after this object or its process is
            gone, until ``stop()`` or ``pxcluster stop``; ``keeper`` is its handle.
            Engines on other hosts (ssh, slurm, sge, pbs; no relay) get a keeper even
            without restart: it signals, through their launcher, those the controller
            cannot reach (a kill or interrupt not answered: C code holding the GIL).
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
        self._launched: list[LaunchHandle] = []  # every engine this object launched
        self._client: MultiEngineClient | None = None  # ours, for start and add_engines
        self._clients: list[MultiEngineClient | TaskClient] = []  # handed out to the user
        if restart < 0:
            raise ValueError("restart cannot be negative")
        self.restart = restart
        self.keeper: KeeperProcess | None = None  # set by start() when restart > 0

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
        stop_keeper(self.paths)  # a keeper left by a cluster whose controller died
        stale = (self.paths.client_file, self.paths.engine_file, self.paths.cluster_file)
        for path in (*stale, keeper_file(self.paths), released_file(self.paths)):
            path.unlink(missing_ok=True)
        deadline = time.monotonic() + self.timeout
        try:
            self._start_controller(deadline, status)
            self._client = MultiEngineClient(
                profile_dir=self.paths.dir, timeout=max(1.0, deadline - time.monotonic())
            )
            self._add(self.n, deadline, self.timeout, progress, None, status)
            if self.restart and wants_relay(self.launcher(self.engine_launcher).options):
                raise LauncherError(
                    "restart (--restart) cannot keep engines behind relays (--relay) yet: "
                    "a relay's handle stands for all its engines; start without one of them"
                )
            elsewhere = self._engines_elsewhere()
            if self.restart or elsewhere:  # elsewhere: it also signals; look more often
                self.keeper = start_keeper(self, self.restart, period=0.5 if elsewhere else 1.0)
        except BaseException:
            # engines that never registered get no kill from the controller: a short wait
            # before signalling them, so a failed start reports promptly
            with contextlib.suppress(PxclusterError):  # the start's own error matters more
                self.stop(timeout=3.0)
            raise
        return self

    def _engines_elsewhere(self, name: str | None = None) -> bool:
        """Whether engines of launcher ``name`` (default: the cluster's) run where the
        controller may not signal them (other hosts, not behind a relay): the keeper then
        signals them through their launcher."""
        name = name or self.engine_launcher
        return name in REMOTE_LAUNCHERS and not wants_relay(self.launcher(name).options)

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

        Engines added on other hosts (ssh, slurm, sge, pbs; no relay) to a cluster without
        a keeper get one, which signals those the controller cannot reach.
        """
        wait = self.timeout if timeout is None else timeout
        ids = self._add(count, time.monotonic() + wait, wait, progress, launcher, status)
        if self._engines_elsewhere(launcher) and keeper_running(self.paths) is None:
            self.keeper = start_keeper(self, 0, period=0.5)
        return ids

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
                self._change_record(removed=handles)
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
        self._launched += handles
        self._change_record(added=handles)
        return handles

    def _write_record(self) -> None:
        """Write the record afresh (at start: the controller, no engines yet)."""
        if self._controller is None:
            return
        with record_lock(self.paths):
            record = ClusterRecord(
                self.paths.name, self.engine_launcher, self._controller, list(self._engines)
            )
            record.write(self.paths.cluster_file)

    def _change_record(
        self, added: Sequence[LaunchHandle] = (), removed: Sequence[LaunchHandle] = ()
    ) -> None:
        """Add and forget engine handles in the record, keeping what other processes
        (the keeper, ``pxcluster add``) changed meanwhile; this object's list follows."""
        if self._controller is None:
            return
        with record_lock(self.paths):
            current = ClusterRecord.read(self.paths.cluster_file)
            engines = self._engines
            if current is not None and current.controller == self._controller:
                engines = current.engines
            gone = {handle_key(h) for h in removed}
            kept = [h for h in engines if handle_key(h) not in gone]
            self._engines = kept + [h for h in added if h not in kept]
            record = ClusterRecord(
                self.paths.name, self.engine_launcher, self._controller, list(self._engines)
            )
            record.write(self.paths.cluster_file)

    def reload(self) -> bool:
        """Take the engine handles from the record (other processes change it: the keeper
        relaunching, ``pxcluster add``); False if it is gone or another cluster's."""
        current = ClusterRecord.read(self.paths.cluster_file)
        if current is None or current.controller != self._controller:
            return False
        self._engines = list(current.engines)
        return True

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

    def controller_running(self) -> bool:
        """True while a controller of this profile runs (this one, or one that took its
        place after it died)."""
        return running_controller(self.paths) is not None

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
        stored = match_handle(self.engine_handles, engine.launch, engine.pid, engine.hostname)
        if handle is None or stored is None:
            raise LauncherError(
                f"engine {engine_id} was not started by this cluster's launchers; "
                "pxcluster cannot start another like it"
            )
        refuse_for_relayed(stored, engine_id, "restarting")
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
        engine, handle = engine_handle(self.paths, engine_id)
        if handle is None:
            raise LauncherError(f"engine {engine_id} was not started by this cluster's launchers")
        stored = match_handle(self.engine_handles, engine.launch, engine.pid, engine.hostname)
        refuse_for_relayed(stored or handle, engine_id, "signalling")
        if stored is not None and signum in ENDING_SIGNALS:
            note_released(self.paths, stored)  # ended on purpose: the keeper leaves it
        self.launcher(handle.launcher).signal(handle, signum)
        return handle

    @property
    def engine_handles(self) -> list[LaunchHandle]:
        """The handle of every engine of this cluster (as the record has them now: the
        keeper and ``pxcluster add`` change them from other processes)."""
        self.reload()
        return list(self._engines)

    def forget_engines(self, handles: Sequence[LaunchHandle]) -> None:
        """Stop tracking engines whose processes ended (``EngineKeeper``)."""
        self._change_record(removed=handles)

    @property
    def controller_handle(self) -> LaunchHandle | None:
        return self._controller

    @property
    def engine_pids(self) -> list[int]:
        """Pids of the engines launched on this machine (batch engines' are not known)."""
        return [e.pid for e in self.engine_handles if e.pid]

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
        # first: nothing may be relaunched while we stop; then the record has every engine
        if self.keeper is not None:
            self.keeper.stop()
        else:
            stop_keeper(self.paths)
        self.reload()
        self.close_clients()
        handles = [h for h in [self._controller, *self._engines] if h is not None]
        # and those this object launched that ended and were forgotten (by the keeper):
        # their launcher reaps what is still our child (a zombie mpiexec, say)
        handles += [h for h in self._launched if h not in handles]
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
    stop_keeper(paths, timeout)  # first: nothing relaunched while stopping, record complete
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
