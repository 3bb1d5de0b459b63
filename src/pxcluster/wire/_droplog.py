"""Wire layer: a rate-limited log for dropped messages and survived errors.

A flood of bad messages must cost the receiver neither its loop nor gigabytes of log: each
kind of event (``key``) is logged at most once per ``period`` seconds, and the line says
how many more like it were dropped meanwhile. Pure: the clock is passed in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class DropLog:
    """At most one log line per kind of event per ``period``; counts the rest."""

    #: Kinds of events remembered at most (a peer could make up keys through error texts).
    MAX_KEYS = 1024

    def __init__(
        self,
        log: logging.Logger,
        period: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._period = period
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        #: Every event passed here, logged or not, by key (for tests and stats).
        self.counts: dict[str, int] = {}

    def warning(self, key: str, text: str, *args: object) -> bool:
        """Log ``text % args`` as a warning unless ``key`` was logged within the period.

        Returns True if the line was written.
        """
        return self._emit(logging.WARNING, key, text, args, False)

    def info(self, key: str, text: str, *args: object) -> bool:
        """Like ``warning``, at INFO level (expected events that may come in floods)."""
        return self._emit(logging.INFO, key, text, args, False)

    def exception(self, key: str, text: str, *args: object) -> bool:
        """Like ``warning``, at ERROR level with the current exception's traceback."""
        return self._emit(logging.ERROR, key, text, args, True)

    def _emit(
        self, level: int, key: str, text: str, args: tuple[object, ...], exc_info: bool
    ) -> bool:
        if key not in self.counts and len(self.counts) >= self.MAX_KEYS:
            key = "(other)"
        self.counts[key] = self.counts.get(key, 0) + 1
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._period:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            text += f" (and {held} more like it in the last {self._period:.0f} s)"
        self._log.log(level, text, *args, exc_info=exc_info)
        return True
