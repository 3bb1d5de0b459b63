"""Launchers layer: the ``slurm`` launcher (sbatch, scancel, ``scontrol show job``).

State comes from ``scontrol -o show job ID``, which lists pending, running and recently
finished array tasks with Slurm's ``Reason`` (JobHeldUser, Resources, Priority, ...) and
exit code, and works without accounting (``sacct`` needs slurmdbd).
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from pxcluster._errors import LauncherError
from pxcluster.launchers._batch import BatchLauncher, expand_indices, hms, run_command
from pxcluster.launchers._launcher import JobState, JobStatus, LaunchHandle

_RUNNING = {"RUNNING", "CONFIGURING", "COMPLETING", "STAGE_OUT", "RESIZING", "SIGNALING"}
_PENDING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED", "STOPPED"}


def _fields(line: str) -> dict[str, str]:
    return dict(re.findall(r"(?:^|\s)([A-Za-z][\w/:]*)=(\S*)", line))


def _epoch(text: str) -> float:
    """Slurm's local ``2026-12-01T15:50:00`` as epoch seconds (0.0: Unknown, or none)."""
    try:
        return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return 0.0


def status_of(fields: dict[str, str]) -> JobStatus:
    """A JobStatus from one ``scontrol -o show job`` record."""
    state = fields.get("JobState", "")
    reason = fields.get("Reason", "None")
    reason = "" if reason in ("None", "(null)") else reason
    host = fields.get("BatchHost", "") or fields.get("NodeList", "")
    host = "" if host in ("(null)", "None") else host
    if state in _PENDING:
        if reason.startswith("JobHeld") or state == "REQUEUE_HOLD":
            reason = f"held: {reason}" if reason else "held"
        elif state != "PENDING":
            reason = f"{state.lower()}: {reason}" if reason else state.lower()
        return JobStatus(JobState.PENDING, reason, host)
    if state in _RUNNING:
        return JobStatus(JobState.RUNNING, "", host, _epoch(fields.get("EndTime", "")))
    if state == "COMPLETED":
        return JobStatus(JobState.FINISHED, "", host)
    exit_code = fields.get("ExitCode", "")
    words = [state or "?"]
    if reason:
        words.append(reason)
    if exit_code and exit_code != "0:0":
        words.append(f"exit code {exit_code}")
    return JobStatus(JobState.FAILED, ", ".join(words), host)


class SlurmLauncher(BatchLauncher):
    """Slurm: engines as ``sbatch --array``; see ``BatchLauncher``."""

    name = "slurm"
    prefix = "#SBATCH"
    template_name = "slurm.sh"
    submit_command = ("sbatch", "--parsable")
    cancel_command = ("scancel",)

    def array_directive(self, count: int) -> str:
        return f"--array=0-{count - 1}"

    def queue_directive(self, queue: str) -> str:
        return f"--partition={queue}"

    def walltime_directive(self, seconds: int) -> str:
        return f"--time={hms(seconds)}"

    def account_directive(self, account: str) -> str:
        return f"--account={account}"

    def cpus_directive(self, cpus: int) -> str:
        return f"--cpus-per-task={cpus}"

    def output_pattern(self, jobs: Path, stem: str, array: bool) -> str:
        return str(jobs / (f"{stem}-%A_%a.out" if array else f"{stem}-%j.out"))

    def output_file(self, pattern: str, job_id: str, index: int) -> str:
        return pattern.replace("%A", job_id).replace("%a", str(index)).replace("%j", job_id)

    def job_states(self, job_id: str) -> dict[int, JobStatus] | JobStatus:
        done = run_command(["scontrol", "-o", "show", "job", job_id])
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip()
            if "Invalid job id" in said:
                return JobStatus(JobState.FINISHED, "no longer listed by Slurm")
            raise LauncherError(f"scontrol show job {job_id}: {said}")
        states: dict[int, JobStatus] = {}
        for line in done.stdout.splitlines():
            fields = _fields(line)
            if not fields:
                continue
            status = status_of(fields)
            tasks = fields.get("ArrayTaskId", "")
            if not tasks or tasks == "N/A":
                states[-1] = status
            for index in expand_indices(tasks):
                states[index] = status
        return states

    def signal(self, handle: LaunchHandle, signum: int) -> None:
        """Any signal, to the engine's array task (``scancel --full --signal``: the batch
        shell and its children, i.e. the engine)."""
        name = signal.Signals(signum).name.removeprefix("SIG")
        done = run_command(["scancel", "--full", f"--signal={name}", self.task_id(handle)])
        if done.returncode != 0:
            raise LauncherError(
                f"cannot signal {handle.describe()}: {(done.stderr or done.stdout).strip()}"
            )

    def task_id(self, handle: LaunchHandle) -> str:
        """Slurm's name for the handle's array task (``12_3``) or job."""
        if handle.array_index >= 0:
            return f"{handle.job_id}_{handle.array_index}"
        return handle.job_id

    def cancel_commands(self, handles: Sequence[LaunchHandle]) -> list[list[str]]:
        tasks = sorted({self.task_id(h) for h in handles if h.job_id})
        return [["scancel", *tasks]] if tasks else []

    def cancel_one(self, handle: LaunchHandle) -> list[str]:
        return ["scancel", self.task_id(handle)]
