"""Launchers layer: the ``sge`` launcher (Son of/Univa Grid Engine: qsub, qdel, qstat -xml).

SGE numbers array tasks from 1; pxcluster's array index is ``SGE_TASK_ID - 1`` (the
template exports it). Live state comes from ``qstat -xml`` (``qw`` pending, ``hqw`` held,
``Eqw`` failed at dispatch, ``r``/``t`` running, ``s``/``S``/``T`` suspended, ``d``
deleting); a job qstat no longer lists has ended, and ``qacct`` (once the accounting
file has it) says whether it failed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from pathlib import Path

from pxcluster._errors import LauncherError
from pxcluster.launchers._batch import BatchLauncher, expand_indices, hms, run_command
from pxcluster.launchers._launcher import JobState, JobStatus, LaunchHandle


def status_of(state: str, queue: str, error: str = "") -> JobStatus:
    """A JobStatus from qstat's state letters (``hqw``, ``r``, ``Eqw``...)."""
    host = queue.partition("@")[2]
    if "E" in state:
        return JobStatus(JobState.FAILED, f"error state {state}: {error or 'see qstat -j'}")
    if "d" in state:
        return JobStatus(JobState.RUNNING, "being deleted", host)
    if "h" in state:
        return JobStatus(JobState.PENDING, f"held ({state})", host)
    if "s" in state.lower() or "T" in state:
        return JobStatus(JobState.PENDING, f"suspended ({state})", host)
    if "q" in state or "w" in state:
        return JobStatus(JobState.PENDING, "queued", host)
    return JobStatus(JobState.RUNNING, "", host)


class SgeLauncher(BatchLauncher):
    """Grid Engine: engines as ``qsub -t 1-N`` arrays; see ``BatchLauncher``."""

    name = "sge"
    prefix = "#$"
    template_name = "sge.sh"
    submit_command = ("qsub", "-terse")
    cancel_command = ("qdel",)

    def array_directive(self, count: int) -> str:
        return f"-t 1-{count}"

    def queue_directive(self, queue: str) -> str:
        return f"-q {queue}"

    def walltime_directive(self, seconds: int) -> str:
        return f"-l h_rt={hms(seconds)}"

    def account_directive(self, account: str) -> str:
        return f"-A {account}"

    def output_pattern(self, jobs: Path, stem: str, array: bool) -> str:
        return str(jobs / (f"{stem}-$JOB_ID.$TASK_ID.out" if array else f"{stem}-$JOB_ID.out"))

    def output_file(self, pattern: str, job_id: str, index: int) -> str:
        return pattern.replace("$JOB_ID", job_id).replace("$TASK_ID", str(index + 1))

    def job_states(self, job_id: str) -> dict[int, JobStatus] | JobStatus:
        done = run_command(["qstat", "-xml", "-u", "*"])
        if done.returncode != 0:
            raise LauncherError(f"qstat -xml: {(done.stderr or done.stdout).strip()}")
        try:
            root = ElementTree.fromstring(done.stdout)
        except ElementTree.ParseError as exc:
            raise LauncherError(f"qstat -xml gave no XML: {exc}") from exc
        states: dict[int, JobStatus] = {}
        error = ""
        for job in root.iter("job_list"):
            if job.findtext("JB_job_number", "") != job_id:
                continue
            state = job.findtext("state", "")
            if "E" in state and not error:
                error = self._error_reason(job_id)
            status = status_of(state, job.findtext("queue_name", "") or "", error)
            tasks = job.findtext("tasks", "")
            if not tasks:
                states[-1] = status
            for task in expand_indices(tasks):
                states[task - 1] = status
        if states:
            return states
        return self._accounted(job_id)

    def _error_reason(self, job_id: str) -> str:
        done = run_command(["qstat", "-j", job_id])
        reasons = re.findall(r"^error reason\s+\d+:\s*(.*)$", done.stdout, re.MULTILINE)
        return "; ".join(dict.fromkeys(reasons))[:500]

    def _accounted(self, job_id: str) -> dict[int, JobStatus] | JobStatus:
        """A job qstat no longer lists: qacct's record of each task, if it has one yet."""
        done = run_command(["qacct", "-j", job_id])
        if done.returncode != 0:
            return JobStatus(JobState.FINISHED, "no longer listed by qstat")
        states: dict[int, JobStatus] = {}
        for record in done.stdout.split("=" * 20):
            fields = dict(re.findall(r"^(\w+)\s+(.*?)\s*$", record, re.MULTILINE))
            if not fields:
                continue
            task = int(fields["taskid"]) - 1 if fields.get("taskid", "").isdigit() else -1
            failed = fields.get("failed", "0").split()[0]
            code = fields.get("exit_status", "0").split()[0]
            host = fields.get("hostname", "")
            if failed != "0" or code != "0":
                words = f"exit status {code}" + (
                    f", failed: {fields.get('failed')}" if failed != "0" else ""
                )
                states[task] = JobStatus(JobState.FAILED, words, host)
            else:
                states[task] = JobStatus(JobState.FINISHED, "", host)
        return states or JobStatus(JobState.FINISHED, "no longer listed by qstat")

    def cancel_commands(self, handles: Sequence[LaunchHandle]) -> list[list[str]]:
        by_job: dict[str, list[int]] = {}
        for handle in handles:
            if handle.job_id:
                by_job.setdefault(handle.job_id, []).append(handle.array_index)
        commands = []
        for job, indices in sorted(by_job.items()):
            if -1 in indices:
                commands.append(["qdel", job])
                continue
            tasks = sorted(i + 1 for i in indices)
            if tasks == list(range(tasks[0], tasks[-1] + 1)):
                commands.append(["qdel", job, "-t", f"{tasks[0]}-{tasks[-1]}"])
            else:
                commands += [["qdel", job, "-t", str(t)] for t in tasks]
        return commands

    def cancel_one(self, handle: LaunchHandle) -> list[str]:
        if handle.array_index >= 0:
            return ["qdel", handle.job_id, "-t", str(handle.array_index + 1)]
        return ["qdel", handle.job_id]
