"""Launchers layer, the pure parts: handles, settings, job scripts, schedulers' state words;
and the controller's walltime rule (no new tasks to an engine whose job is about to end)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from pxcluster._errors import LauncherError
from pxcluster.launchers import (
    JobState,
    LaunchHandle,
    LaunchSpec,
    launcher_class,
    make_launcher,
    match_handle,
)
from pxcluster.launchers._batch import expand_indices, render, walltime_seconds
from pxcluster.launchers._pbs import status_of as pbs_status
from pxcluster.launchers._sge import status_of as sge_status
from pxcluster.launchers._slurm import _fields
from pxcluster.launchers._slurm import status_of as slurm_status
from pxcluster.profile import LauncherConfig, ProfilePaths, launch_info, load_launcher_config
from pxcluster.wire import Message, MsgType, pack_header, unpack_header


def test_a_handle_survives_the_json_record() -> None:
    handle = LaunchHandle(
        "slurm", "engine", job_id="12", array_index=3, output="/o", extra={"a": "b"}
    )
    again = LaunchHandle.from_dict(json.loads(json.dumps(handle.to_dict())))
    assert again == handle
    assert handle.describe() == "slurm job 12[3]"
    with pytest.raises(ValueError, match="not a launch handle"):
        LaunchHandle.from_dict({"role": "engine"})


def test_every_launcher_name_finds_its_class_and_a_wrong_one_lists_them() -> None:
    for name in ("local", "slurm", "sge", "pbs"):
        assert launcher_class(name).name == name
    with pytest.raises(LauncherError, match="choose one of local, mpi, ssh, slurm, sge, pbs"):
        launcher_class("lsf")


def test_engines_are_matched_to_handles_by_job_and_index_or_by_pid() -> None:
    handles = [LaunchHandle("pbs", job_id="12[].server", array_index=i) for i in range(3)] + [
        LaunchHandle("local", pid=4242, host="h1")
    ]
    assert match_handle(handles, {"job_id": "12", "array_index": 2}) == handles[2]
    assert match_handle(handles, {}, pid=4242, hostname="h1") == handles[3]
    assert match_handle(handles, {}, pid=4242, hostname="h2") is None
    assert match_handle(handles, {"job_id": "13", "array_index": 0}) is None


def test_launch_info_reads_only_what_is_set_and_valid() -> None:
    env = {
        "PXCLUSTER_LAUNCHER": "slurm",
        "PXCLUSTER_JOB_ID": "7",
        "PXCLUSTER_ARRAY_INDEX": "2",
        "PXCLUSTER_END_TIME": "1800000000",
    }
    assert launch_info(env) == {
        "launcher": "slurm",
        "job_id": "7",
        "array_index": 2,
        "end_time": 1800000000.0,
    }
    assert launch_info({"PXCLUSTER_ARRAY_INDEX": "x"}) == {}


def test_launcher_settings_merge_sections_and_reject_bad_ones(tmp_path: Path) -> None:
    config = tmp_path / "pxcluster.toml"
    config.write_text(
        '[launcher]\nqueue = "debug"\nwalltime = 30\nmodules = "python"\n'
        '[slurm]\nqueue = "gpu"\ndirectives = ["--mem=1G"]\nshared_filesystem = false\n'
    )
    slurm = load_launcher_config(config, "slurm")
    assert (slurm.queue, slurm.walltime, slurm.modules) == ("gpu", "30", ("python",))
    assert slurm.directives == ("--mem=1G",)
    assert slurm.extra == {"shared_filesystem": False}
    assert load_launcher_config(config, "sge").queue == "debug"
    assert slurm.replace(queue=None, account="p1").account == "p1"
    config.write_text('[launcher]\nqeue = "x"\n')
    with pytest.raises(ValueError, match=r"unknown setting \[launcher\] qeue"):
        load_launcher_config(config, "slurm")
    config.write_text("[slurm]\ndirectives = [1]\n")
    with pytest.raises(ValueError, match="must be a list of strings"):
        load_launcher_config(config, "slurm")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 1800), ("1:30", 90), ("01:00:00", 3600), ("2-00:00:10", 172810)],
)
def test_walltimes_read_as_slurm_reads_them(text: str, seconds: int) -> None:
    assert walltime_seconds(text) == seconds


def test_a_bad_walltime_or_placeholder_says_what_is_wrong() -> None:
    with pytest.raises(LauncherError, match="walltime '1h'"):
        walltime_seconds("1h")
    with pytest.raises(LauncherError, match=r"uses \{\{qeue\}\}.*known placeholders: a"):
        render("x {{qeue}}", {"a": "1"}, "my.sh")


def test_array_ranges_expand_in_every_schedulers_spelling() -> None:
    assert expand_indices("0-3") == [0, 1, 2, 3]
    assert expand_indices("1,3,5-6%2") == [1, 3, 5, 6]
    assert expand_indices("1-5:2") == [1, 3, 5]
    assert expand_indices("N/A") == []


def test_the_job_script_carries_directives_setup_and_the_connection(tmp_path: Path) -> None:
    options = LauncherConfig(
        queue="debug",
        walltime="10",
        account="proj",
        directives=("--mem=1G", "#SBATCH -x n1"),
        modules=("python/3.11",),
        setup=("echo hi",),
        python="/opt/py/bin/python",
    )
    launcher = make_launcher("slurm", ProfilePaths.for_profile("t", tmp_path), options)
    spec = LaunchSpec(
        "engine",
        "pxcluster.cli.engine",
        ("--profile", "t"),
        count=4,
        connection=json.dumps({"url": "tcp://1.2.3.4:5", "key": "k"}),
    )
    script = launcher.job_script(spec, "/out-%A_%a.out")  # type: ignore[attr-defined]
    for line in (
        "#SBATCH --array=0-3",
        "#SBATCH --partition=debug",
        "#SBATCH --time=0:10:00",
        "#SBATCH --account=proj",
        "#SBATCH --mem=1G",
        "#SBATCH -x n1",
        "module load python/3.11",
        "echo hi",
        "PXCLUSTER_END_TIME=$(( $(date +%s) + 600 ))",
        '"url": "tcp://1.2.3.4:5"',
        '/opt/py/bin/python -m pxcluster.cli.engine --profile t --file "$conn"',
    ):
        assert line in script, line


def test_slurm_states_keep_the_schedulers_reason() -> None:
    held = _fields(
        "JobId=7 ArrayJobId=7 ArrayTaskId=0-2 JobState=PENDING Reason=JobHeldUser "
        "ExitCode=0:0 NodeList="
    )
    assert slurm_status(held).describe() == "pending (held: JobHeldUser)"
    failed = _fields("JobId=8 JobState=FAILED Reason=NonZeroExitCode ExitCode=127:0 NodeList=n1")
    status = slurm_status(failed)
    assert status.state == JobState.FAILED
    assert status.host == "n1"
    assert status.reason == "FAILED, NonZeroExitCode, exit code 127:0"
    timeout = slurm_status(_fields("JobState=TIMEOUT Reason=TimeLimit ExitCode=0:15"))
    assert timeout.describe() == "failed (TIMEOUT, TimeLimit, exit code 0:15)"
    assert slurm_status(_fields("JobState=COMPLETED Reason=None")).state == JobState.FINISHED
    running = slurm_status(_fields("JobState=RUNNING Reason=None EndTime=2026-12-01T15:50:00"))
    assert time.localtime(running.end_time)[:6] == (2026, 12, 1, 15, 50, 0)
    assert slurm_status(_fields("JobState=RUNNING EndTime=Unknown")).end_time == 0.0


def test_sge_and_pbs_states() -> None:
    assert sge_status("hqw", "").describe() == "pending (held (hqw))"
    assert sge_status("r", "all.q@n2").host == "n2"
    assert sge_status("Eqw", "", "can't chdir").state == JobState.FAILED
    assert pbs_status({"job_state": "H"}).describe() == "pending (held)"
    assert pbs_status({"job_state": "C", "exit_status": "0"}).state == JobState.FINISHED
    assert pbs_status({"job_state": "C", "exit_status": "271"}).state == JobState.FAILED


# -- the controller's side of walltime ---------------------------------------------------------


def _register(hub, identity: bytes, launch: dict) -> int:  # type: ignore[no-untyped-def]
    out = hub.engine_message(
        identity,
        Message(MsgType.REGISTER, f"{identity!r}-r", {"hostname": "h", "pid": 1, "launch": launch}),
    )
    return int(out[0].msg.content["id"])


def _task(hub, task_id: str):  # type: ignore[no-untyped-def]
    msg = Message(MsgType.TASK, task_id, {"kind": "map", "counts": [1]}, [b"f"], session="c")
    header = pack_header(msg)
    return hub.client_message(b"c", dataclasses.replace(msg, header=header))


def test_an_engine_near_its_walltime_gets_no_new_tasks(make_hub) -> None:  # type: ignore[no-untyped-def]
    hub = make_hub(heartbeat_timeout=3.0, walltime_margin=60.0)
    ending = _register(
        hub,
        b"e0",
        {"launcher": "slurm", "job_id": "9", "array_index": 0, "end_time": time.time() + 30},
    )
    lasting = _register(hub, b"e1", {"end_time": time.time() + 3600})
    assert hub.monitor_report(0)["launch"][0] == [ending, hub.engines[ending].launch]
    hub.check_liveness()
    sent = []
    for i in range(3):
        sent += [
            (o.identity, unpack_header(o.header, o.buffers).id)
            for o in _task(hub, f"c-{i}")
            if o.to == "engine" and o.msg is None
        ]
    assert sent
    assert {identity for identity, _ in sent} == {b"e1"}, (sent, lasting)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_engine_silent_after_its_walltime_is_reported_with_its_job(make_hub) -> None:  # type: ignore[no-untyped-def]
    clock = _Clock()
    hub = make_hub(heartbeat_timeout=3.0, clock=clock)
    hub.client_message(b"c", Message(MsgType.CONNECT, "c-0"))
    launch = {"launcher": "slurm", "job_id": "12", "array_index": 3, "end_time": time.time() - 1}
    _register(hub, b"e0", launch)
    hub.client_message(b"c", Message(MsgType.EXECUTE, "c-1", targets=[0]))
    for _ in range(12):  # silent for 6 s of pings
        clock.now += 0.5
        hub.next_ping()
    out = hub.check_liveness()
    (failed,) = [o.msg for o in out if o.msg.type == MsgType.REPLY]
    assert "its slurm job 12[3] reached its walltime" in failed.content["error"]


def test_an_idle_engine_leaves_cleanly_before_its_walltime(make_hub) -> None:  # type: ignore[no-untyped-def]
    hub = make_hub(heartbeat_timeout=3.0, walltime_margin=60.0)
    hub.client_message(b"c", Message(MsgType.CONNECT, "c-0"))
    _register(hub, b"busy", {"end_time": time.time() + 20})
    _register(hub, b"idle", {"end_time": time.time() + 20})
    _register(hub, b"later", {"end_time": time.time() + 45})
    hub.client_message(b"c", Message(MsgType.EXECUTE, "c-1", targets=[0]))
    out = hub.check_liveness()
    assert [(o.identity, o.msg.type) for o in out if o.to == "engine"] == [
        (b"idle", MsgType.SHUTDOWN)
    ]
    notes = [o.msg.content for o in out if o.msg is not None and o.msg.type == MsgType.NOTIFY]
    assert [(n["event"], n["engine"]) for n in notes] == [("stopped", 1)]
    assert hub.engine_ids() == [0, 2]  # busy finishes its work first; later has 45 s left


def test_with_relay_each_array_task_is_one_relay_with_its_share_of_the_engines(
    tmp_path: Path,
) -> None:
    import subprocess

    options = LauncherConfig(extra={"relay": "1", "engines_per_job": 4})
    launcher = make_launcher("sge", ProfilePaths.for_profile("t", tmp_path), options)
    spec = LaunchSpec(
        "engine",
        "pxcluster.cli.engine",
        ("--profile", "t", "--log-to-file"),
        count=10,
        connection=json.dumps({"url": "tcp://1.2.3.4:5", "key": "k"}),
    )
    script = launcher.job_script(spec, "/out")  # type: ignore[attr-defined]
    assert "#$ -t 1-3" in script  # 10 engines, 4 a task: 3 tasks
    assert (
        '-m pxcluster.cli.relay --profile t --log-to-file --file "$conn" --engines "$engines" '
        "-- --profile t --log-to-file" in script
    )
    lines = [line for line in script.splitlines() if "engines" in line and "relay" not in line]
    shares = []
    for index in range(3):
        shell = f"PXCLUSTER_ARRAY_INDEX={index}\n" + "\n".join(lines) + '\necho "$engines"'
        said = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, check=True)
        shares.append(int(said.stdout))
    assert shares == [4, 4, 2]
    slurm = make_launcher("slurm", ProfilePaths.for_profile("t", tmp_path), options)
    assert "#SBATCH --cpus-per-task=4" in slurm.job_script(spec, "/o")  # type: ignore[attr-defined]

    unsized = make_launcher("pbs", ProfilePaths.for_profile("t", tmp_path), LauncherConfig(
        extra={"relay": "true"}))  # fmt: skip
    with pytest.raises(LauncherError, match="--engines-per-job K"):
        unsized.job_script(spec, "/o")  # type: ignore[attr-defined]
