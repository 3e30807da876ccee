"""Live updates by server-sent events, bounded.

A stream polls what its page shows (a rendered fragment per SSE event name) every
``interval`` seconds and sends a fragment when it changed. At most ``limit`` streams are open
per process (one more is answered 503: the browser tries again later); each lives at most
``lifetime`` seconds (then it ends and the browser reconnects, so a stream never outlives a
revoked session by much); and :meth:`LiveHub.close` ends them all at once, which the server
calls when it shuts down, since it waits for open connections to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from starlette.responses import StreamingResponse

Poll = Callable[[], Awaitable[Mapping[str, str] | None]]
RETRY_MS = 3000  # the browser's wait before it reconnects
KEEPALIVE = 15.0  # seconds between comments on a quiet stream (proxies close idle ones)


def event(name: str, data: str) -> bytes:
    """One SSE event: every line of ``data`` on a ``data:`` line of its own."""
    lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    body = "".join(f"data: {line}\n" for line in lines)
    return f"event: {name}\n{body}\n".encode()


class LiveHub:
    """The open streams of this process."""

    def __init__(self, limit: int, lifetime: float, interval: float = 1.0) -> None:
        self.limit = limit
        self.lifetime = lifetime
        self.interval = interval
        self.open = 0
        self._closing: asyncio.Event | None = None

    @property
    def closing(self) -> asyncio.Event:
        if self._closing is None:
            self._closing = asyncio.Event()
        return self._closing

    def close(self) -> None:
        """End every open stream now, and refuse new ones (the server is shutting down)."""
        self.closing.set()

    def admit(self) -> bool:
        """Take a place for a new stream, if there is one (give it back with :meth:`leave`)."""
        if self.closing.is_set() or self.open >= self.limit:
            return False
        self.open += 1
        return True

    def leave(self) -> None:
        self.open = max(0, self.open - 1)

    async def frames(self, poll: Poll) -> AsyncIterator[bytes]:
        """The stream's bytes: what ``poll`` renders, when it changes, until the lifetime is
        over, the hub closes, or ``poll`` answers None (the session ended)."""
        yield f"retry: {RETRY_MS}\n\n".encode()
        start = time.monotonic()
        quiet = start
        last: dict[str, str] = {}
        while not self.closing.is_set():
            shown = await poll()
            if shown is None:
                yield event("ended", "")
                return
            now = time.monotonic()
            for name, html in shown.items():
                if last.get(name) != html:
                    last[name] = html
                    quiet = now
                    yield event(name, html)
            if now - quiet >= KEEPALIVE:
                quiet = now
                yield b": keep-alive\n\n"
            left = self.lifetime - (now - start)
            if left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closing.wait(), min(self.interval, left))

    def response(self, poll: Poll) -> StreamingResponse:
        """The stream as an answer; the caller has :meth:`admit`-ted it."""
        return LiveResponse(self, self.frames(poll))


class LiveResponse(StreamingResponse):
    """A stream that gives its place back however it ends (done, client gone, shutdown)."""

    def __init__(self, hub: LiveHub, frames: AsyncIterator[bytes]) -> None:
        super().__init__(
            frames,
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )
        self.hub = hub

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.hub.leave()
