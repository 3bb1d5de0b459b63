"""CLI layer: ``pxcluster`` commands and flags about launchers, jobs and single engines.

pxcluster start --engines slurm --walltime 1:00:00   engines as a Slurm job array
pxcluster add -n 8 --engines slurm                   8 more engines (a further job)
pxcluster logs 3                                     engine 3's log and its job's output
pxcluster restart 3                                  stop engine 3, start one in its place
pxcluster signal 3 TERM                              signal engine 3 through its launcher
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable

from pxcluster._errors import LauncherError, PxclusterError
from pxcluster.launchers import (
    LAUNCHERS,
    Cluster,
    ClusterRecord,
    JobStatus,
    LaunchHandle,
    make_launcher,
)
from pxcluster.launchers._engines import engine_logs
from pxcluster.launchers._launcher import BATCH_LAUNCHERS
from pxcluster.launchers._relayed import engines_per_job, wants_relay
from pxcluster.launchers._startup import summarize
from pxcluster.launchers._watcher import keeper_running
from pxcluster.profile import LauncherConfig, ProfilePaths, load_launcher_config


def add_launcher_flags(p: argparse.ArgumentParser, controller: bool = True) -> None:
    """``--engines``, ``--controller`` and the batch settings that override pxcluster.toml."""
    names = ", ".join(LAUNCHERS)
    p.add_argument(
        "--engines",
        default="local",
        metavar="LAUNCHER",
        help=f"how to start the engines: {names} (default: %(default)s)",
    )
    if controller:
        p.add_argument(
            "--controller",
            default="local",
            metavar="LAUNCHER",
            help="how to start the controller (same names; default: %(default)s)",
        )
    p.add_argument("--queue", default=None, help="batch queue or Slurm partition")
    p.add_argument(
        "--walltime",
        default=None,
        help="batch job time limit (minutes, or HH:MM:SS); engines stop taking tasks "
        "walltime_margin seconds before it ends",
    )
    p.add_argument("--account", default=None, help="batch account or project to charge")
    p.add_argument(
        "--hosts",
        default=None,
        help="ssh launcher: hosts to start engines on, HOST[:SLOTS],... "
        "(e.g. h1,h2:4; engines fill the slots in order)",
    )
    p.add_argument(
        "--relay",
        action="store_true",
        help="one pxrelay per host (local, ssh) or per array task (slurm, sge, pbs: with "
        "--engines-per-job), with those engines behind it: the controller holds three "
        "connections per relay instead of four per engine, and a push to many engines "
        "crosses the network once per relay",
    )
    p.add_argument(
        "--engines-per-job",
        default=None,
        metavar="K",
        help="slurm, sge and pbs launchers with --relay: K engines behind the relay of each "
        "array task (e.g. a node's cores; Slurm tasks then ask for K CPUs, elsewhere add the "
        "site's directive)",
    )
    if controller:
        p.add_argument(
            "--controller-host",
            default=None,
            help="ssh launcher: the host to start the controller on ([user@]host)",
        )


def launcher_options(
    args: argparse.Namespace, paths: ProfilePaths, names: list[str]
) -> dict[str, LauncherConfig]:
    """Each named launcher's settings: pxcluster.toml, overridden by the flags."""
    out = {}
    for name in names:
        try:
            base = load_launcher_config(paths.config_file, name)
        except ValueError as exc:
            raise LauncherError(str(exc)) from exc
        out[name] = base.replace(queue=args.queue, walltime=args.walltime, account=args.account)
        ssh = {"hosts": args.hosts, "controller_host": getattr(args, "controller_host", None)}
        if name == "ssh" and any(ssh.values()):
            given = {key: value for key, value in ssh.items() if value}
            out[name] = out[name].replace(extra={**out[name].extra, **given})
        if getattr(args, "relay", False):  # --relay (launchers/_relayed.py)
            out[name] = out[name].replace(extra={**out[name].extra, "relay": "1"})
        if getattr(args, "engines_per_job", None) is not None:
            per_job = {"engines_per_job": args.engines_per_job}
            out[name] = out[name].replace(extra={**out[name].extra, **per_job})
    engines = names[0]
    batch = engines in BATCH_LAUNCHERS
    if getattr(args, "engines_per_job", None) is not None and not (args.relay and batch):
        raise LauncherError(
            "--engines-per-job goes with --relay and a batch launcher "
            "(--engines slurm, sge or pbs)"
        )
    if batch and wants_relay(out[engines]):
        engines_per_job(out[engines], engines)  # refused before anything starts
    return out


