"""Wire layer: HMAC-SHA256 signatures over header and payload, and the replay guard."""

from __future__ import annotations

import collections
import hashlib
import hmac
import secrets
from collections.abc import Iterable

Buffer = bytes | memoryview | bytearray


def new_key() -> bytes:
    """A fresh random 256-bit key, hex-encoded so it can live in a JSON connection file."""
    return secrets.token_hex(32).encode("ascii")


class Signer:
    """Signs and verifies messages with one shared key.

    An empty key turns signing off (the signature frame is then empty); this is only meant for
    benchmarks of the framing itself.
    """

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._proto = hmac.new(key, digestmod=hashlib.sha256) if key else None

    def sign(self, parts: Iterable[Buffer]) -> bytes:
        """Return the hex signature of ``parts`` (header then each buffer, in order)."""
        if self._proto is None:
            return b""
        h = self._proto.copy()
        for part in parts:
            h.update(part)
        return h.hexdigest().encode("ascii")

    def verify(self, signature: Buffer, parts: Iterable[Buffer]) -> bool:
        """Constant-time check that ``signature`` is ours for ``parts``."""
        return hmac.compare_digest(bytes(signature), self.sign(parts))


class ReplayGuard:
    """Remembers the last ``capacity`` message ids so a replayed message is dropped.

    Ids embed the sender's session and a counter, so a bounded window is enough: a replay of
    something older than the window would also carry a stale session after any restart.
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self._order: collections.deque[str] = collections.deque()
        self._seen: set[str] = set()
        self._capacity = capacity

    def check_and_add(self, msg_id: str) -> bool:
        """Return True the first time ``msg_id`` is seen, False for a replay."""
        if msg_id in self._seen:
            return False
        self._seen.add(msg_id)
        self._order.append(msg_id)
        if len(self._order) > self._capacity:
            self._seen.discard(self._order.popleft())
        return True
