"""Launchers layer: the ``pbs`` launcher (qsub, qdel, ``qstat -f``), for Torque and PBS Pro.

Tested through Slurm's Torque-syntax wrappers (``slurm-wlm-torque``), since Debian has no
PBS: they take ``#PBS -t`` arrays, ``-q``, ``-l walltime=`` and ``-A``, but ignore ``-o``
(output goes to ``SCRIPT.oJOBID`` in the submit folder, which ``output_files`` lists too),
report held jobs as queued, and keep no exit status. State comes from ``qstat -f ID``:
``job_state`` (Q, H, W, T, S: pending; R, E: running; C, F: ended) with ``comment`` and
``exit_status`` where the server has them.
"""

from __future__ import annotations

import re
from pathlib import Path

from pxcluster._errors import LauncherError
from pxcluster.launchers._batch import BatchLauncher, hms, run_command
from pxcluster.launchers._launcher import JobState, JobStatus, LaunchHandle

_PENDING = {
    "Q": "queued",
    "H": "held",
    "W": "waiting for its start time",
    "T": "moving",
    "S": "suspended",
    "B": "",
}


def status_of(fields: dict[str, str]) -> JobStatus:
    """A JobStatus from the ``key = value`` lines of one ``qstat -f`` record."""
    state = fields.get("job_state", "")
    comment = fields.get("comment", "")
    host = fields.get("exec_host", "").split("/")[0]
    if state in _PENDING:
        reason = "; ".join(r for r in (_PENDING[state], comment) if r)
        return JobStatus(JobState.PENDING, reason, host)
    if state in ("R", "E"):
        return JobStatus(JobState.RUNNING, "", host)
    code = fields.get("exit_status", fields.get("Exit_status", "0"))
    if state in ("C", "F", "X") and code in ("0", ""):
        return JobStatus(JobState.FINISHED, comment, host)
    words = [w for w in (f"job_state {state}", comment, f"exit status {code}") if w]
    return JobStatus(JobState.FAILED, ", ".join(words), host)


class PbsLauncher(BatchLauncher):
    """PBS/Torque: engines as ``qsub -t`` arrays; see ``BatchLauncher``."""

    name = "pbs"
    prefix = "#PBS"
    template_name = "pbs.sh"
    submit_command = ("qsub",)
    cancel_command = ("qdel",)

    def array_directive(self, count: int) -> str:
        return f"-t 0-{count - 1}"

    def queue_directive(self, queue: str) -> str:
        return f"-q {queue}"

    def walltime_directive(self, seconds: int) -> str:
        return f"-l walltime={hms(seconds)}"

    def account_directive(self, account: str) -> str:
        return f"-A {account}"

    def output_pattern(self, jobs: Path, stem: str, array: bool) -> str:
        return str(jobs / f"{stem}.out")

    def output_file(self, pattern: str, job_id: str, index: int) -> str:
        return pattern

    def parse_job_id(self, stdout: str) -> str:
        # Torque prints 12.server or 12[].server for an array; the wrappers print 12
        match = re.match(r"\s*(\d+(?:\[\])?(?:\.\S+)?)", stdout)
        return match.group(1) if match else ""

    def job_states(self, job_id: str) -> dict[int, JobStatus] | JobStatus:
        done = run_command(["qstat", "-f", job_id])
        said = (done.stderr or "").strip()
        if done.returncode != 0 or not done.stdout.strip():
            if done.returncode == 153 or "Unknown Job" in said or not said:
                return JobStatus(JobState.FINISHED, "no longer listed by qstat")
            raise LauncherError(f"qstat -f {job_id}: {said}")
        fields = dict(re.findall(r"^\s*([\w.]+) = (.*)$", done.stdout, re.MULTILINE))
        return status_of(fields)

    def cancel_one(self, handle: LaunchHandle) -> list[str]:
        if handle.array_index >= 0:
            base = handle.job_id.replace("[]", "")
            head, dot, server = base.partition(".")
            return ["qdel", f"{head}[{handle.array_index}]{dot}{server}"]
        return ["qdel", handle.job_id]

    def output_files(self, handle: LaunchHandle) -> list[Path]:
        files = super().output_files(handle)
        script = handle.extra.get("script", "")
        if script:
            job = handle.job_id.split(".")[0].replace("[]", "")
            for suffix in ("o", "e"):
                path = Path(f"{script}.{suffix}{job}")
                if path.exists() or not files:
                    files.append(path)
        return [f for f in files if f.exists()] or files
