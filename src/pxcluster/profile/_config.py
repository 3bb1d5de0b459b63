"""Profile layer: the typed configuration a profile's ``pxcluster.toml`` can set.

Precedence: command-line flags override the file, the file overrides these defaults.

.. code-block:: toml

    [controller]
    ip = "127.0.0.1"         # address to listen on (0.0.0.0: every interface; or an
                             # interface name such as "eth1")
    location = ""            # address written into the connection files, the one engines
                             # and clients on other hosts use ("": the ip, or for 0.0.0.0
                             # the first non-loopback address)
    client_port = 0          # 0: a free port, written to the connection file
    engine_port = 0          # 0: a free port, written to the connection file
    heartbeat_period = 0.5   # seconds between pings
    heartbeat_timeout = 3.0  # an engine silent this long is declared dead
    curve = false            # encrypt every connection with CurveZMQ (use between hosts)
    task_prefetch = 2        # tasks an engine may hold at once (running + waiting)
    task_prefetch_short = 32  # ... while its recent tasks each ran under 1 ms
    retention_records = 100000       # finished tasks kept in the record store
    retention_bytes = 268435456      # ... and at most this many bytes of them
    result_cap = 16777216            # a bigger task result is not kept, only its status

    walltime_margin = 60.0   # no new tasks to an engine this many s before its job ends
    dashboard = false        # serve the live web dashboard (needs pxcluster[dashboard])
    dashboard_ip = "127.0.0.1"   # where it listens (loopback: this machine only)
    dashboard_port = 0       # 0: a free port (`pxcluster list` prints the address)

    [engine]
    controller_timeout = 30.0  # an engine cut off from its controller this long exits

Launchers (``pxcluster start --engines NAME``) read ``[launcher]`` (every launcher) and then
``[NAME]`` (one launcher; its keys win); keys other than ``LauncherConfig``'s fields are
only allowed in ``[NAME]`` and go to ``LauncherConfig.extra`` for that launcher to check:

.. code-block:: toml

    [launcher]
    queue = "debug"          # Slurm partition, SGE or PBS queue
    walltime = "01:00:00"    # the job's time limit (HH:MM:SS, or minutes)
    account = "proj42"
    directives = ["--mem=2G"]            # extra lines after #SBATCH / #$ / #PBS
    modules = ["python/3.11"]            # `module load` each one in the job script
    setup = ["source ~/venv/bin/activate"]   # shell lines before the processes start
    python = "/opt/venv/bin/python"      # the interpreter on the nodes (default: this one)

    [slurm]
    template = "~/my-slurm-engines.sh"   # a job-script template instead of the built-in one
    relay = true             # each array task: one pxrelay and engines_per_job engines
    engines_per_job = 16     # (--relay --engines-per-job 16)
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclasses.dataclass(frozen=True)
class ClusterConfig:
    """Settings for a profile's controller and engines."""

    ip: str = "127.0.0.1"
    location: str = ""
    client_port: int = 0
    engine_port: int = 0
    heartbeat_period: float = 0.5
    heartbeat_timeout: float = 3.0
    curve: bool = False
    task_prefetch: int = 2
    task_prefetch_short: int = 32
    retention_records: int = 100_000
    retention_bytes: int = 256 * 1024 * 1024
    result_cap: int = 16 * 1024 * 1024
    controller_timeout: float = 30.0
    walltime_margin: float = 60.0
    dashboard: bool = False
    dashboard_ip: str = "127.0.0.1"
    dashboard_port: int = 0

    def replace(self, **changes: Any) -> ClusterConfig:
        """A copy with ``changes`` applied; ``None`` values are ignored (flag not given)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def load_config(path: Path) -> ClusterConfig:
    """Read ``path`` (a missing file gives the defaults).

    Raises:
        ValueError: the file does not parse or names an unknown setting.
    """
    if not path.exists():
        return ClusterConfig()
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    known = {f.name for f in dataclasses.fields(ClusterConfig)}
    flat: dict[str, Any] = {}
    for section in ("controller", "engine"):
        for key, value in data.get(section, {}).items():
            if key not in known:
                raise ValueError(f"{path}: unknown setting [{section}] {key}")
            flat[key] = value
    return ClusterConfig(**flat)


@dataclasses.dataclass(frozen=True)
class LauncherConfig:
    """Settings of one launcher (see the module docstring for the file's sections).

    Attributes:
        queue: Slurm partition, SGE or PBS queue ("": the scheduler's default).
        walltime: the job's time limit, ``[[HH:]MM:]SS`` or minutes ("": the default).
        account: account or project to charge ("": none).
        directives: extra scheduler lines, written after the system's prefix.
        modules: environment modules to ``module load`` before starting.
        setup: shell lines run before the processes start.
        template: a job-script template file replacing the built-in one ("": built-in).
        python: the Python interpreter where the processes run ("": this one).
        extra: the launcher's own keys from its ``[NAME]`` section.
    """

    queue: str = ""
    walltime: str = ""
    account: str = ""
    directives: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()
    template: str = ""
    python: str = ""
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def replace(self, **changes: Any) -> LauncherConfig:
        """A copy with ``changes`` applied; ``None`` values are ignored (flag not given)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


_LISTS = ("directives", "modules", "setup")


def load_launcher_config(path: Path, name: str) -> LauncherConfig:
    """The settings of launcher ``name`` from ``path`` (a missing file gives the defaults).

    Raises:
        ValueError: the file does not parse, or a value has the wrong type, or
            ``[launcher]`` names an unknown setting.
    """
    if not path.exists():
        return LauncherConfig()
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    known = {f.name for f in dataclasses.fields(LauncherConfig)} - {"extra"}
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for section in ("launcher", name):
        for key, value in data.get(section, {}).items():
            if key not in known:
                if section == "launcher":
                    raise ValueError(f"{path}: unknown setting [launcher] {key}")
                extra[key] = value
                continue
            if key in _LISTS:
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValueError(f"{path}: [{section}] {key} must be a list of strings")
                value = tuple(value)
            elif not isinstance(value, str):
                if key == "walltime" and isinstance(value, int):
                    value = str(value)
                else:
                    raise ValueError(f"{path}: [{section}] {key} must be a string")
            values[key] = value
    return LauncherConfig(**values, extra=extra)


def default_config_text() -> str:
    """A ``pxcluster.toml`` with every setting at its default, commented out, with what it
    means: the examples of this module's docstring, which are kept beside the settings."""
    lines = [
        "# pxcluster settings of this profile. Every setting is shown at its default,",
        "# commented out: uncomment a line to change it. Command-line flags override this file.",
        "",
    ]
    doc = __doc__ or ""
    for number, block in enumerate(doc.split(".. code-block:: toml")[1:]):
        if number == 1:
            lines.append("# Launchers (pxcluster start --engines NAME): examples, not defaults.")
        body = block.split("\n\n", 1)[1] if "\n\n" in block else ""
        for line in body.splitlines():
            if line and not line.startswith("    "):
                break  # the block ended: prose again
            text = line[4:]
            lines.append(f"# {text}".rstrip() if text else "")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def write_default_config(path: Path) -> bool:
    """Write ``default_config_text()`` to ``path`` unless a file is there; True if written."""
    try:
        with path.open("x") as file:
            file.write(default_config_text())
    except FileExistsError:
        return False
    return True
