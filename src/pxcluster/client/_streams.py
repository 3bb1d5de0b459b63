"""Client layer: output that engines send while a request runs, routed to whoever asked.

An engine streams what user code writes to stdout/stderr, and every rich output it displays,
as STREAM messages whose parent is the request (see ``engine/_display.py``). The client's
I/O thread hands each one to the ``StreamRouter`` installed on the connection, which calls
the handler registered for that request. Handlers run in the I/O thread, in arrival order,
which per engine is the order the engine wrote in; all of a request's output from an engine
is delivered before that engine's reply resolves the request.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from pxcluster.client._core import ClientCore
from pxcluster.wire import Message

log = logging.getLogger("pxcluster.client")


@dataclasses.dataclass(frozen=True)
class EngineOutput:
    """One piece of output from an engine while a request runs.

    Attributes:
        engine: the engine id.
        name: ``"stdout"``, ``"stderr"`` or ``"display"``.
        text: the text written; for a display, its ``text/plain`` form.
        data: for a display, the Jupyter mime bundle (mime type -> data); else empty.
    """

    engine: int
    name: str
    text: str
    data: dict[str, Any] = dataclasses.field(default_factory=dict)


OutputHandler = Callable[[EngineOutput], None]


def output_of(msg: Message) -> EngineOutput | None:
    """The EngineOutput a STREAM message carries, or None when it is malformed."""
    name, text = msg.content.get("name"), msg.content.get("text")
    if not isinstance(name, str) or not isinstance(text, str):
        return None
    if name != "display":
        return EngineOutput(msg.engine, name, text)
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    plain = data.get("text/plain")
    return EngineOutput(msg.engine, name, plain if isinstance(plain, str) else "", data)


class StreamRouter:
    """Calls the handler registered for a STREAM message's request; drops the rest."""

    def __init__(self) -> None:
        self._handlers: dict[str, OutputHandler] = {}
        self._lock = threading.Lock()

    def register(self, msg_ids: Iterable[str], handler: OutputHandler) -> None:
        """Send the output of the requests ``msg_ids`` to ``handler`` (before submitting)."""
        with self._lock:
            for msg_id in msg_ids:
                self._handlers[msg_id] = handler

    def forget(self, msg_ids: Iterable[str]) -> None:
        """Stop routing output of ``msg_ids`` (their replies are in)."""
        with self._lock:
            for msg_id in msg_ids:
                self._handlers.pop(msg_id, None)

    def __call__(self, msg: Message) -> None:
        with self._lock:
            handler = self._handlers.get(msg.parent)
        if handler is None:
            return
        output = output_of(msg)
        if output is None:
            log.warning("dropped a malformed STREAM message from engine %d", msg.engine)
            return
        handler(output)


def router_of(core: ClientCore) -> StreamRouter:
    """The StreamRouter installed as ``core.stream_handler`` (installed on first use).

    Every client object made on one connection shares it, so each request's output reaches
    the handler its caller registered, whichever client object sent it.
    """
    router = core.stream_handler
    if not isinstance(router, StreamRouter):
        router = StreamRouter()
        core.stream_handler = router
    return router
