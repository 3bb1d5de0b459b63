"""Wire layer: HMAC-SHA256 signatures over header and payload, and the replay guard."""

from __future__ import annotations

import collections
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

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
        # keyed once; each message's HMAC starts from a copy of this one
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


#: Seconds a signed message stays acceptable after it was sent (by the sender's clock): older
#: ones are refused as replays, which is what lets a receiver forget a quiet session without
#: ever accepting its old messages again. Also the clock skew tolerated between hosts.
REPLAY_WINDOW = 3600.0


class ReplayGuard:
    """Drops a message whose id was already seen, or that was sent too long ago.

    Ids are ``session-counter`` (ASCII digits). For each session the guard keeps the
    highest counter seen and a bitmap of the ``window`` counters below it (as IPsec's
    anti-replay window does): memory is a few hundred bytes per session however many
    messages pass. A counter more than ``window`` below the highest is refused: one sender's
    messages reach a receiver over one connection, in order, so only an attacker's replay is
    that late.

    The guard never forgets within a key's lifetime: a message whose send time (``ts``, in
    every header and covered by the signature) is more than ``max_age`` seconds from the
    receiver's clock is refused, and a session is forgotten only once its newest message is
    that old, so any message of a forgotten session is refused by its age. Ids of any other
    form are refused. Memory: the sessions that spoke within ``max_age``; past
    ``max_sessions`` of them new sessions are refused until old ones age out.
    """

    def __init__(
        self,
        window: int = 4096,
        max_sessions: int = 100_000,
        max_age: float = REPLAY_WINDOW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._window = window
        self._mask = (1 << window) - 1
        #: session -> [highest counter, bitmap below it, newest send time]
        self._sessions: dict[str, list[Any]] = {}
        self._max_sessions = max_sessions
        self._max_age = max_age
        self._clock = clock
        self._next_sweep = 0.0
        self.refused_old = 0  # counts, for tests and logs
        self.refused_full = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def check_and_add(self, msg_id: str, ts: float = 0.0) -> bool:
        """Return True the first time ``msg_id`` (sent at ``ts``) is seen, False otherwise."""
        session, sep, tail = msg_id.rpartition("-")
        if not (sep and session and tail.isascii() and tail.isdigit() and len(tail) < 19):
            return False  # int() would refuse a Unicode digit: never let it get there
        now = self._clock()
        if not now - self._max_age < ts < now + self._max_age:
            self.refused_old += 1
            return False
        counter = int(tail)
        state = self._sessions.get(session)
        if state is None:
            if now >= self._next_sweep or len(self._sessions) >= self._max_sessions:
                self._sweep(now)
            if len(self._sessions) >= self._max_sessions:
                self.refused_full += 1
                return False
            self._sessions[session] = [counter, 1, ts]
            return True
        top, bits, newest = state
        if ts > newest:
            state[2] = ts
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

    def _sweep(self, now: float) -> None:
        """Forget sessions whose newest message is past the age limit (their messages, all
        older still, are refused by age from now on)."""
        self._next_sweep = now + min(60.0, self._max_age / 4)
        horizon = now - self._max_age
        for session in [k for k, v in self._sessions.items() if v[2] <= horizon]:
            del self._sessions[session]


class RecentIds:
    """Remembers the last ``capacity`` ids: drops a repeat of any of them.

    For receivers whose senders' ids may arrive far out of order (an engine gets tasks in
    scheduling order, not in the order clients made them); it never refuses a new id.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._order: collections.deque[str] = collections.deque()
        self._seen: set[str] = set()
        self._capacity = capacity

    def check_and_add(self, msg_id: str, ts: float = 0.0) -> bool:
        """Return True the first time ``msg_id`` is seen (within the last ``capacity``)."""
        if msg_id in self._seen:
            return False
        self._seen.add(msg_id)
        self._order.append(msg_id)
        if len(self._order) > self._capacity:
            self._seen.discard(self._order.popleft())
        return True
