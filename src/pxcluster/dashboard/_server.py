"""Dashboard layer: the web server (Tornado) that shows one cluster's snapshots live.

Theory of operation
-------------------
One poller coroutine asks the ``MonitorSource`` for a snapshot every ``period`` seconds, in
a worker thread (a poll blocks on the controller), and keeps the latest one as JSON. Every
open page holds one server-sent-events stream (``/events``) and gets each new snapshot as
one event; ``/api/snapshot`` answers the latest one for scripts. The controller answers one
MONITOR request a period however many pages are open.

Every request must carry the token: as ``?token=`` (the address ``pxcluster list``
prints), as an ``Authorization: Bearer`` header, or as the cookie the page gets when it is
opened with ``?token=`` (HttpOnly, SameSite=Strict, so other sites' pages cannot use it).
Anything else gets 403. The token is compared in constant time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import tornado.iostream
import tornado.web

from pxcluster.monitor import ClusterSnapshot

log = logging.getLogger("pxcluster.dashboard")

STATIC = Path(__file__).parent / "static"
COOKIE = "pxcluster_dashboard"
#: Seconds between comments on an idle event stream, so proxies and browsers keep it open.
KEEPALIVE = 15.0


class SnapshotFeed:
    """The latest snapshot as JSON, and a way to wait for the next one."""

    def __init__(self) -> None:
        self.latest: str = ""
        self._changed = asyncio.Event()

    def publish(self, snapshot: ClusterSnapshot) -> None:
        self.latest = json.dumps(snapshot.as_json(), separators=(",", ":"))
        self._changed.set()
        self._changed = asyncio.Event()  # waiters of this round have their wake-up

    async def wait_for_next(self, timeout: float) -> bool:
        """True when a new snapshot came within ``timeout`` seconds."""
        with contextlib.suppress(asyncio.TimeoutError):  # not the builtin one before 3.11
            await asyncio.wait_for(self._changed.wait(), timeout)
            return True
        return False


def refuse_without_token(handler: tornado.web.RequestHandler, token: str) -> None:
    """Finish ``handler``'s request with 403 unless it carries ``token``; a request that
    names the token in its URL or header also gets it as a cookie, for the page's own
    requests."""
    given = handler.get_query_argument("token", "")
    header = handler.request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        given = given or header.removeprefix("Bearer ")
    cookie = handler.get_cookie(COOKIE, "") or ""
    if not any(hmac.compare_digest(c.encode(), token.encode()) for c in (given, cookie)):
        handler.set_status(403)
        handler.set_header("Content-Type", "text/plain; charset=utf-8")
        handler.finish(
            "403: this dashboard needs its token. Open the address `pxcluster list` prints "
            "(it ends in ?token=...).\n"
        )
        return
    if given:
        handler.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")


class _Protected(tornado.web.RequestHandler):
    """Refuses every request without the token (see the module docstring)."""

    def initialize(self, token: str, feed: SnapshotFeed) -> None:
        self.token = token
        self.feed = feed

    def prepare(self) -> None:
        refuse_without_token(self, self.token)

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")


class PageHandler(_Protected):
    """``/``: the page (with ``?token=``: set the cookie and drop the token from the URL)."""

    def get(self) -> None:
        if self.get_query_argument("token", ""):
            self.redirect("/")
            return
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header(
            "Content-Security-Policy",
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
        )
        self.finish((STATIC / "index.html").read_bytes())


class SnapshotHandler(_Protected):
    """``/api/snapshot``: the latest snapshot as JSON."""

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(self.feed.latest or "{}")


class EventsHandler(_Protected):
    """``/events``: a server-sent-events stream with one event per snapshot."""

    async def get(self) -> None:
        self.set_header("Content-Type", "text/event-stream")
        try:
            if self.feed.latest:
                self.write(f"data: {self.feed.latest}\n\n")
                await self.flush()
            while True:
                if await self.feed.wait_for_next(KEEPALIVE):
                    self.write(f"data: {self.feed.latest}\n\n")
                else:
                    self.write(": keep-alive\n\n")
                await self.flush()
        except tornado.iostream.StreamClosedError:
            pass  # the page went away


class StaticHandler(tornado.web.StaticFileHandler):
    """``/static/...``: the page's script, style and the vendored uPlot (token needed too)."""

    def initialize(self, path: str, token: str = "") -> None:  # type: ignore[override]
        super().initialize(path)
        self.token = token

    def prepare(self) -> None:
        refuse_without_token(self, self.token)


def make_app(token: str, feed: SnapshotFeed) -> tornado.web.Application:
    """The dashboard's routes, every one behind the token."""
    shared: dict[str, Any] = {"token": token, "feed": feed}
    return tornado.web.Application(
        [
            (r"/", PageHandler, shared),
            (r"/api/snapshot", SnapshotHandler, shared),
            (r"/events", EventsHandler, shared),
            (r"/static/(.*)", StaticHandler, {"path": str(STATIC), "token": token}),
        ],
        compress_response=False,  # an event stream must not sit in a compressor's buffer
    )


async def poll_forever(
    poll: Callable[[], ClusterSnapshot],
    feed: SnapshotFeed,
    period: float,
    keep_going: Callable[[ClusterSnapshot], Awaitable[bool]],
) -> None:
    """Publish a snapshot every ``period`` seconds until ``keep_going`` says no."""
    loop = asyncio.get_running_loop()
    while True:
        snapshot = await loop.run_in_executor(None, poll)
        feed.publish(snapshot)
        if not await keep_going(snapshot):
            return
        await asyncio.sleep(period)
