"""Controller layer: a message the server must send, as the hub and the task board make them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

from pxcluster._buffers import Buffer
from pxcluster.wire import Message


@dataclasses.dataclass(frozen=True)
class Outbound:
    """A message the server must send: a fresh ``msg``, or a forwarded ``header`` + buffers."""

    to: Literal["client", "engine"]
    identity: bytes
    msg: Message | None = None
    header: bytes = b""
    buffers: Sequence[Buffer] = ()
