"""Launchers layer: the far end of the ``ssh`` launcher, run on the other host.

``ssh HOST python -m pxcluster.launchers._ssh_remote`` reads one JSON request on stdin and
writes one JSON answer on stdout, then exits; everything travels on stdin, so nothing needs
shell quoting and no secret (the connection key) appears on a command line or in a file on
the other host: engines get their connection in their environment
(``PXCLUSTER_ENGINE_CONNECTION``). Requests (``op``):

* ``start``: ``argv``, ``count``, ``env``, ``profile``, ``role``: start ``count`` processes
  detached (own session, output to a file under the host's own profile log folder) and
  answer their pids and start times. For a controller (``role`` "controller") it waits, up
  to ``timeout`` s, for the connection files the controller writes, and answers their text,
  so the launching host can write them into its own profile.
* ``poll``: ``procs`` ([pid, started] pairs): which still run.
* ``stop``: ``procs``, ``timeout``: SIGTERM, then SIGKILL what outlives ``timeout``.
* ``signal``: ``procs``, ``signum``.
* ``tail``: ``files``, ``lines``: the last lines of each (a process's output file).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from pxcluster.launchers._processes import ProcessRef, spawn_argv, terminate
from pxcluster.profile import ProfilePaths, read_client_connection


def _start(request: dict[str, Any]) -> dict[str, Any]:
    paths = ProfilePaths.for_profile(str(request.get("profile", "default"))).ensure()
    role = str(request.get("role", "engine"))
    env = {**os.environ, **{str(k): str(v) for k, v in dict(request.get("env", {})).items()}}
    argv = [str(a) for a in request["argv"]]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    procs = []
    for i in range(int(request.get("count", 1))):
        output = paths.log / f"ssh-{role}-{stamp}-{os.getpid()}-{i}.out"
        proc = spawn_argv(argv, output, env)
        ref = ProcessRef.of(proc.pid)
        procs.append({"pid": ref.pid, "started": ref.started, "output": str(output)})
    answer: dict[str, Any] = {"hostname": socket.gethostname(), "procs": procs}
    if role == "controller" and procs:
        pid = ref.pid  # the one (and only) controller
        answer.update(_controller_files(paths, pid, float(request.get("timeout", 60))))
    return answer


def _controller_files(paths: ProfilePaths, pid: int, timeout: float) -> dict[str, Any]:
    """The connection files the controller ``pid`` wrote, once it has written them."""
    deadline = time.monotonic() + timeout
    ref = ProcessRef.of(pid)
    while time.monotonic() < deadline and ref.alive():
        try:
            if read_client_connection(paths.client_file).controller_pid == pid:
                return {
                    "client": paths.client_file.read_text(),
                    "engine": paths.engine_file.read_text(),
                }
        except Exception:  # not there yet, or half written: look again
            pass
        time.sleep(0.05)
    return {"error": "the controller exited" if not ref.alive() else "no connection files"}


def _refs(request: dict[str, Any]) -> list[ProcessRef]:
    return [ProcessRef(int(pid), float(started)) for pid, started in request.get("procs", [])]


def _tail(path: str, lines: int) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(cannot read: {exc.strerror or exc})"


def handle(request: dict[str, Any]) -> dict[str, Any]:
    """Answer one request (see the module docstring)."""
    op = request.get("op")
    if op == "start":
        return _start(request)
    if op == "poll":
        return {"alive": [ref.alive() for ref in _refs(request)]}
    if op == "stop":
        terminate(_refs(request), grace=float(request.get("timeout", 5.0)))
        return {"alive": [ref.alive() for ref in _refs(request)]}
    if op == "signal":
        for ref in _refs(request):
            ref.signal(int(request.get("signum", signal.SIGTERM)))
        return {}
    if op == "tail":
        lines = int(request.get("lines", 50))
        return {"texts": [_tail(str(f), lines) for f in request.get("files", [])]}
    raise ValueError(f"unknown request {op!r}")


def main() -> int:
    try:
        answer = handle(json.loads(sys.stdin.read()))
    except Exception as exc:
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
