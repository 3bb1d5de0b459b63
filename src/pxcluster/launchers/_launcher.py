"""Launchers layer: the one interface every way of starting pxcluster processes implements.

A *launcher* starts controllers and engines somewhere (subprocesses here, MPI ranks, hosts
over ssh, batch jobs) and answers, for what it started, three questions later, possibly from
another process: what state is it in, where is its output, and how do I stop (or signal) it.

Contract (``Launcher``), which ``local``, ``mpi``, ``ssh``, ``slurm``, ``sge`` and ``pbs``
all follow:

* ``start(spec) -> list[LaunchHandle]`` starts ``spec.count`` processes running
  ``spec.argv(python)`` with ``spec.env`` added to their environment, and returns **at once**
  with one handle per process (it does not wait for engines to register: the ``Cluster``
  does that, watching ``poll`` meanwhile). It raises ``LaunchFailed`` (or its subclass
  ``BatchSubmitError`` for a refused submission) naming the command, its exit code and its
  output when the start itself fails.
* Handles are frozen, JSON-serialisable records (``to_dict``/``from_dict``) written into
  the profile's ``pid/cluster.json``. Everything a launcher needs to find its processes
  again must be in them: ``stop``, ``poll``, ``signal`` and ``output_files`` are called on a
  launcher made afresh in another process (``pxcluster stop``, ``list``, ``logs``) with
  handles read back from that file. A launcher keeps no state of its own that they need.
* ``poll(handles) -> list[JobStatus]`` (same length and order) reports each handle's
  state: ``PENDING`` (submitted, not running; ``reason`` says why: held, resources, ...),
  ``RUNNING``, ``FINISHED`` (ended normally) or ``FAILED`` (ended otherwise, or refused;
  ``reason`` has the scheduler's words), plus ``UNKNOWN`` when the scheduler cannot be asked.
  Calls may cost a subprocess each: callers poll no faster than ``poll_interval``.
* ``stop(handles, timeout)`` ends those processes (cancels their jobs), waits up to
  ``timeout`` s for them to go, and never raises for ones already gone.
* ``signal(handle, signum)`` signals one process (``kill``/restart of one engine by id).
* ``output_files(handle)`` lists the files holding its output (the scheduler's
  stdout/stderr for a job, the process's log); ``read_output(handle, lines)`` returns their
  last lines from wherever they live (a launcher whose files are on another host overrides
  it).

Engines learn their handle from the environment the launcher gives them (``PXCLUSTER_*``
variables, see ``pxcluster.profile.launch_info``) and send it with their registration, so
the controller and every client can map an engine id to its handle (``match_handle``).

Launchers are found by name in ``LAUNCHERS`` (``pxcluster start --engines NAME``); the
classes are imported only when used, so a launcher's module may import what it likes.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import importlib
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pxcluster._errors import LauncherError
from pxcluster.profile import LauncherConfig, ProfilePaths


class JobState(str, enum.Enum):
    """Where a launched process (or its batch job) stands."""

    PENDING = "pending"  # submitted, not started (held, waiting for resources, ...)
    RUNNING = "running"
    FINISHED = "finished"  # ended with success (or was stopped by us)
    FAILED = "failed"  # ended otherwise: non-zero exit, cancelled, time limit, node failure
    UNKNOWN = "unknown"  # the scheduler could not be asked, or no longer knows the job

    @property
    def ended(self) -> bool:
        return self in (JobState.FINISHED, JobState.FAILED)


@dataclasses.dataclass(frozen=True)
class LaunchHandle:
    """One launched process (an engine or the controller): how to find it again.

    Attributes:
        launcher: the launcher's name in ``LAUNCHERS`` ("local", "slurm", ...).
        role: "engine" or "controller".
        job_id: the batch job id ("" where there is none); for an array, the array's id.
        array_index: the index in the job array (or MPI rank; -1: none).
        host: where it runs ("" while unknown, e.g. a pending job).
        pid: the process id on ``host`` (0 while unknown).
        started: the process's start time (psutil's create_time), to tell a recycled pid
            apart (0.0 while unknown).
        output: the scheduler's output file of this process, if any ("" where none).
        extra: launcher-specific strings (JSON-safe), e.g. an ssh port.
    """

    launcher: str
    role: str = "engine"
    job_id: str = ""
    array_index: int = -1
    host: str = ""
    pid: int = 0
    started: float = 0.0
    output: str = ""
    extra: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["extra"] = dict(self.extra)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LaunchHandle:
        """The handle ``to_dict`` wrote.

        Raises:
            ValueError: ``data`` is not such a record.
        """
        try:
            return cls(
                launcher=str(data["launcher"]),
                role=str(data.get("role", "engine")),
                job_id=str(data.get("job_id", "")),
                array_index=int(data.get("array_index", -1)),
                host=str(data.get("host", "")),
                pid=int(data.get("pid", 0)),
                started=float(data.get("started", 0.0)),
                output=str(data.get("output", "")),
                extra={str(k): str(v) for k, v in dict(data.get("extra", {})).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a launch handle: {data!r} ({exc})") from exc

    def describe(self) -> str:
        """A short name for messages: ``job 12[3]``, ``pid 4242 on h1``."""
        if self.job_id:
            index = f"[{self.array_index}]" if self.array_index >= 0 else ""
            return f"{self.launcher} job {self.job_id}{index}"
        where = f" on {self.host}" if self.host else ""
        return f"pid {self.pid}{where}"


@dataclasses.dataclass(frozen=True)
class JobStatus:
    """What ``Launcher.poll`` says about one handle.

    Attributes:
        state: see ``JobState``.
        reason: the scheduler's own words for a pending or failed state ("held",
            "Resources", "TimeLimit", "exit code 1", ...); "" when there is nothing to say.
        host: where it runs, when the scheduler says ("" if not).
        end_time: epoch seconds at which its walltime ends (0.0: unknown or none).
    """

    state: JobState
    reason: str = ""
    host: str = ""
    end_time: float = 0.0

    def describe(self) -> str:
        return f"{self.state.value} ({self.reason})" if self.reason else self.state.value


@dataclasses.dataclass(frozen=True)
class LaunchSpec:
    """What to start: ``count`` processes of ``python -m module args``.

    Attributes:
        role: "engine" or "controller".
        module: the entry module ("pxcluster.cli.engine" or "pxcluster.cli.controller").
        args: its arguments (profile, log file, ...), the same for every process.
        count: how many processes (a controller: 1).
        env: variables added to each process's environment (connection data, ...).
        connection: the engine connection file's JSON text, for launchers whose processes
            cannot read the profile's ``security/engine.json`` (no shared filesystem): they
            hand it over in the job script or the environment and pass ``--file``. "" for
            a controller, or where the file is shared.
        timeout: seconds the caller will wait for them; a batch launcher may use it to
            tell a job that never starts from a slow one.
    """

    role: str
    module: str
    args: tuple[str, ...] = ()
    count: int = 1
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    connection: str = ""
    timeout: float = 60.0

    def argv(self, python: str = sys.executable, extra: Sequence[str] = ()) -> list[str]:
        """The command line of one process, with ``python`` as the interpreter."""
        return [python, "-m", self.module, *self.args, *extra]


class Launcher(abc.ABC):
    """Starts processes one way (see the module docstring for the whole contract).

    Args:
        paths: the profile whose processes these are (logs, job scripts and outputs go
            under its folder).
        options: the profile's launcher settings (the ``[launcher]`` and ``[NAME]``
            sections of ``pxcluster.toml``), already merged with the command line's.
    """

    #: Its key in ``LAUNCHERS``.
    name: ClassVar[str] = ""
    #: Seconds between ``poll`` calls a caller should keep to (a scheduler query is a
    #: subprocess and a load on a shared head node).
    poll_interval: ClassVar[float] = 0.05

    def __init__(self, paths: ProfilePaths, options: LauncherConfig | None = None) -> None:
        self.paths = paths
        self.options = options if options is not None else LauncherConfig()

    @abc.abstractmethod
    def start(self, spec: LaunchSpec) -> list[LaunchHandle]:
        """Start ``spec.count`` processes; return a handle for each without waiting."""

    @abc.abstractmethod
    def poll(self, handles: Sequence[LaunchHandle]) -> list[JobStatus]:
        """The state of each handle (same order)."""

    @abc.abstractmethod
    def stop(self, handles: Sequence[LaunchHandle], timeout: float = 10.0) -> None:
        """End those processes (cancel their jobs) and wait up to ``timeout`` s for them."""

    @abc.abstractmethod
    def signal(self, handle: LaunchHandle, signum: int) -> None:
        """Send ``signum`` to one process."""

    def output_files(self, handle: LaunchHandle) -> list[Path]:
        """Files holding the process's output: its scheduler output, then its log."""
        files = [Path(handle.output)] if handle.output else []
        if handle.role == "engine" and handle.pid:
            files.append(self.paths.log / f"engine-{handle.pid}.log")
        if handle.role == "controller":
            files.append(self.paths.log / "controller.log")
        return files

    def read_output(self, handle: LaunchHandle, lines: int = 200) -> str:
        """The last ``lines`` of each of ``output_files``, each under its name."""
        parts = []
        for path in self.output_files(handle):
            try:
                text = path.read_text(errors="replace").splitlines()
            except OSError as exc:
                parts.append(f"==> {path} <==\n(cannot read: {exc.strerror or exc})")
                continue
            parts.append(f"==> {path} <==\n" + "\n".join(text[-lines:]))
        return "\n".join(parts) if parts else f"(no output files known for {handle.describe()})"


