"""Controller layer: a message the server must send, as the hub and the task board make them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

from pxcluster._buffers import Buffer
from pxcluster.wire import Message


class Outbound(NamedTuple):
    """A message the server must send: a fresh ``msg``, or a forwarded ``header`` + buffers.

    A named tuple, not a dataclass: one or more is made per task on the hot path, and a
    tuple is made in a fraction of a frozen dataclass's time while staying immutable.
    """

    to: Literal["client", "engine"]
    identity: bytes
    msg: Message | None = None
    header: bytes = b""
    buffers: Sequence[Buffer] = ()
