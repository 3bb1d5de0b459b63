"""Launchers layer: the ``ssh`` launcher, engines (or the controller) on other hosts.

``pxcluster start -n 5 --engines ssh --hosts h1,h2:4`` starts one engine on h1 and four on
h2: each ``HOST:K`` gives a host K slots (default 1), engines fill the slots in order and go
round again when ``-n`` is larger. ``--controller ssh --controller-host H`` runs the
controller on H, listening on every interface and writing H as its location.

No shared filesystem is needed: one ssh call per host runs
``python -m pxcluster.launchers._ssh_remote`` there, with the request (command line,
environment, and the engine connection, key included) on its stdin, never on a command line.
The engines get their connection in their environment; a controller's connection files are
sent back and written into this profile. What runs there is found again by pid and start
time (the handles), so ``pxcluster stop`` from any process stops it there too.

Settings (``[ssh]`` in ``pxcluster.toml``)::

    [ssh]
    hosts = ["h1", "h2:4"]           # or --hosts h1,h2:4
    controller_host = "h0"           # or --controller-host h0
    ssh = "ssh"                      # the ssh program
    ssh_args = ["-i", "~/.ssh/cluster_key"]   # more ssh options (port, key, config)
    python = "/opt/venv/bin/python"  # ([launcher] python) the Python there; default: ours
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import ipaddress
import json
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pxcluster._errors import LaunchFailed
from pxcluster.launchers._launcher import JobState, JobStatus, Launcher, LaunchHandle, LaunchSpec
from pxcluster.launchers._relayed import relayed, wants_relay
from pxcluster.profile import (
    ENGINE_CONNECTION_ENV,
    LAUNCHER_ENV,
    client_connection_from_json,
    engine_connection_from_json,
    write_connection,
)

#: Seconds one ssh call may take (a login plus a Python start on a slow host).
SSH_TIMEOUT = 60.0
#: Flags of ours that name paths on this host: not passed to the other one, which uses its
#: own profile folder (``~/.pxcluster/profile_NAME``) and gets its connection otherwise.
_LOCAL_PATH_FLAGS = ("--profile-dir", "--log-file", "--file")


@dataclasses.dataclass(frozen=True)
class HostSlots:
    """A host to ssh to (``[user@]host``) and how many engines it takes per round."""

    destination: str
    slots: int = 1


def parse_hosts(value: object) -> list[HostSlots]:
    """``"h1,h2:4"`` or ``["h1", "h2:4"]`` as host slots.

    Raises:
        LaunchFailed: empty, or a slot count that is not a positive number.
    """
    if isinstance(value, str):
        items: list[object] = list(value.split(","))
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        items = []
    hosts = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        name, _, count = item.rpartition(":") if ":" in item else (item, "", "1")
        if not count.isdigit() or int(count) < 1:
            raise LaunchFailed(f"--hosts {item!r}: the part after ':' must be a slot count")
        hosts.append(HostSlots(name, int(count)))
    if not hosts:
        raise LaunchFailed(
            "the ssh launcher needs hosts: --hosts h1,h2:4 (or [ssh] hosts in pxcluster.toml)"
        )
    return hosts


def spread(hosts: Sequence[HostSlots], count: int) -> list[tuple[str, int]]:
    """How many of ``count`` engines go to each host: slots in order, round and round."""
    order = [h.destination for h in hosts for _ in range(h.slots)]
    counts: dict[str, int] = {}
    for i in range(count):
        counts[order[i % len(order)]] = counts.get(order[i % len(order)], 0) + 1
    return list(counts.items())


def _without_local_paths(args: Sequence[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _LOCAL_PATH_FLAGS:
            skip = True
        elif not any(arg.startswith(flag + "=") for flag in _LOCAL_PATH_FLAGS):
            out.append(arg)
    return out


def _hostname_of(destination: str) -> str:
    return destination.rpartition("@")[2]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_reachable(connection: str, destinations: Sequence[str]) -> None:
    """Fail at once, not after the registration timeout, when the controller listens on
    loopback and the engines are to run elsewhere.

    Raises:
        LaunchFailed: so (the message says which flags fix it).
    """
    url = engine_connection_from_json(connection, "the engine connection").url
    controller = url.partition("://")[2].rpartition(":")[0]
    elsewhere = [d for d in destinations if not _is_loopback(_hostname_of(d))]
    if _is_loopback(controller) and elsewhere:
        raise LaunchFailed(
            f"the controller listens on {controller} (this machine only), which engines on "
            f"{', '.join(elsewhere)} cannot reach: start it with --ip (an address, 0.0.0.0 "
            "or an interface name) and, if they need another address, --location"
        )


class SshLauncher(Launcher):
    """Processes on other hosts over ssh; see ``Launcher`` and the module docstring."""

    name = "ssh"
    poll_interval = 2.0  # each poll is an ssh login per host

    # -- the ssh call ----------------------------------------------------------------------

    def _ssh_argv(self, destination: str) -> list[str]:
        extra = self.options.extra
        ssh_args = extra.get("ssh_args", [])
        if isinstance(ssh_args, str):
            ssh_args = shlex.split(ssh_args)
        remote = shlex.join([self._python(), "-m", "pxcluster.launchers._ssh_remote"])
        return [str(extra.get("ssh", "ssh")), "-o", "BatchMode=yes", *map(str, ssh_args),
                destination, remote]  # fmt: skip

    def _python(self) -> str:
        return self.options.python or sys.executable

    def call(
        self, destination: str, request: dict[str, Any], timeout: float = SSH_TIMEOUT
    ) -> dict[str, Any]:
        """Run one request on ``destination``; its JSON answer.

        Raises:
            LaunchFailed: ssh failed (the message has its command and error output), or
                the other end could not do it.
        """
        argv = self._ssh_argv(destination)
        try:
            done = subprocess.run(
                argv,
                input=json.dumps(request),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise LaunchFailed(f"ssh to {destination} did not answer within {timeout} s") from None
        except OSError as exc:
            raise LaunchFailed(f"cannot run {argv[0]}: {exc}") from exc
        try:
            answer: dict[str, Any] = json.loads(done.stdout)
        except ValueError:
            raise LaunchFailed(
                f"{shlex.join(argv)} failed (exit code {done.returncode}):\n"
                f"{(done.stderr or done.stdout).strip()[-2000:]}\n(is pxcluster installed "
                f"there, at {self._python()}? Set [ssh] python or [launcher] python)"
            ) from None
        if "error" in answer:
            raise LaunchFailed(f"on {destination}: {answer['error']}")
        return answer

    def _each_host(
        self, work: dict[str, dict[str, Any]], timeout: float = SSH_TIMEOUT
    ) -> dict[str, dict[str, Any]]:
        """``call`` each host's request, all hosts at once; raises the first failure."""
        answers, failures = self._each_host_settled(work, timeout)
        if failures:
            raise failures[0]
        return answers

    def _each_host_settled(
        self, work: dict[str, dict[str, Any]], timeout: float
    ) -> tuple[dict[str, dict[str, Any]], list[LaunchFailed]]:
        """Like ``_each_host``, but the answers that came and the failures apart."""
        answers: dict[str, dict[str, Any]] = {}
        failures: list[LaunchFailed] = []
        if not work:
            return answers, failures
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(work))) as pool:
            futures = {
                dest: pool.submit(self.call, dest, req, timeout) for dest, req in work.items()
            }
            for dest, future in futures.items():
                try:
                    answers[dest] = future.result()
                except LaunchFailed as exc:
                    failures.append(exc)
        return answers, failures

    # -- the contract ----------------------------------------------------------------------

    def start(self, spec: LaunchSpec) -> list[LaunchHandle]:
        args = _without_local_paths(spec.args)
        env = {**spec.env, LAUNCHER_ENV: self.name}
        if spec.role == "controller":
            destination = str(self.options.extra.get("controller_host", "")).strip()
            if not destination:
                raise LaunchFailed(
                    "--controller ssh needs --controller-host H "
                    "(or [ssh] controller_host in pxcluster.toml)"
                )
            if "--ip" not in args:
                args += ["--ip", "0.0.0.0"]
            if "--location" not in args:
                args += ["--location", _hostname_of(destination)]
            places = [(destination, 1)]
        else:
            connection = spec.connection or self.paths.engine_file.read_text()
            env[ENGINE_CONNECTION_ENV] = connection
            places = spread(parse_hosts(self.options.extra.get("hosts")), spec.count)
            _check_reachable(connection, [dest for dest, _ in places])
        spec = dataclasses.replace(spec, args=tuple(args))
        argv = spec.argv(self._python())
        profile = self.paths.name
        work = {
            dest: {"op": "start", "argv": argv, "count": count, "env": env,
                   "profile": profile, "role": spec.role, "timeout": spec.timeout}
            for dest, count in places
        }  # fmt: skip
        if spec.role == "engine" and wants_relay(self.options):  # --relay: one per host
            for dest, count in places:
                work[dest].update(argv=relayed(spec, count).argv(self._python()), count=1)
        answers, failures = self._each_host_settled(work, timeout=SSH_TIMEOUT + spec.timeout)
        handles = []
        for dest, answer in answers.items():
            for proc in answer["procs"]:
                handles.append(
                    LaunchHandle(
                        self.name,
                        spec.role,
                        host=str(answer["hostname"]),
                        pid=int(proc["pid"]),
                        started=float(proc["started"]),
                        output=str(proc["output"]),
                        extra={"ssh": dest},
                    )
                )
        if failures:  # leave nothing running on the hosts that did start
            self.stop(handles, timeout=3.0)
            raise failures[0]
        if spec.role == "controller":
            try:
                self._keep_connection_files(places[0][0], answers[places[0][0]])
            except LaunchFailed:
                self.stop(handles, timeout=3.0)
                raise
        return handles

    def _keep_connection_files(self, destination: str, answer: dict[str, Any]) -> None:
        """Write the remote controller's connection files into this profile."""
        if "client" not in answer:
            raise LaunchFailed(f"the controller on {destination}: {answer.get('error')}")
        self.paths.ensure()
        source = f"the controller's files on {destination}"
        write_connection(
            self.paths.engine_file, engine_connection_from_json(answer["engine"], source)
        )
        write_connection(
            self.paths.client_file, client_connection_from_json(answer["client"], source)
        )

    def _by_host(self, handles: Sequence[LaunchHandle]) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = {}
        for i, handle in enumerate(handles):
            groups.setdefault(handle.extra.get("ssh", handle.host), []).append(i)
        return groups

    def poll(self, handles: Sequence[LaunchHandle]) -> list[JobStatus]:
        out = [JobStatus(JobState.UNKNOWN, "not asked")] * len(handles)
        for dest, indexes in self._by_host(handles).items():
            procs = [[handles[i].pid, handles[i].started] for i in indexes]
            try:
                alive = self.call(dest, {"op": "poll", "procs": procs})["alive"]
            except LaunchFailed as exc:
                for i in indexes:
                    out[i] = JobStatus(JobState.UNKNOWN, str(exc).splitlines()[0])
                continue
            for i, running in zip(indexes, alive, strict=True):
                host = handles[i].host
                out[i] = (
                    JobStatus(JobState.RUNNING, host=host)
                    if running
                    else JobStatus(JobState.FINISHED, "exited", host=host)
                )
        return out

    def stop(self, handles: Sequence[LaunchHandle], timeout: float = 10.0) -> None:
        work = {
            dest: {"op": "stop", "timeout": timeout,
                   "procs": [[handles[i].pid, handles[i].started] for i in indexes]}
            for dest, indexes in self._by_host(handles).items()
        }  # fmt: skip
        with contextlib.suppress(LaunchFailed):  # a host gone is nothing left to stop
            self._each_host(work, timeout=SSH_TIMEOUT + 2 * timeout)

    def signal(self, handle: LaunchHandle, signum: int) -> None:
        request = {"op": "signal", "signum": signum, "procs": [[handle.pid, handle.started]]}
        self.call(handle.extra.get("ssh", handle.host), request)

    def output_files(self, handle: LaunchHandle) -> list[Path]:
        """Its output file on its host (a path there, not here)."""
        return [Path(handle.output)] if handle.output else []

    def read_output(self, handle: LaunchHandle, lines: int = 200) -> str:
        if not handle.output:
            return f"(no output file known for {handle.describe()})"
        dest = handle.extra.get("ssh", handle.host)
        try:
            answer = self.call(dest, {"op": "tail", "files": [handle.output], "lines": lines})
        except LaunchFailed as exc:
            return f"==> {dest}:{handle.output} <==\n(cannot read: {exc})"
        return f"==> {dest}:{handle.output} <==\n{answer['texts'][0]}"
