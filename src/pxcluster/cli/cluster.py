"""CLI layer: ``pxcluster``, which starts, stops and lists local clusters.

pxcluster start -n 4     controller + 4 engines in the background; returns when ready
pxcluster -n 4           the same in the foreground; Ctrl-C stops it all
pxcluster stop           stop the profile's cluster, leaving no process behind
pxcluster list           running clusters, their engines and queue lengths
pxcluster top            a running cluster's engines, queues, throughput and errors, live
pxcluster add -n 8       more engines; logs/restart/signal ENGINE_ID: one engine (cli/_jobs.py)
pxcluster start --engines slurm|sge|pbs|mpi|ssh [--controller ...]: other launchers
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pxcluster._errors import NoClusterRunning, PxclusterError
from pxcluster.cli._common import add_version_flag
from pxcluster.cli._dashboard import dashboard_wanted, wait_for_dashboard_url
from pxcluster.cli._jobs import (
    add_job_parsers,
    add_launcher_flags,
    job_lines,
    launcher_options,
    main_for,
)
from pxcluster.cli.top import add_top_parser, cmd_top
from pxcluster.client import MultiEngineClient, TaskClient
from pxcluster.launchers import Cluster, running_controller, stop_profile
from pxcluster.launchers._ssh import parse_hosts
from pxcluster.monitor import dashboard_url
from pxcluster.profile import ProfilePaths, profile_root


def _profile_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile",
        default="default",
        help=f"profile name (folder {profile_root()}/profile_NAME; default: %(default)s)",
    )
    p.add_argument(
        "--profile-dir",
        type=Path,
        default=None,
        help=f"use this profile folder instead of {profile_root()}/profile_NAME",
    )


def _restarts(text: str) -> int:
    """``--restart N``: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"cannot be negative: {value}")
    return value


def _start_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-n",
        "--n",
        type=int,
        default=None,
        dest="n",
        help=f"number of engines (default: the number of CPU cores, {os.cpu_count()} here)",
    )
    p.add_argument(
        "--ip",
        default=None,
        help="controller address (default 127.0.0.1; 0.0.0.0 for every interface), or an "
        "interface name (eth1)",
    )
    p.add_argument(
        "--location",
        default=None,
        help="the address engines and clients on other hosts should use, written into "
        "the connection files (default: the --ip address)",
    )
    p.add_argument(
        "--curve",
        action="store_true",
        help="encrypt every connection with CurveZMQ (for engines on other hosts)",
    )
    p.add_argument(
        "--dashboard",
        action="store_true",
        default=None,
        help="also serve the live web dashboard; its address (with its token) is printed",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the cluster to be ready (default %(default)s)",
    )
    p.add_argument(
        "--restart",
        type=_restarts,
        default=0,
        metavar="N",
        help="relaunch engines that die, up to N times in all (new ids, empty namespaces); "
        "a small keeper process watches until `pxcluster stop` (engines killed on purpose "
        "are not relaunched)",
    )
    add_launcher_flags(p)
    _profile_flags(p)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pxcluster",
        description="Start, stop and list pxcluster clusters (a controller and engines). "
        "`pxcluster -n 4` runs one in the foreground until Ctrl-C.",
    )
    _start_flags(p)
    add_version_flag(p)
    sub = p.add_subparsers(dest="command", metavar="{start,stop,list,top,add,logs,restart,signal}")
    start = sub.add_parser(
        "start",
        help="start a cluster in the background; return when ready",
        description="Start a controller and N engines in the background "
        "and return once every engine is registered.",
    )
    _start_flags(start)
    stop = sub.add_parser(
        "stop",
        help="stop a running cluster",
        description="Stop the profile's controller and engines.",
    )
    _profile_flags(stop)
    stop.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds to wait before killing what has not stopped (default 10)",
    )
    sub.add_parser(
        "list",
        help="list running clusters",
        description="List running clusters: profile, controller, engines, queues, and the "
        "address of each one's dashboard (with its token).",
    )
    add_top_parser(sub)
    add_job_parsers(sub, _profile_flags)
    return p


