"""Launchers layer: the files through which the engine keeper and other commands meet.

The keeper (``_watcher.py``) is a process of its own, and ``pxcluster add``, ``restart``,
``signal`` and ``stop`` run in others, all changing the same cluster. They meet in the
profile's ``pid/`` folder:

* ``cluster.json`` (``ClusterRecord``): every process may add or forget engine handles, so
  each change is a read-modify-write under ``record_lock`` (``cluster.lock``, an ``flock``:
  released by the kernel if its holder dies), never a blind overwrite of a list read earlier.
* ``keeper.json`` (``KeeperStatus``): written by the keeper alone: its pid and start time
  (what ``stop`` ends), its restart budget and what it relaunched (what ``list`` shows).
* ``released.json``: engine handles a user ended on purpose through their launcher
  (``pxcluster signal ID TERM``). The controller cannot know of those (it only sees them
  vanish), so ``signal`` notes them here and the keeper does not relaunch them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pxcluster.launchers._launcher import LaunchHandle
from pxcluster.profile import ProfilePaths

#: Signals whose default action ends a process: an engine sent one through its launcher was
#: ended on purpose and is not relaunched (SIGINT interrupts, SIGUSR1 interrupts C code).
ENDING_SIGNALS = frozenset(
    {signal.SIGTERM, signal.SIGKILL, signal.SIGHUP, signal.SIGQUIT, signal.SIGABRT}
)


def keeper_file(paths: ProfilePaths) -> Path:
    return paths.pid / "keeper.json"


def released_file(paths: ProfilePaths) -> Path:
    return paths.pid / "released.json"


@contextlib.contextmanager
def record_lock(paths: ProfilePaths) -> Iterator[None]:
    """Hold the profile's record lock (an exclusive ``flock`` on ``pid/cluster.lock``)."""
    paths.pid.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(paths.pid / "cluster.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def handle_key(handle: LaunchHandle) -> str:
    """A hashable name of a handle (handles hold a mapping, so are not hashable)."""
    return json.dumps(handle.to_dict(), sort_keys=True)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` atomically (readers see the old file or the new one)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def note_released(paths: ProfilePaths, handle: LaunchHandle) -> None:
    """Note that ``handle``'s engine was ended on purpose (the keeper leaves it dead)."""
    with record_lock(paths):
        known = _read_list(released_file(paths))
        known.append(handle.to_dict())
        write_json(released_file(paths), known[-1000:])


def released_keys(paths: ProfilePaths) -> set[str]:
    """``handle_key`` of every handle noted by ``note_released``."""
    keys = set()
    for item in _read_list(released_file(paths)):
        with contextlib.suppress(ValueError):
            keys.add(handle_key(LaunchHandle.from_dict(item)))
    return keys


def _read_list(path: Path) -> list[Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return data if isinstance(data, list) else []


@dataclasses.dataclass(frozen=True)
class KeeperStatus:
    """What ``keeper.json`` says: the keeper process and what it did so far.

    Attributes:
        pid: the keeper's pid; ``started``: its start time (psutil's create_time).
        max_restarts: engines it may relaunch in all; ``restarts``: relaunched so far.
        relaunched: (ended engine, its replacement) handles, oldest first.
        given_up: engines that ended once the budget was spent (not relaunched).
    """

    pid: int
    started: float
    max_restarts: int
    restarts: int = 0
    relaunched: Sequence[tuple[LaunchHandle, LaunchHandle]] = ()
    given_up: int = 0

    def write(self, paths: ProfilePaths) -> None:
        data = dataclasses.asdict(self)
        data["relaunched"] = [[old.to_dict(), new.to_dict()] for old, new in self.relaunched]
        write_json(keeper_file(paths), data)

    @classmethod
    def read(cls, paths: ProfilePaths) -> KeeperStatus | None:
        """The profile's keeper status, or None when there is none (or it is unreadable)."""
        try:
            data = json.loads(keeper_file(paths).read_text())
            return cls(
                pid=int(data["pid"]),
                started=float(data["started"]),
                max_restarts=int(data["max_restarts"]),
                restarts=int(data.get("restarts", 0)),
                relaunched=[
                    (LaunchHandle.from_dict(old), LaunchHandle.from_dict(new))
                    for old, new in data.get("relaunched", [])
                ],
                given_up=int(data.get("given_up", 0)),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def describe(self) -> str:
        """One line for ``pxcluster list``."""
        if not self.max_restarts:
            return f"keeper pid {self.pid}: signals engines the controller cannot reach"
        text = (
            f"keeper pid {self.pid}: relaunches engines that die, "
            f"{self.restarts} of {self.max_restarts} restarts used"
        )
        if self.given_up:
            text += f"; {self.given_up} not relaunched (budget spent)"
        return text
