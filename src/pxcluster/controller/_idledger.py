"""Controller layer: engine ids outlive a controller that crashed.

Engine ids are never reused: a result, a traceback and a client's view name an engine for
good. A controller taking the place of one that crashed starts with an empty hub, so
without this ledger it would hand out 0, 1, ... again: an engine relaunched by the keeper
could get a dead engine's id, or take the id that a surviving engine comes back to claim
(which would then be given a new one, and the clients' ids would name the wrong engine).

The hub's ledger (the next new id, and the ids retired for good: given out and held by no
live engine) is written to ``pid/engine-ids.json`` when it changed, at most once a beat,
and read back only on a takeover. An engine that died in the last beat before the crash
may still come back under its id; nothing else can.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger("pxcluster.controller")


class IdLedgerFile:
    """The hub's id ledger on disk (mode 0600, replaced atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._saved: tuple[int, int, int] | None = None

    def load(self) -> tuple[int, list[int]] | None:
        """The ledger a crashed controller left: (next id, retired ids), or None."""
        try:
            data = json.loads(self.path.read_text())
            next_id, retired = data["next"], data["retired"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if type(next_id) is not int or not isinstance(retired, list):
            return None
        return next_id, [i for i in retired if type(i) is int]

    def save(self, key: tuple[int, int, int], next_id: int, retired: list[int]) -> None:
        """Write the ledger unless ``key`` (cheap: next id, ids given, live engines) says
        nothing changed since the last write. A failed write (disk full) is retried at the
        next call; it never stops the controller."""
        if key == self._saved:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({"next": next_id, "retired": retired}, f)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("could not write the engine id ledger %s: %s", self.path, exc)
            return
        self._saved = key

    def remove(self) -> None:
        """A controller that stops cleanly leaves no ledger: the next cluster starts at 0."""
        self.path.unlink(missing_ok=True)