def _cluster(args: argparse.Namespace) -> Cluster:
    controller_args = ["--ip", args.ip] if args.ip else []
    if args.location:
        controller_args += ["--location", args.location]
    if args.curve:
        controller_args.append("--curve")
    if args.dashboard:
        controller_args.append("--dashboard")
    paths = ProfilePaths.for_profile(args.profile, args.profile_dir)
    options = launcher_options(args, paths, [args.engines, args.controller])
    n = args.n
    if n is None and args.engines == "ssh":  # one engine per slot of --hosts h1,h2:4
        n = sum(host.slots for host in parse_hosts(options["ssh"].extra.get("hosts")))
    return Cluster(
        n,
        profile=args.profile,
        profile_dir=args.profile_dir,
        controller_args=controller_args,
        timeout=args.timeout,
        engines=args.engines,
        controller=args.controller,
        options=options,
        restart=getattr(args, "restart", 0),
    )


def _started(cluster: Cluster, seconds: float, foreground: bool, args: argparse.Namespace) -> None:
    ids = cluster.engine_ids()
    name = cluster.paths.name
    custom = ProfilePaths.for_profile(name).dir != cluster.paths.dir  # --profile-dir
    flag = "" if name == "default" else f"profile={name!r}"
    where = f"--profile {name}" if name != "default" else ""
    if custom:
        flag = f"profile_dir={str(cluster.paths.dir)!r}"
        where = f"--profile-dir {cluster.paths.dir}"
    print(
        f"pxcluster: profile {str(cluster.paths.dir) if custom else repr(name)} ready in "
        f"{seconds:.1f} s: controller {_controller_words(cluster)}, {len(ids)} engines {ids}"
    )
    if cluster.engine_launcher != "local":
        jobs = sorted({h.job_id for h in cluster.engine_handles if h.job_id})
        where = f" (job {', '.join(jobs)})" if jobs else ""
        print(
            f"Engines launched by {cluster.engine_launcher}{where}; "
            f"`pxcluster logs ID` shows one's output"
        )
    if dashboard_wanted(cluster.paths, args.dashboard):
        url = wait_for_dashboard_url(cluster.paths, timeout=15.0)
        print(f"Dashboard: {url or 'did not start; see ' + str(cluster.paths.log)}")
    print("Connect from Python or IPython with:")
    print("    from pxcluster import client")
    print(f"    mec = client.MultiEngineClient({flag})")
    if foreground:
        print("Press Ctrl-C to stop the cluster.")
    else:
        print(f"Stop it with: pxcluster stop {where}".rstrip())
    sys.stdout.flush()


class RegistrationReport:
    """Shows engines registering during a start that takes longer than ``delay`` seconds:
    a tqdm bar on a terminal's stderr, else (a log, a pipe, no tqdm) a line per change."""

    def __init__(self, delay: float = 1.0) -> None:
        self._began = time.monotonic()
        self._delay = delay
        self._bar: Any = None  # a tqdm bar once shown
        self._shown = -1  # the count last reported (-1: nothing shown yet)

    def __call__(self, registered: int, expected: int) -> None:
        if self._shown < 0 and time.monotonic() - self._began < self._delay:
            return
        if self._shown < 0 and _stderr_is_terminal():  # a bar redraws; a log gets lines
            try:
                from tqdm.std import tqdm
            except ImportError:
                pass
            else:
                self._bar = tqdm(total=expected, desc="engines registered", unit="engine")
        if self._bar is not None:
            self._bar.update(registered - self._bar.n)
        elif registered != self._shown:
            print(f"pxcluster: {registered}/{expected} engines registered", file=sys.stderr)
        self._shown = registered

    def note(self, line: str) -> None:
        """A line about the launcher's jobs ("slurm job 12: 4 pending (Resources)")."""
        if self._bar is not None:
            self._bar.write(f"pxcluster: {line}", file=sys.stderr)
        else:
            print(f"pxcluster: {line}", file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _stderr_is_terminal() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty()) if callable(isatty) else False


def cmd_start(args: argparse.Namespace, foreground: bool) -> int:
    began = time.monotonic()
    cluster = _cluster(args)
    if args.profile_dir is not None:
        remember_profile_dir(cluster.paths.dir)
    report = RegistrationReport()
    try:
        cluster.start(progress=report, status=report.note)
    finally:
        report.close()
    _started(cluster, time.monotonic() - began, foreground, args)
    if not foreground:
        return 0
    # The cluster runs in its own session: whatever ends this foreground command (Ctrl-C,
    # kill, the terminal closing) must stop it too.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_keyboard_interrupt)
    try:
        while cluster.controller_alive():
            time.sleep(0.2)
        print("pxcluster: the controller exited", file=sys.stderr)
    except KeyboardInterrupt:
        print("\npxcluster: stopping")
    finally:
        cluster.stop()
    return 0


