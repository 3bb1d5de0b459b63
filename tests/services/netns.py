"""Test services: another "host" on this machine, made of Linux namespaces.

A host here is a process holding a network namespace (its own interface and address,
joined to this machine by a veth pair), a UTS namespace (its own hostname) and a mount
namespace with its own ``/dev/shm``, ``/tmp`` and ``/root`` (empty tmpfs mounts): shared
memory is not shared with this machine, and nothing this machine keeps in /tmp or a home
folder is visible there, as on a real second host without a shared filesystem. The rest of
the filesystem (the virtualenv, the source) is the same, as an installed cluster node's
would be. Commands run there through ``nsenter`` into that process's namespaces.

Only addresses 10.200.0.x are used: a free /30 block is picked per session, so two test
runs on one machine do not collide. Everything is removed at the end of the session, even
after a failure (the namespace's processes are killed, the namespace deleted, which also
deletes its veth pair).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil
import pytest

import pxcluster

HOSTNAME = "pxhost1"


@dataclasses.dataclass(frozen=True)
class NamespaceHost:
    """A second host: its name, its address, and this machine's address as it sees it."""

    hostname: str
    netns: str
    address: str  # the host's address
    peer: str  # this machine's address on the link (where a controller for it listens)
    interface: str  # this machine's side of the link (an interface name for --ip)
    init_pid: int  # the process whose namespaces make the host

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` to run on the host (from this machine)."""
        return ["nsenter", "-t", str(self.init_pid), "--net", "--uts", "--mount", "--", *argv]

    def run(self, argv: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(argv), capture_output=True, text=True, timeout=timeout, check=False
        )

    def processes(self) -> list[psutil.Process]:
        """Processes running on the host now (in its network namespace), but its init."""
        try:
            mine = os.readlink(f"/proc/{self.init_pid}/ns/net")
        except OSError:
            return []
        found = []
        for proc in psutil.process_iter():
            if proc.pid == self.init_pid:
                continue
            try:
                if os.readlink(f"/proc/{proc.pid}/ns/net") == mine:
                    found.append(proc)
            except OSError:
                continue
        return found

    def pxcluster_processes(self) -> list[str]:
        """Command lines of pxcluster processes running on the host now."""
        found = []
        for proc in self.processes():
            try:
                line = " ".join(proc.cmdline())
            except psutil.Error:
                continue
            if "pxcluster" in line:
                found.append(line)
        return found


def _require(*programs: str) -> None:
    for program in programs:
        if shutil.which(program) is None:
            pytest.fail(f"{program} is missing: run tests/services/install.sh (as root)")
    if os.geteuid() != 0:
        pytest.fail("namespace hosts need root (ip netns, unshare, mount)")


def _ip(*args: str, netns: str = "") -> None:
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")


def _free_block() -> int:
    """The first 10.200.0.N/30 block (N a multiple of 4) no interface here uses."""
    used = subprocess.run(
        ["ip", "-4", "-o", "addr"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    for base in range(4, 252, 4):
        if f"10.200.0.{base + 1}/" not in used:
            return base
    raise RuntimeError("no free 10.200.0.x/30 block for a namespace host")


def _remove_stale() -> None:
    """Namespaces a killed test run left (named after a pid that is gone)."""
    done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        owner = name[3:].split("-")[0]
        if name.startswith("pxt") and owner.isdigit() and not psutil.pid_exists(int(owner)):
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def _under(path: Path, *roots: str) -> bool:
    return any(path.is_relative_to(root) for root in roots)


@contextlib.contextmanager
def namespace_host(hostname: str) -> Iterator[NamespaceHost]:
    """Make a host; remove it (and everything running there) on exit."""
    _require("ip", "unshare", "nsenter")
    _remove_stale()
    base = _free_block()
    tag = f"{os.getpid()}-{base}"
    netns, outside, inside = f"pxt{tag}", f"pxv{base}o{os.getpid() % 1000}", "eth0"
    peer, address = f"10.200.0.{base + 1}", f"10.200.0.{base + 2}"
    init: subprocess.Popen[bytes] | None = None
    try:
        _ip("netns", "add", netns)
        _ip("link", "add", outside, "type", "veth", "peer", "name", f"{outside}i")
        _ip("link", "set", f"{outside}i", "netns", netns)
        _ip("link", "set", f"{outside}i", "name", inside, netns=netns)
        _ip("addr", "add", f"{peer}/30", "dev", outside)
        _ip("link", "set", outside, "up")
        _ip("addr", "add", f"{address}/30", "dev", inside, netns=netns)
        _ip("link", "set", inside, "up", netns=netns)
        _ip("link", "set", "lo", "up", netns=netns)
        ready = Path(f"/run/{netns}.ready")
        # Python and pxcluster stay visible where they are installed (pyenv keeps Python in
        # /root; a checkout and its venv may live in /tmp), as on a node where both are
        # installed; nothing else of /tmp or this home is.
        installed = {Path(sys.base_prefix), Path(sys.prefix), Path(pxcluster.__file__).parent}
        keep = sorted({p.resolve() for p in installed if _under(p.resolve(), "/root", "/tmp")})
        staging = Path(f"/run/{netns}.keep")
        hide = [
            f"mkdir -p {staging}/{i} && mount --bind {path} {staging}/{i}"
            for i, path in enumerate(keep)
        ]
        hide += [f"mount -t tmpfs tmpfs {d}" for d in ("/dev/shm", "/tmp", "/root")]
        hide += [
            f"mkdir -p {path} && mount --bind {staging}/{i} {path}"
            for i, path in enumerate(keep)
        ]
        script = " && ".join([*hide, f"hostname {hostname}", f"touch {ready}", "exec sleep 86400"])
        init = subprocess.Popen(
            ["ip", "netns", "exec", netns, "unshare", "--mount", "--uts",
             "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not ready.exists():
            if init.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the namespace host did not come up (rc {init.poll()})")
            time.sleep(0.02)
        ready.unlink()
        host = NamespaceHost(hostname, netns, address, peer, outside, init.pid)
        yield host
    finally:
        if init is not None:
            made = NamespaceHost(hostname, netns, address, peer, outside, init.pid)
            for proc in made.processes():
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            init.kill()
            init.wait(timeout=30)
        subprocess.run(["ip", "netns", "del", netns], check=False, capture_output=True)
        shutil.rmtree(f"/run/{netns}.keep", ignore_errors=True)


@pytest.fixture(scope="session")
def netns_host() -> Iterator[NamespaceHost]:
    """A second host (own address, hostname, /dev/shm, /tmp and home) for the session."""
    with namespace_host(HOSTNAME) as host:
        yield host