def add_job_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    profile_flags: Callable[[argparse.ArgumentParser], None],
) -> None:
    """The ``add``, ``logs``, ``restart`` and ``signal`` subcommands."""
    add = sub.add_parser(
        "add",
        help="add engines to a running cluster",
        description="Start N more engines for the profile's running cluster (with a batch "
        "launcher: a further job, tracked and cancelled on stop with the others).",
    )
    add.add_argument("-n", "--n", type=int, default=1, dest="n", help="how many (default 1)")
    add_launcher_flags(add, controller=False)
    add.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")
    profile_flags(add)

    logs = sub.add_parser(
        "logs",
        help="an engine's log and its job's output",
        description="Show the last lines of an engine's log and of its launcher's output "
        "files (a batch job's stdout/stderr), wherever they are.",
    )
    logs.add_argument("engine", type=int, help="the engine id")
    logs.add_argument("-n", "--lines", type=int, default=50, help="lines of each (default 50)")
    profile_flags(logs)

    restart = sub.add_parser(
        "restart",
        help="replace one engine",
        description="Stop engine ENGINE (through its launcher: a batch array task is "
        "cancelled) and start one engine in its place with the same launcher.",
    )
    restart.add_argument("engine", type=int, help="the engine id")
    restart.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
    profile_flags(restart)

    sig = sub.add_parser(
        "signal",
        help="signal one engine through its launcher",
        description="Send a signal to one engine's process (batch launchers: TERM and KILL "
        "cancel its array task).",
    )
    sig.add_argument("engine", type=int, help="the engine id")
    sig.add_argument("signal", help="signal name or number (TERM, INT, KILL, USR1, 15, ...)")
    profile_flags(sig)


def _paths(args: argparse.Namespace) -> ProfilePaths:
    return ProfilePaths.for_profile(args.profile, args.profile_dir)


def cmd_add(args: argparse.Namespace) -> int:
    paths = _paths(args)
    options = launcher_options(args, paths, [args.engines])
    cluster = Cluster.attach(args.profile, args.profile_dir, args.timeout, options)
    began = time.monotonic()
    try:
        ids = cluster.add_engines(
            args.n,
            launcher=args.engines,
            status=lambda line: print(f"pxcluster: {line}", file=sys.stderr),
        )
    finally:
        cluster.close_clients()
    print(
        f"pxcluster: {args.n} engines added through {args.engines} in "
        f"{time.monotonic() - began:.1f} s; engines now {ids}"
    )
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    print(engine_logs(_paths(args), args.engine, args.lines))
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    cluster = Cluster.attach(args.profile, args.profile_dir, args.timeout)
    try:
        ids = cluster.restart_engine(args.engine)
    finally:
        cluster.close_clients()
    print(f"pxcluster: engine {args.engine} replaced; engines now {ids}")
    return 0


def cmd_signal(args: argparse.Namespace) -> int:
    text = args.signal.upper().removeprefix("SIG")
    try:
        signum = int(text) if text.isdigit() else int(signal.Signals[f"SIG{text}"])
    except KeyError:
        raise LauncherError(f"unknown signal {args.signal!r}") from None
    cluster = Cluster.attach(args.profile, args.profile_dir)
    handle = cluster.signal_engine(args.engine, signum)
    print(
        f"pxcluster: sent {signal.Signals(signum).name} to engine {args.engine} "
        f"({handle.describe()})"
    )
    return 0


def job_lines(paths: ProfilePaths) -> list[str]:
    """For ``pxcluster list``: the engine keeper (``--restart``), and the state of each
    launcher's jobs of this profile's cluster."""
    record = ClusterRecord.read(paths.cluster_file)
    if record is None:
        return []
    keeper = keeper_running(paths)
    lines = [keeper.describe()] if keeper is not None else []
    groups: dict[tuple[str, str], list[LaunchHandle]] = {}
    for handle in [record.controller, *record.engines]:
        if handle.launcher == "local":
            continue
        groups.setdefault((handle.launcher, handle.job_id), []).append(handle)
    for (name, _job), handles in groups.items():
        try:
            launcher = make_launcher(name, paths, load_launcher_config(paths.config_file, name))
            statuses: list[JobStatus] = launcher.poll(handles)
        except (PxclusterError, ValueError) as exc:
            lines.append(f"{name}: cannot ask: {exc}")
            continue
        role = "controller" if handles[0].role == "controller" else "engines"
        lines.append(f"{role} {summarize(handles, statuses)}")
    return lines


def main_for(command: str, args: argparse.Namespace) -> int | None:
    """Run ``command`` if it is one of this module's; None if it is not."""
    commands = {"add": cmd_add, "logs": cmd_logs, "restart": cmd_restart, "signal": cmd_signal}
    run = commands.get(command)
    if run is None:
        return None
    return run(args)
