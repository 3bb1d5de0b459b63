"""Test services: an sshd on the namespace host (tests/services/netns.py), as on a real
second machine: reached at the host's own address, logging in to its private home.

Keys and configuration live in a folder under /run (visible on both sides, unlike /tmp),
made for the session and removed at its end; the server's host key is not checked (it is
new each session) and nothing is written to ~/.ssh. sshd runs in the foreground (``-D``)
as our child, so it is stopped at the end of the session even after a failure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"


@dataclasses.dataclass(frozen=True)
class SshServer:
    """How to log in to the namespace host."""

    destination: str  # user@address
    ssh_args: list[str]  # key and options for ssh
    log: Path

    def ssh(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ssh", "-o", "BatchMode=yes", *self.ssh_args, self.destination, command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture(scope="session")
def sshd_host(netns_host: object) -> Iterator[SshServer]:
    """sshd on the namespace host's address, port 22, root by key only."""
    for program in (SSHD, "ssh", "ssh-keygen"):
        if shutil.which(program) is None:
            pytest.fail(f"{program} is missing: run tests/services/install.sh (as root)")
    with running_sshd(netns_host) as server:
        yield server


@contextlib.contextmanager
def running_sshd(netns_host: object) -> Iterator[SshServer]:
    """sshd on ``netns_host`` (a ``NamespaceHost``) until the block ends."""
    folder = Path(tempfile.mkdtemp(prefix="pxtest-sshd-", dir="/run"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        folder.chmod(0o700)
        _keygen(folder / "host_key")
        _keygen(folder / "client_key")
        shutil.copy(folder / "client_key.pub", folder / "authorized_keys")
        (folder / "authorized_keys").chmod(0o600)
        address = netns_host.address  # type: ignore[attr-defined]
        (folder / "sshd_config").write_text(
            f"Port 22\nListenAddress {address}\nHostKey {folder}/host_key\n"
            f"PidFile {folder}/sshd.pid\nAuthorizedKeysFile {folder}/authorized_keys\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        )
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
        log = folder / "sshd.log"
        proc = subprocess.Popen(
            netns_host.command(  # type: ignore[attr-defined]
                [SSHD, "-D", "-f", str(folder / "sshd_config"), "-E", str(log)]
            ),
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not _listening(netns_host, address):
            if proc.poll() is not None or time.monotonic() > deadline:
                text = log.read_text() if log.exists() else ""
                raise RuntimeError(f"sshd did not start on {address}:22 (rc {proc.poll()}): {text}")
            time.sleep(0.05)
        yield SshServer(
            f"root@{address}",
            ["-i", str(folder / "client_key"), "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"],
            log,
        )  # fmt: skip
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def _listening(host: object, address: str) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=1):
            return True
    except OSError:
        return False
