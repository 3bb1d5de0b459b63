"""A push to all engines: is it serialised and signed once and sent as the same frames?

Run: ``python benchmarks/broadcast.py`` (``-n 100``). A controller alone and N simulated
engines that say they are on another host (so payloads travel as bytes, not through shared
memory). For payloads of 1 KB, 1 MB and 4 MB it pushes to one engine and to all N and
reports the controller's CPU per push and per engine, and the client's. If the controller
copied or signed the payload once per engine, its CPU per engine would grow with the size;
if it forwards the same frames, it stays flat (the bytes still cross N TCP connections, in
libzmq's I/O thread and the kernel).

``--netns-hosts K`` (root: network-namespace hosts, ``tests/services/netns.py``) measures
what crosses the network instead: K hosts, each with ``--per-host`` real engines, started
directly or behind one ``pxrelay`` per host (``--relay``). For pushes of 1 MB and 16 MB to
all engines it reports the bytes sent over each host's link (its veth's ``tx_bytes`` on
this side) per push, as a multiple of the payload, and the time of the push. Directly, a
push crosses each host's link once per engine; through relays, once per host.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy
import psutil

from pxcluster import Cluster


def cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def tx_bytes(interface: str) -> int:
    return int(Path(f"/sys/class/net/{interface}/statistics/tx_bytes").read_text())


def hosts_main(args: argparse.Namespace) -> None:
    """Bytes over each namespace host's link per push to all engines (see the docstring)."""
    import contextlib

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from pxcluster.profile import ENGINE_CONNECTION_ENV
    from services.netns import namespace_host  # type: ignore[import-not-found]

    root = Path(tempfile.mkdtemp(prefix="pxbcast-"))
    with contextlib.ExitStack() as stack:
        hosts = [stack.enter_context(namespace_host(f"pxb{i}")) for i in range(args.netns_hosts)]
        cluster = stack.enter_context(
            Cluster(
                0,
                profile="bcast",
                profile_dir=root / "p",
                timeout=60,
                controller_args=["--ip", "0.0.0.0"],
            )
        )
        text = cluster.paths.engine_file.read_text()
        procs = []
        for host in hosts:
            env = {"PATH": os.environ["PATH"], "HOME": "/root", ENGINE_CONNECTION_ENV: text}
            if "PYTHONPATH" in os.environ:
                env["PYTHONPATH"] = os.environ["PYTHONPATH"]
            where = ["--controller-ip", host.peer]
            if args.relay:
                argv = [
                    [
                        sys.executable,
                        "-m",
                        "pxcluster.cli.relay",
                        *where,
                        "--engines",
                        str(args.per_host),
                    ]
                ]
            else:
                argv = [[sys.executable, "-m", "pxcluster.cli.engine", *where]] * args.per_host
            procs += [
                subprocess.Popen(
                    host.command(a),
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for a in argv
            ]
        try:
            n = args.netns_hosts * args.per_host
            mec = cluster.client(timeout=300)
            mec.wait_for_engines(n, timeout=120)
            for size in (1_000_000, 16_000_000):
                value = numpy.ones(size, dtype=numpy.uint8)
                mec.push({"x": value})  # warm
                before = [tx_bytes(h.interface) for h in hosts]
                t0 = time.perf_counter()
                for _ in range(args.repeats):
                    mec.push({"x": value})
                wall = (time.perf_counter() - t0) / args.repeats
                sent = [
                    (tx_bytes(h.interface) - b) / args.repeats
                    for h, b in zip(hosts, before, strict=True)
                ]
                row = {
                    "bytes": size,
                    "hosts": args.netns_hosts,
                    "engines_per_host": args.per_host,
                    "relay": args.relay,
                    "push_ms": round(1000 * wall, 1),
                    "bytes_per_host_per_push": [round(b) for b in sent],
                    "payloads_per_host": [round(b / size, 2) for b in sent],
                }
                print(json.dumps(row), flush=True)
            mec.close()
        finally:
            cluster.stop()
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-n", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument(
        "--netns-hosts",
        type=int,
        default=0,
        help="K network-namespace hosts with real engines (needs root)",
    )
    p.add_argument("--per-host", type=int, default=4, help="engines per namespace host")
    p.add_argument("--relay", action="store_true", help="engines behind one pxrelay per host")
    args = p.parse_args()
    if args.netns_hosts:
        hosts_main(args)
        return
    root = Path(tempfile.mkdtemp(prefix="pxbcast-"))
    me = psutil.Process(os.getpid())
    with Cluster(
        0,
        profile="bcast",
        profile_dir=root / "p",
        timeout=60,
        controller_args=["--heartbeat-timeout", "60"],
    ) as cluster:
        sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pxcluster.testing._simulator",
                "--file",
                str(cluster.paths.engine_file),
                "-n",
                str(args.n),
                "--hostname",
                "elsewhere",
                "--sockets",
                "lean",
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            ctl = psutil.Process(cluster.controller_pid)
            mec = cluster.client(timeout=300)
            mec.wait_for_engines(args.n, timeout=120)
            for size in (1_000, 1_000_000, 4_000_000):
                value = numpy.ones(size, dtype=numpy.uint8)
                row: dict[str, object] = {"bytes": size, "engines": args.n}
                for label, targets in (("one", [0]), ("all", "all")):
                    mec.push({"x": value}, targets=targets)  # warm
                    c0, m0, t0 = cpu(ctl), cpu(me), time.perf_counter()
                    s0 = ctl.cpu_times().system
                    for _ in range(args.repeats):
                        mec.push({"x": value}, targets=targets)
                    wall = (time.perf_counter() - t0) / args.repeats
                    per = args.n if label == "all" else 1
                    ctl_ms = 1000 * (cpu(ctl) - c0) / args.repeats
                    row[f"{label}_wall_ms"] = round(1000 * wall, 2)
                    row[f"{label}_controller_cpu_ms"] = round(ctl_ms, 2)
                    row[f"{label}_controller_us_per_engine"] = round(1000 * ctl_ms / per, 1)
                    row[f"{label}_controller_system_share"] = round(  # kernel: TCP sends
                        (ctl.cpu_times().system - s0) / max(1e-9, ctl_ms / 1000 * args.repeats), 2
                    )
                    row[f"{label}_client_cpu_ms"] = round(1000 * (cpu(me) - m0) / args.repeats, 2)
                print(json.dumps(row), flush=True)
            mec.close()
        finally:
            cluster.stop()
            try:
                sim.wait(timeout=30)
            except subprocess.TimeoutExpired:
                sim.kill()
                sim.wait()


if __name__ == "__main__":
    main()
