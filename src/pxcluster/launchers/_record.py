"""Launchers layer: ``pid/cluster.json``, what a ``start`` launched, for later commands.

``pxcluster stop``, ``list``, ``logs`` and ``add`` run in other processes than the ``start``
that launched the cluster; this record is how they find every process and job it made,
through each one's ``LaunchHandle`` and the launcher named in it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from pxcluster._errors import NoClusterRunning, PxclusterError
from pxcluster.launchers._launcher import LaunchHandle, make_launcher
from pxcluster.launchers._processes import ProcessRef
from pxcluster.profile import ProfilePaths, load_launcher_config, read_client_connection


@dataclasses.dataclass(frozen=True)
class ClusterRecord:
    """What ``pid/cluster.json`` says a ``start`` launched.

    Attributes:
        profile: the profile's name.
        launcher: the engines' launcher at start (``add`` may use others; each handle
            names its own).
        controller: the controller's handle.
        engines: every engine's handle, in launch order (``add`` appends).
    """

    profile: str
    launcher: str
    controller: LaunchHandle
    engines: list[LaunchHandle]

    def write(self, path: Path) -> None:
        data: dict[str, Any] = {
            "profile": self.profile,
            "launcher": self.launcher,
            "controller": self.controller.to_dict(),
            "engines": [e.to_dict() for e in self.engines],
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: Path) -> ClusterRecord | None:
        """The record at ``path``, or None if there is none (or it cannot be read)."""
        try:
            data = json.loads(path.read_text())
            return cls(
                profile=str(data["profile"]),
                launcher=str(data.get("launcher", "local")),
                controller=_handle(data["controller"], "controller"),
                engines=[_handle(e, "engine") for e in data["engines"]],
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def launchers(self) -> list[str]:
        """Every launcher name in the record (controller's first)."""
        names = [self.controller.launcher]
        names += [e.launcher for e in self.engines if e.launcher not in names]
        return names


def _handle(data: dict[str, Any], role: str) -> LaunchHandle:
    return LaunchHandle.from_dict({"launcher": "local", "role": role, **data})


def handle_alive(paths: ProfilePaths, handle: LaunchHandle) -> bool:
    """True while the handle's process runs or its job is queued (asks its launcher; a
    launcher that cannot be asked counts as alive, so ``stop`` still tries)."""
    if handle.launcher == "local":
        return ProcessRef(handle.pid, handle.started).alive()
    try:
        launcher = make_launcher(
            handle.launcher, paths, load_launcher_config(paths.config_file, handle.launcher)
        )
        return not launcher.poll([handle])[0].state.ended
    except (PxclusterError, ValueError, OSError):
        return True


def running_controller(paths: ProfilePaths) -> LaunchHandle | None:
    """The live controller of this profile, if any (from cluster.json or the connection file).

    A controller started as a batch job counts as live while its job is queued or runs.
    """
    record = ClusterRecord.read(paths.cluster_file)
    if record is not None and handle_alive(paths, record.controller):
        return record.controller
    try:
        conn = read_client_connection(paths.client_file)
    except NoClusterRunning:
        return None
    ref = ProcessRef.of(conn.controller_pid) if conn.controller_pid else None
    if ref is None or not ref.alive():
        return None
    return LaunchHandle("local", "controller", pid=ref.pid, started=ref.started)
