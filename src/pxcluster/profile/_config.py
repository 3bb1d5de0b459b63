"""Profile layer: the typed configuration a profile's ``pxcluster.toml`` can set.

Precedence: command-line flags override the file, the file overrides these defaults.

.. code-block:: toml

    [controller]
    ip = "127.0.0.1"
    client_port = 0          # 0: a free port, written to the connection file
    engine_port = 0
    heartbeat_period = 0.5   # seconds between pings
    heartbeat_timeout = 3.0  # an engine silent this long is declared dead
    curve = false            # encrypt every connection with CurveZMQ (use between hosts)
    task_prefetch = 2        # tasks an engine may hold at once (running + waiting)
    task_prefetch_short = 8  # ... while its recent tasks each ran under 1 ms
    retention_records = 100000       # finished tasks kept in the record store
    retention_bytes = 268435456      # ... and at most this many bytes of them
    result_cap = 16777216            # a bigger task result is not kept, only its status

    [engine]
    controller_timeout = 30.0  # an engine cut off from its controller this long exits
"""

from __future__ import annotations

import dataclasses
import sys
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
    client_port: int = 0
    engine_port: int = 0
    heartbeat_period: float = 0.5
    heartbeat_timeout: float = 3.0
    curve: bool = False
    task_prefetch: int = 2
    task_prefetch_short: int = 8
    retention_records: int = 100_000
    retention_bytes: int = 256 * 1024 * 1024
    result_cap: int = 16 * 1024 * 1024
    controller_timeout: float = 30.0

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
