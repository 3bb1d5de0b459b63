"""Profile layer: the folder of a profile and the files in it.

``~/.pxcluster/profile_NAME/`` (``PXCLUSTER_DIR`` moves the root) holds ``pxcluster.toml``,
``security/`` (connection files, mode 0600), ``log/`` (one log per process) and ``pid/``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path


def profile_root() -> Path:
    """The folder holding every profile: ``$PXCLUSTER_DIR`` or ``~/.pxcluster``."""
    env = os.environ.get("PXCLUSTER_DIR")
    return Path(env).expanduser() if env else Path.home() / ".pxcluster"


@dataclasses.dataclass(frozen=True)
class ProfilePaths:
    """The paths of one profile; nothing is created until ``ensure()``."""

    name: str
    dir: Path

    @classmethod
    def for_profile(
        cls, name: str = "default", profile_dir: str | Path | None = None
    ) -> ProfilePaths:
        """Paths of profile ``name``; ``profile_dir`` overrides where its folder is."""
        folder = Path(profile_dir) if profile_dir else profile_root() / f"profile_{name}"
        return cls(name=name, dir=folder.expanduser().resolve())

    @property
    def security(self) -> Path:
        return self.dir / "security"

    @property
    def log(self) -> Path:
        return self.dir / "log"

    @property
    def pid(self) -> Path:
        return self.dir / "pid"

    @property
    def config_file(self) -> Path:
        return self.dir / "pxcluster.toml"

    @property
    def client_file(self) -> Path:
        return self.security / "client.json"

    @property
    def engine_file(self) -> Path:
        return self.security / "engine.json"

    @property
    def curve_file(self) -> Path:
        """The controller's CurveZMQ key pair (its secret is for the controller alone)."""
        return self.security / "controller-curve.json"

    @property
    def cluster_file(self) -> Path:
        """What ``pxcluster start`` launched: pids and launcher, for ``stop`` and ``list``."""
        return self.pid / "cluster.json"

    def ensure(self) -> ProfilePaths:
        """Create the profile's folders (security/ private to the user) and return self."""
        for folder in (self.dir, self.log, self.pid):
            folder.mkdir(parents=True, exist_ok=True)
        self.security.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.security, 0o700)
        return self
