"""Transport layer: reaching a controller through an SSH tunnel (``MultiEngineClient(ssh=...)``).

A laptop outside a cluster's network logs in to a host inside it and has ssh forward a
local port to the controller's address as that host sees it. The tunnel is one
``ssh -N -L`` child process per connection, owned by the client and ended when the client
closes.

pyzmq's ``zmq.ssh.tunnel`` does the same job, and was not used: without paramiko it drives
ssh through pexpect (not a dependency of ours), starts ``ssh -f ... sleep 60``, which forks
away from the pid it reports, so a closed client cannot end its tunnel (it lingers until
the sleep and its last connection end), and it takes no ssh options beyond a key file. Here
ssh runs with ``BatchMode`` (keys or an agent, never a password prompt on a hidden
terminal) and ``ExitOnForwardFailure``, and its error output becomes the error message.
"""

from __future__ import annotations

import shlex
import socket
import subprocess
import time
from collections.abc import Sequence

from pxcluster._errors import TransportError


def _free_local_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _split_server(server: str) -> tuple[str, list[str]]:
    """``[user@]host[:port]`` as ssh's destination and its ``-p`` option."""
    if server.count(":") == 1:  # not an IPv6 address
        host, port = server.split(":")
        if port.isdigit():
            return host, ["-p", port]
    return server, []


def ssh_command(server: str, keyfile: str | None = None, options: Sequence[str] = ()) -> list[str]:
    """The ssh command line (without the remote command) for ``server``."""
    destination, port = _split_server(server)
    key = ["-i", keyfile] if keyfile else []
    return ["ssh", "-o", "BatchMode=yes", *port, *key, *options, destination]


class SshTunnel:
    """A local port that ssh forwards, via ``server``, to ``url`` as ``server`` sees it.

    Args:
        server: ``[user@]host[:port]`` to log in to.
        url: the ``tcp://host:port`` to reach from there.
        keyfile: the private key to log in with (default: ssh's own choice).
        options: more ssh arguments (``["-o", "StrictHostKeyChecking=no"]``, ``-F`` ...).
        timeout: seconds to wait for the tunnel to be up.

    Raises:
        TransportError: ssh failed (its error output is in the message) or was not up in
            time.
    """

    def __init__(
        self,
        server: str,
        url: str,
        keyfile: str | None = None,
        options: Sequence[str] = (),
        timeout: float = 30.0,
    ) -> None:
        scheme, _, address = url.partition("://")
        host, _, port = address.rpartition(":")
        if scheme != "tcp" or not port.isdigit():
            raise TransportError(f"cannot tunnel {url!r} over ssh: only tcp:// addresses")
        self.local_port = _free_local_port()
        self.url = f"tcp://127.0.0.1:{self.local_port}"
        command = ssh_command(server, keyfile, options)
        forward = ["-N", "-o", "ExitOnForwardFailure=yes",
                   "-L", f"127.0.0.1:{self.local_port}:{host}:{port}"]  # fmt: skip
        argv = [command[0], *forward, *command[1:]]
        try:
            self._proc: subprocess.Popen[bytes] = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,  # Ctrl-C in the client's terminal spares it
            )
        except OSError as exc:
            raise TransportError(f"cannot run ssh for a tunnel to {server}: {exc}") from exc
        self._wait_up(server, argv, timeout)

    def _wait_up(self, server: str, argv: list[str], timeout: float) -> None:
        """Wait until the local port answers (ssh listens once logged in)."""
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise TransportError(
                    f"the ssh tunnel to {server} failed (exit code {self._proc.returncode}): "
                    f"{err.strip()[-1000:]}\ncommand: {shlex.join(argv)}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.local_port), timeout=1):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.close()
                raise TransportError(f"the ssh tunnel to {server} was not up within {timeout} s")
            time.sleep(0.05)

    def close(self) -> None:
        """End the tunnel's ssh process."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        if self._proc.stderr is not None:
            self._proc.stderr.close()


def read_remote_file(
    server: str, path: str, keyfile: str | None = None, options: Sequence[str] = ()
) -> str:
    """The text of ``path`` on ``server`` (relative paths: from the login's home).

    Raises:
        TransportError: ssh failed, or the file is not there.
    """
    argv = [*ssh_command(server, keyfile, options), shlex.join(["cat", "--", path])]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TransportError(f"cannot read {path} on {server}: {exc}") from exc
    if done.returncode != 0:
        raise TransportError(f"cannot read {path} on {server}: {done.stderr.strip()[-500:]}")
    return done.stdout
