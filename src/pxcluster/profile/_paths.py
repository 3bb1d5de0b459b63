"""Profile layer: the folder of a profile and the files in it.

``~/.pxcluster/profile_NAME/`` (``PXCLUSTER_DIR`` moves the root) holds ``pxcluster.toml``,
``security/`` (connection files, mode 0600), ``log/`` (one log per process) and ``pid/``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
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
        """Create the profile's folders and make the profile private to the user.

        The folder and every folder in it are 0700 and every file 0600: results, logs and
        pids of one user's work are nobody else's business, and the keys let whoever reads
        them run code. Files made later (logs, the record store) are private through their
        folder whatever the umask.
        """
        for folder in (self.dir, self.log, self.pid, self.security):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        _make_private(self.dir)
        return self


def _make_private(folder: Path) -> None:
    """chmod ``folder`` and everything under it to the owner only (ours only; an owner's
    execute bit is kept, for scripts a launcher wrote)."""
    uid = os.getuid()
    for root, dirs, files in os.walk(folder):
        for name in [root, *(os.path.join(root, f) for f in files)]:
            try:
                st = os.lstat(name)
            except OSError:
                continue  # gone meanwhile
            if st.st_uid != uid or stat.S_ISLNK(st.st_mode):
                continue
            private = st.st_mode & 0o700 if name != root else 0o700
            if st.st_mode & 0o777 != private:
                with contextlib.suppress(OSError):
                    os.chmod(name, private)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
