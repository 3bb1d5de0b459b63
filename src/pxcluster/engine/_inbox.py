"""Engine layer: the inbox, the requests the I/O thread took for the main thread to run.

A FIFO shared by the two threads, as ``queue.Queue`` is, made for the engine's hot path: a
BATCH's tasks go in at once (one lock, at most one wake-up of the main thread rather than one
per task), a put wakes the main thread only when it waits, and a get finds a waiting request
without a condition variable's bookkeeping (``queue.Queue`` also notifies ``not_full`` on
every get, which nobody here waits on). The I/O thread looks at and takes back requests not
started yet (abort, clear, shutdown) under ``mutex``, in ``queue``, as it did in a Queue's.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterable
from typing import Any


class Inbox:
    """Requests in arrival order; one consumer (the main thread), any number of producers."""

    def __init__(self) -> None:
        #: Held to look at or change ``queue`` (the I/O thread takes requests back under it).
        self.mutex = threading.Lock()
        self.queue: collections.deque[Any] = collections.deque()
        self._ready = threading.Condition(self.mutex)
        self._waiting = False  # the consumer waits in ``get``: a put must wake it

    def put(self, item: Any) -> None:
        self.put_many((item,))

    def put_many(self, items: Iterable[Any]) -> None:
        """Append ``items`` in order, atomically (the consumer sees all of them or none)."""
        with self.mutex:
            self.queue.extend(items)
            if self._waiting and self.queue:
                self._ready.notify()

    def get(self) -> Any:
        """The oldest request; waits for one (KeyboardInterrupt ends the wait)."""
        with self.mutex:
            queue = self.queue
            while not queue:
                self._waiting = True
                try:
                    self._ready.wait()
                finally:
                    self._waiting = False
            return queue.popleft()

    def __len__(self) -> int:
        return len(self.queue)