def _controller_words(cluster: Cluster) -> str:
    handle = cluster.controller_handle
    if handle is None or handle.launcher == "local":
        return f"pid {cluster.controller_pid}"
    return f"{handle.describe()} (pid {handle.pid})"


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_stop(args: argparse.Namespace) -> int:
    paths = ProfilePaths.for_profile(args.profile, args.profile_dir)
    record = stop_profile(paths, timeout=args.timeout)
    engines = len(record.engines) if record else 0
    custom = ProfilePaths.for_profile(paths.name).dir != paths.dir
    shown = str(paths.dir) if custom else repr(paths.name)
    print(f"pxcluster: stopped profile {shown} ({engines} engines started by pxcluster)")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    root = profile_root()
    rows = []
    folders = sorted(root.glob("profile_*")) if root.exists() else []
    folders += [f for f in remembered_profile_dirs() if f not in folders]
    for folder in folders:
        name = folder.name.removeprefix("profile_")
        paths = ProfilePaths.for_profile(name, folder)
        if not folder.name.startswith("profile_"):
            paths = dataclasses.replace(paths, name=str(folder))  # shown by its folder
        controller = running_controller(paths)
        if controller is None:
            continue
        try:
            with MultiEngineClient(profile_dir=paths.dir, timeout=2.0) as mec:
                queues = mec.queue_status(timeout=2.0)
            engines = ", ".join(f"{eid}:{q['queue']}" for eid, q in queues) or "-"
            rows.append(f"{paths.name:<16} {controller.pid:<8} {len(queues):<8} {engines}")
        except PxclusterError as exc:
            rows.append(f"{paths.name:<16} {controller.pid:<8} {'?':<8} not answering: {exc}")
        rows += [f"{'':<16} {line}" for line in job_lines(paths)]
        rows += [f"{'':<16} {line}" for line in _store_lines(paths)]
        url = dashboard_url(paths)
        if url is not None:
            rows.append(f"{'':<16} dashboard: {url}")
    if not rows:
        print(f"no running clusters (profiles under {root})")
        return 0
    print(f"{'PROFILE':<16} {'PID':<8} {'ENGINES':<8} QUEUES (engine:queued)")
    print("\n".join(rows))
    return 0


def _store_lines(paths: ProfilePaths) -> list[str]:
    """A warning line when the cluster's record store fails (results kept in memory only)."""
    try:
        with TaskClient(profile_dir=paths.dir, timeout=2.0) as tc:
            status: dict[str, Any] = tc.queue_status(timeout=2.0)
    except PxclusterError:
        return []
    error = status.get("store_error")
    if not error:
        return []
    lines = [f"WARNING {error}: {status.get('unwritten', 0)} results not written"]
    if status.get("not_stored"):
        lines.append(f"WARNING {status['not_stored']} finished tasks' results were not kept")
    return lines


#: Profile folders outside the root that ``pxcluster start --profile-dir`` used, one a line,
#: so that ``pxcluster list`` finds their clusters too.
_EXTERNAL_PROFILES = "profile-dirs.txt"


def remember_profile_dir(folder: Path) -> None:
    """Note ``folder`` in the root's list of external profile folders (once)."""
    root = profile_root()
    if folder.parent == root:
        return
    known = remembered_profile_dirs()
    if folder in known:
        return
    root.mkdir(parents=True, exist_ok=True)
    with (root / _EXTERNAL_PROFILES).open("a") as file:
        file.write(f"{folder}\n")


def remembered_profile_dirs() -> list[Path]:
    """The external profile folders noted so far that still exist."""
    try:
        lines = (profile_root() / _EXTERNAL_PROFILES).read_text().splitlines()
    except OSError:
        return []
    return [Path(line) for line in dict.fromkeys(lines) if line and Path(line).is_dir()]


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "start":
            return cmd_start(args, foreground=False)
        if args.command == "stop":
            return cmd_stop(args)
        if args.command == "list":
            return cmd_list(args)
        if args.command == "top":
            return cmd_top(args)
        done = main_for(args.command, args) if args.command else None
        if done is not None:
            return done
        return cmd_start(args, foreground=True)
    except NoClusterRunning as exc:
        print(f"pxcluster: {exc}", file=sys.stderr)
        return 1
    except PxclusterError as exc:
        print(f"pxcluster: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
