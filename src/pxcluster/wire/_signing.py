"""Wire layer: HMAC-SHA256 signatures over header and payload, and the replay guard."""

from __future__ import annotations

import collections
import hashlib
import hmac
import secrets
from collections.abc import Iterable

from pxcluster._buffers import Buffer


def new_key() -> bytes:
    """A fresh random 256-bit key, hex-encoded so it can live in a JSON connection file."""
    return secrets.token_hex(32).encode("ascii")


class Signer:
    """Signs and verifies messages with one shared key.

    An empty key turns signing off (the signature frame is then empty); this is only meant for
    benchmarks of the framing itself.
    """

    def __init__(self, key: bytes) -> None:
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
    """Drops a message whose id was already seen: a sliding window per sender session.

    Ids are ``session-counter``. For each session the guard keeps the highest counter seen
    and a bitmap of the ``window`` counters below it (as IPsec's anti-replay window does):
    memory is a few kilobytes per session however many messages pass, and a replay is
    caught however old it is. A counter more than ``window`` below the highest is refused:
    one sender's messages reach a receiver over one connection, in order, so only an
    attacker's replay is that late. Ids of another form fall back to a bounded set.
    """

    def __init__(self, window: int = 4096, max_sessions: int = 4096) -> None:
        self._window = window
        self._mask = (1 << window) - 1
        self._sessions: collections.OrderedDict[str, list[int]] = collections.OrderedDict()
        self._max_sessions = max_sessions
        self._other = RecentIds(10_000)

    def check_and_add(self, msg_id: str) -> bool:
        """Return True the first time ``msg_id`` is seen, False for a replay."""
        session, sep, tail = msg_id.rpartition("-")
        if not (sep and session and tail.isdigit() and len(tail) < 19):
            return self._other.check_and_add(msg_id)
        counter = int(tail)
        state = self._sessions.get(session)
        if state is None:
            self._sessions[session] = [counter, 1]
            if len(self._sessions) > self._max_sessions:
                self._sessions.popitem(last=False)
            return True
        self._sessions.move_to_end(session)
        top, bits = state
        if counter > top:
            shift = counter - top
            state[0] = counter
            state[1] = ((bits << shift) | 1) & self._mask if shift < self._window else 1
            return True
        offset = top - counter
        if offset >= self._window or bits >> offset & 1:
            return False
        state[1] = bits | (1 << offset)
        return True


class RecentIds:
    """Remembers the last ``capacity`` ids: drops a repeat of any of them.

    For receivers whose senders' ids may arrive far out of order (an engine gets tasks in
    scheduling order, not in the order clients made them); it never refuses a new id.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._order: collections.deque[str] = collections.deque()
        self._seen: set[str] = set()
        self._capacity = capacity

    def check_and_add(self, msg_id: str) -> bool:
        """Return True the first time ``msg_id`` is seen (within the last ``capacity``)."""
        if msg_id in self._seen:
            return False
        self._seen.add(msg_id)
        self._order.append(msg_id)
        if len(self._order) > self._capacity:
            self._seen.discard(self._order.popleft())
        return True
