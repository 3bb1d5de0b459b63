"""Controller layer: the per-host relays (``pxrelay``) the controller knows, and their notes.

Theory of operation
-------------------
A relay forwards its engines' messages with one more routing frame; the server names each
such engine ``wire.relayed_identity(relay, engine)`` and the hub keys it by that name like
any other. What is particular to relays is kept here, beside the hub:

* ``records``: relay routing id -> ``RelayRecord`` (its host, and the names of the engines
  that registered through it);
* a relay's **pong** stands for all its engines: each one the hub still knows gets the
  heartbeat (the relay pings them locally and reports the silent ones);
* its **notes** (``wire._relay``): "hello" at each connection (answered with "welcome", the
  heartbeat settings; engines it serves that the hub does not know are asked to register,
  as after a controller's restart), and "gone" (engines it lost: the hub removes them).

Notes are not signed (a relay has no key) and can only name engines behind the relay that
sent them, so no peer can affect engines whose traffic it does not carry.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

from pxcluster.controller._hub import Hub
from pxcluster.controller._outbound import Outbound
from pxcluster.wire import relayed_identity

log = logging.getLogger("pxcluster.controller")

#: Relays remembered at most (each is a peer connection too; a flood of made-up hellos
#: from one connection reuses its record).
_MAX_RELAYS = 100_000


@dataclasses.dataclass
class RelayRecord:
    """A relay as the controller knows it."""

    identity: bytes
    hostname: str = "?"
    pid: int = 0
    last_seen: float = 0.0
    engines: set[bytes] = dataclasses.field(default_factory=set)  # relayed identities


class Relays:
    """The relays of one controller; see the module docstring."""

    def __init__(self, hub: Hub, clock: Callable[[], float] = time.monotonic) -> None:
        self.hub = hub
        self.records: dict[bytes, RelayRecord] = {}
        self._clock = clock

    def _record(self, relay: bytes) -> RelayRecord | None:
        record = self.records.get(relay)
        if record is None and len(self.records) < _MAX_RELAYS:
            record = self.records[relay] = RelayRecord(relay, last_seen=self._clock())
        return record

    def registered(self, relay: bytes, identity: bytes) -> None:
        """An engine named ``identity`` registered through ``relay``."""
        record = self._record(relay)
        if record is not None:
            record.engines.add(identity)

    def hello(
        self, relay: bytes, body: dict[str, object]
    ) -> tuple[list[Outbound], dict[str, float]]:
        """A relay (re)connected: the heartbeats its engines get, and the welcome's fields."""
        record = self._record(relay)
        out: list[Outbound] = []
        if record is not None:
            record.hostname = str(body["hostname"])[:256]
            record.pid = int(body["pid"])  # type: ignore[call-overload]  # checked by wire
            record.last_seen = self._clock()
            engines = body["engines"]
            assert isinstance(engines, list)
            for engine in engines:
                name = relayed_identity(relay, engine)
                # a known engine counts as heard of; an unknown one is asked to register
                out += self.hub.heartbeat(name)
                if self.hub.engine_of(name) is not None:
                    record.engines.add(name)
            log.info(
                "relay pid %d on %s connected (%d engines behind it)",
                record.pid,
                record.hostname,
                len(engines),
            )
        welcome = {
            "heartbeat_period": float(self.hub.heartbeat_period),
            "heartbeat_timeout": float(self.hub.heartbeat_timeout),
        }
        return out, welcome

    def gone(self, relay: bytes, engines: list[bytes], why: str) -> list[Outbound]:
        """The relay lost ``engines``: the hub removes those it knows."""
        record = self.records.get(relay)
        where = f"its relay on {record.hostname}" if record is not None else "its relay"
        out: list[Outbound] = []
        for engine in engines:
            name = relayed_identity(relay, engine)
            if record is not None:
                record.engines.discard(name)
            found = self.hub.engine_of(name)
            if found is not None:
                out += self.hub.remove_engine(found.id, f"{where} lost it: {why[:200]}")
        return out

    def pong(self, relay: bytes, payload: bytes) -> list[Outbound] | None:
        """A pong from ``relay``: every engine behind it is heard of. None if ``relay`` is
        not a relay (then it is an engine's pong)."""
        record = self.records.get(relay)
        if record is None:
            return None
        record.last_seen = self._clock()
        out: list[Outbound] = []
        for name in list(record.engines):
            if self.hub.engine_of(name) is not None:
                out += self.hub.heartbeat(name, payload)
                continue
            record.engines.discard(name)  # removed meanwhile: asked back once if it was
            # declared dead (its relay stood still, say): it answers only its relay's pings,
            # so nobody else would tell it (it drops what it holds and joins anew)
            for ask in self.hub.heartbeat(name):
                if ask.msg is not None and ask.msg.content.get("reason") == "declared dead":
                    out.append(ask)
        return out

    def forget_silent(self) -> None:
        """Forget relays silent for twice the heartbeat timeout (their engines were
        declared dead meanwhile, all together, by the hub's own liveness check)."""
        limit = self._clock() - 2 * self.hub.heartbeat_timeout
        for relay in [r for r, rec in self.records.items() if rec.last_seen < limit]:
            record = self.records.pop(relay)
            log.warning("relay pid %d on %s is gone", record.pid, record.hostname)
