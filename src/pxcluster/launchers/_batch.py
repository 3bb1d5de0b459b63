"""Launchers layer: what Slurm, SGE and PBS launchers share (a job script, submit, cancel).

They differ by data (the directive prefix, the submit/cancel commands, how the array and
the walltime are spelt, the template under ``launchers/templates/``) and by how their job
state query is read; each system's module (``_slurm``, ``_sge``, ``_pbs``) holds just that.

Engines run as **one job array** per ``start`` (or ``add``): array index i is one engine,
or with ``--relay`` one ``pxrelay`` with ``engines_per_job`` engines behind it (Slurm's
tasks then ask for that many cores), so the controller holds one relay's connections per
task and a push crosses the network once per task, not once per engine.
A controller is one job. The job script is rendered from a template with ``{{name}}``
placeholders (``template = "..."`` in the launcher's ``pxcluster.toml`` section replaces
the built-in one); it exports the ``PXCLUSTER_*`` launch variables (job id, array index,
walltime end) and carries the engine connection file in a here-document, so engines need
no shared filesystem to find their controller. Scripts and outputs live in the profile's
``jobs/`` folder (mode 0700: scripts hold the engine key).
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import os
import re
import shlex
import shutil
import signal as signals
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from pxcluster._errors import BatchSubmitError, LauncherError
from pxcluster.launchers._launcher import JobState, JobStatus, Launcher, LaunchHandle, LaunchSpec
from pxcluster.launchers._relayed import RELAY_KEY, engines_per_job, relayed, wants_relay
from pxcluster.profile import LauncherConfig, ProfilePaths

log = logging.getLogger("pxcluster.launchers")

#: Seconds a scheduler command may take before we give up on it.
COMMAND_TIMEOUT = 30.0


def walltime_seconds(value: str) -> int:
    """``[[D-]HH:]MM:SS``, ``HH:MM:SS`` or plain minutes (Slurm's reading) -> seconds.

    Raises:
        LauncherError: the value is none of those.
    """
    text = value.strip()
    days = 0
    if "-" in text:
        day_text, text = text.split("-", 1)
        days = int(day_text) if day_text.isdigit() else -1
    parts = text.split(":")
    if days < 0 or not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise LauncherError(f"walltime {value!r} is not minutes, MM:SS, HH:MM:SS or D-HH:MM:SS")
    numbers = [int(p) for p in parts]
    if len(numbers) == 1:
        seconds = numbers[0] * 60
    elif len(numbers) == 2:
        seconds = numbers[0] * 60 + numbers[1]
    else:
        seconds = numbers[0] * 3600 + numbers[1] * 60 + numbers[2]
    return days * 86400 + seconds


def hms(seconds: int) -> str:
    """Seconds as ``H:MM:SS``, which every scheduler reads."""
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def render(template: str, values: Mapping[str, str], source: str) -> str:
    """Fill ``{{name}}`` placeholders.

    Raises:
        LauncherError: the template names a placeholder that does not exist.
    """

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise LauncherError(
                f"job-script template {source} uses {{{{{name}}}}}, which pxcluster does "
                f"not fill; known placeholders: {', '.join(sorted(values))}"
            )
        return values[name]

    return re.sub(r"\{\{(\w+)\}\}", fill, template)


def run_command(argv: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a scheduler command; a missing program raises ``LauncherError`` saying so."""
    if shutil.which(argv[0]) is None:
        raise LauncherError(
            f"{argv[0]!r} was not found on PATH; is this a machine that can submit jobs "
            "(a login node with the scheduler's client commands)?"
        )
    try:
        return subprocess.run(
            list(argv),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LauncherError(f"{shlex.join(argv)} did not answer within {exc.timeout} s") from exc


class BatchLauncher(Launcher):
    """Engines as a job array, a controller as a job; subclasses give the system's data."""

    poll_interval = 1.0
    #: The directive prefix in the job script ("#SBATCH", "#$", "#PBS").
    prefix: ClassVar[str] = ""
    #: The built-in template's file name under ``launchers/templates/``.
    template_name: ClassVar[str] = ""
    #: The submit command; the script's path is appended.
    submit_command: ClassVar[tuple[str, ...]] = ()
    #: The cancel command; job ids are appended.
    cancel_command: ClassVar[tuple[str, ...]] = ()

    def __init__(self, paths: ProfilePaths, options: LauncherConfig | None = None) -> None:
        super().__init__(paths, options)
        self._submitted = 0

    # -- data each system provides -----------------------------------------------------------

    def array_directive(self, count: int) -> str:
        """The directive (without prefix) making ``count`` array tasks 0..count-1."""
        raise NotImplementedError

    def queue_directive(self, queue: str) -> str:
        raise NotImplementedError

    def walltime_directive(self, seconds: int) -> str:
        raise NotImplementedError

    def account_directive(self, account: str) -> str:
        raise NotImplementedError

    def output_pattern(self, jobs: Path, stem: str, array: bool) -> str:
        """The output path as the script's directive names it (scheduler patterns)."""
        raise NotImplementedError

    def output_file(self, pattern: str, job_id: str, index: int) -> str:
        """The real output path of array task ``index`` (-1: not an array)."""
        raise NotImplementedError

    def parse_job_id(self, stdout: str) -> str:
        """The job id in the submit command's output ("" if there is none)."""
        match = re.match(r"\s*(\d+)", stdout)
        return match.group(1) if match else ""

    def job_states(self, job_id: str) -> dict[int, JobStatus] | JobStatus:
        """The scheduler's view of one job: per array index, or one status for all."""
        raise NotImplementedError

    def cancel_one(self, handle: LaunchHandle) -> list[str]:
        """The command that cancels one array task."""
        raise NotImplementedError

    def cpus_directive(self, cpus: int) -> str | None:
        """The directive giving one task ``cpus`` cores, where the system has one form for
        it (Slurm); elsewhere None, and the site's form goes in ``directives``."""
        return None

    # -- the Launcher interface ---------------------------------------------------------------

    def jobs_dir(self) -> Path:
        folder = self.paths.dir / "jobs"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return folder

    def start(self, spec: LaunchSpec) -> list[LaunchHandle]:
        jobs = self.jobs_dir()
        # unique per submission, readable in `ls jobs/`: engines-20261201-145012-4242-1
        self._submitted += 1
        stem = f"{spec.role}s-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{self._submitted}"
        array = spec.role == "engine"
        pattern = self.output_pattern(jobs, stem, array)
        script = jobs / f"{stem}.sh"
        text = self.job_script(spec, pattern)
        fd = os.open(script, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        argv = [*self.submit_command, str(script)]
        try:
            done = run_command(argv, cwd=jobs)
        except LauncherError as exc:
            raise BatchSubmitError(f"cannot submit {script}: {exc}") from exc
        job_id = self.parse_job_id(done.stdout) if done.returncode == 0 else ""
        if not job_id:
            said = (done.stderr.strip() or done.stdout.strip() or "(no output)")[-2000:]
            raise BatchSubmitError(
                f"{shlex.join(argv)} refused the job (exit code {done.returncode}): {said}"
            )
        tasks, per_task = self.array_shape(spec) if array else (1, 1)
        extra = {"script": str(script)}
        if array and wants_relay(self.options):
            extra[RELAY_KEY] = str(per_task)  # one handle, a relay and its engines
        return [
            LaunchHandle(
                self.name,
                spec.role,
                job_id=job_id,
                array_index=i,
                output=self.output_file(pattern, job_id, i),
                extra=extra,
            )
            for i in (range(tasks) if array else [-1])
        ]

    def job_script(self, spec: LaunchSpec, output: str) -> str:
        """The job script for ``spec`` from the template (the user's, if configured)."""
        options = self.options
        if options.template:
            source = Path(options.template).expanduser()
            try:
                template = source.read_text()
            except OSError as exc:
                raise LauncherError(f"cannot read job-script template {source}: {exc}") from exc
        else:
            source = Path("templates") / self.template_name
            template = (
                importlib.resources.files("pxcluster.launchers")
                .joinpath("templates", self.template_name)
                .read_text()
            )
        directives = []
        if spec.role == "engine":
            tasks, per_task = self.array_shape(spec)
            directives.append(self.array_directive(tasks))
            cpus = self.cpus_directive(per_task) if per_task > 1 else None
            if cpus:
                directives.append(cpus)
        if options.queue:
            directives.append(self.queue_directive(options.queue))
        walltime = walltime_seconds(options.walltime) if options.walltime else 0
        if walltime:
            directives.append(self.walltime_directive(walltime))
        if options.account:
            directives.append(self.account_directive(options.account))
        directives += options.directives
        lines = [d if d.startswith("#") else f"{self.prefix} {d}" for d in directives]
        setup = [f"module load {shlex.quote(m)}" for m in options.modules]
        setup += options.setup
        end_time = (
            f"export PXCLUSTER_END_TIME=$(( $(date +%s) + {walltime} ))"
            if walltime
            else "# no walltime set here: the scheduler's default limit applies"
        )
        values = {
            "role": spec.role,
            "profile": self.paths.name,
            "job_name": job_name(self.paths.name, spec.role),
            "output": output,
            "directives": "\n".join(lines),
            "setup": "\n".join(setup),
            "end_time": end_time,
            "run": self.run_block(spec),
        }
        return render(template, values, str(source))

    def array_shape(self, spec: LaunchSpec) -> tuple[int, int]:
        """(array tasks, engines per task) for an engine ``spec``: one engine per task, or
        with ``--relay`` one relay per task and ``engines_per_job`` engines behind it (the
        last task the rest)."""
        if not wants_relay(self.options):
            return spec.count, 1
        per_task = min(engines_per_job(self.options, self.name), max(spec.count, 1))
        return -(-spec.count // per_task), per_task

    def run_block(self, spec: LaunchSpec) -> str:
        """The shell lines that start the process (the engine connection file, inline)."""
        python = shlex.quote(self.options.python or spec.argv()[0])
        env = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in spec.env.items())
        command = shlex.join(spec.argv()[1:])
        if spec.role != "engine" or not spec.connection:
            return f"{env}exec {python} {command}"
        json.loads(spec.connection)  # it goes into a here-document: it must be one JSON text
        start = f'{python} {command} --file "$conn"'
        if wants_relay(self.options):
            # one relay, taking the connection file; its engines reach it on this host
            _, per_task = self.array_shape(spec)
            relay = relayed(spec, per_task).argv()[1:]
            cut = relay.index("--engines")
            start = (
                f"engines=$(( {spec.count} - PXCLUSTER_ARRAY_INDEX * {per_task} ))\n"
                f"if [ $engines -gt {per_task} ]; then engines={per_task}; fi\n"
                f'{python} {shlex.join(relay[:cut])} --file "$conn" --engines "$engines" '
                f"{shlex.join(relay[cut + 2 :])}"
            )
        return (
            f"{env}umask 077\n"
            'conn="${TMPDIR:-/tmp}/pxcluster-engine-$$.json"\n'
            "cat > \"$conn\" <<'PXCLUSTER_CONNECTION_END'\n"
            f"{spec.connection.strip()}\n"
            "PXCLUSTER_CONNECTION_END\n"
            f"{start}\n"
            "status=$?\n"
            'rm -f "$conn"\n'
            "exit $status"
        )

    def poll(self, handles: Sequence[LaunchHandle]) -> list[JobStatus]:
        states: dict[str, dict[int, JobStatus] | JobStatus] = {}
        out = []
        for handle in handles:
            if handle.job_id not in states:
                try:
                    states[handle.job_id] = self.job_states(handle.job_id)
                except LauncherError as exc:
                    states[handle.job_id] = JobStatus(JobState.UNKNOWN, str(exc))
            known = states[handle.job_id]
            if isinstance(known, JobStatus):
                out.append(known)
            else:
                out.append(
                    known.get(handle.array_index)
                    or known.get(-1)
                    or JobStatus(JobState.FINISHED, f"{self.name} no longer lists it")
                )
        return out

    def cancel_commands(self, handles: Sequence[LaunchHandle]) -> list[list[str]]:
        """The commands that cancel exactly these handles (whole jobs by default; systems
        that can name one array task override this, so stopping one engine spares the rest)."""
        jobs = sorted({h.job_id for h in handles if h.job_id})
        return [[*self.cancel_command, *jobs]] if jobs else []

    def stop(self, handles: Sequence[LaunchHandle], timeout: float = 10.0) -> None:
        """Cancel the handles' jobs and wait up to ``timeout`` s for them to leave the queue
        (a scheduler slow to clean up is logged, not an error: the jobs are cancelled).

        Raises:
            LauncherError: the cancel command is missing here, so nothing was cancelled.
        """
        commands = self.cancel_commands(handles)
        said = []
        for argv in commands:
            done = run_command(argv)  # raises if the command is missing
            if done.returncode != 0:
                said.append(f"{shlex.join(argv)}: {(done.stderr or done.stdout).strip()}")
        deadline = time.monotonic() + timeout
        while commands:
            states = self.poll(handles)
            if all(s.state.ended for s in states):
                return
            if time.monotonic() >= deadline:
                left = sorted(
                    {
                        h.describe()
                        for h, s in zip(handles, states, strict=True)
                        if not s.state.ended
                    }
                )
                log.warning(
                    "%s still listed %.0f s after cancelling%s",
                    ", ".join(left),
                    timeout,
                    f" ({'; '.join(said)})" if said else "",
                )
                return
            time.sleep(0.2)

    def signal(self, handle: LaunchHandle, signum: int) -> None:
        if signum not in (signals.SIGTERM, signals.SIGKILL):
            raise LauncherError(
                f"{self.name} can only end a job's engine (SIGTERM/SIGKILL), "
                f"not send it {signals.Signals(signum).name}"
            )
        done = run_command(self.cancel_one(handle))
        if done.returncode != 0:
            raise LauncherError(
                f"cannot cancel {handle.describe()}: {done.stderr.strip() or done.stdout.strip()}"
            )


def job_name(profile: str, role: str) -> str:
    """A job name every scheduler takes: letters, digits, ``-`` and ``_``; not a digit first."""
    clean = re.sub(r"[^A-Za-z0-9_-]", "_", profile)[:40]
    return f"px-{clean}-{role[0]}"


def expand_indices(text: str) -> list[int]:
    """``0-3``, ``1,3,5-7``, ``0-9%2`` or ``1-4:1`` -> the indices listed."""
    out: list[int] = []
    for part in text.split("%")[0].split(","):
        part, _, step_text = part.partition(":")
        step = int(step_text) if step_text.isdigit() else 1
        first, _, last = part.partition("-")
        if first.isdigit():
            end = int(last) if last.isdigit() else int(first)
            out.extend(range(int(first), end + 1, max(1, step)))
    return out