#: Launcher name -> "module:Class", imported on first use.
LAUNCHERS: dict[str, str] = {
    "local": "pxcluster.launchers._local:LocalLauncher",
    "mpi": "pxcluster.launchers._mpi:MpiLauncher",
    "ssh": "pxcluster.launchers._ssh:SshLauncher",
    "slurm": "pxcluster.launchers._slurm:SlurmLauncher",
    "sge": "pxcluster.launchers._sge:SgeLauncher",
    "pbs": "pxcluster.launchers._pbs:PbsLauncher",
}
#: The launchers that submit job arrays to a batch system (``_batch.BatchLauncher``).
BATCH_LAUNCHERS = frozenset({"slurm", "sge", "pbs"})


def launcher_class(name: str) -> type[Launcher]:
    """The launcher class called ``name``.

    Raises:
        LauncherError: no such launcher (the message lists the known ones).
    """
    target = LAUNCHERS.get(name)
    if target is None:
        raise LauncherError(f"unknown launcher {name!r}; choose one of {', '.join(LAUNCHERS)}")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LauncherError(f"launcher {name!r} is not available: {exc}") from exc
    cls: type[Launcher] = getattr(module, attr)
    return cls


def make_launcher(
    name: str, paths: ProfilePaths, options: LauncherConfig | None = None
) -> Launcher:
    """An instance of launcher ``name`` for this profile."""
    return launcher_class(name)(paths, options)


def match_handle(
    handles: Sequence[LaunchHandle], info: Mapping[str, Any], pid: int = 0, hostname: str = ""
) -> LaunchHandle | None:
    """The handle of a registered engine, from what it registered with.

    ``info`` is the engine's ``launch`` registration field (``launch_info``): a batch
    engine is found by job id and array index, any other by pid (and host when known).
    """
    job = _job_key(str(info.get("job_id", "")))
    index = info.get("array_index", -1)
    for handle in handles:
        if job and _job_key(handle.job_id) == job and index in (handle.array_index, -1):
            return handle
    for handle in handles:
        if (
            pid
            and handle.pid == pid
            and (not handle.host or not hostname or handle.host == hostname)
        ):
            return handle
    return None


def _job_key(job_id: str) -> str:
    """A job id without a server or array suffix (PBS's ``12[].server`` is job ``12``)."""
    return re.split(r"[.\[]", job_id, maxsplit=1)[0]
