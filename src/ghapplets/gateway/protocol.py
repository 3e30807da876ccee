"""HTTP/1.1 limits at the protocol level: uvicorn's httptools protocol, with guards that act
before a request reaches the application.

uvicorn parses the request head without bounds: no limit on the number of header lines or their
size, no deadline for a head that never ends (a connection that sends nothing is kept forever),
and ``limit_concurrency`` answers 503 without ``Retry-After``. :func:`guarded_protocol` builds a
subclass of :class:`~uvicorn.protocols.http.httptools_impl.HttpToolsProtocol` that adds, per
connection, at the cost of three Python calls per request on the normal path:

- **header deadline** (``header_timeout``): the head of each request must arrive within this
  many seconds of the connection's start, or of its first byte on a kept-alive connection; else
  ``408`` and the connection is closed. One timer per server sweeps the connections (every
  quarter of the timeout, at most every second) instead of a timer per request;
- **header limits** (``max_headers`` lines, ``max_header_bytes`` for the request line and the
  header lines together): checked once the head is parsed and, for a head that is not complete
  yet (a flood of lines, a line that never ends), on the bytes received; beyond them ``431``
  and the connection is closed, before the request reaches the application. The parser never
  works on more than ``max_header_bytes`` plus one read (at most 256 KiB) of a head;
- **keep-alive** (``keep_alive_timeout``): an idle kept-alive connection is closed after it;
- **connections** (``max_connections`` open at once in this process): a connection beyond them
  is answered ``503`` with ``Retry-After`` and closed, without running the application.

**Lingering close.** When the server closes a connection whose request has not been read to
its end (a 431, a 408, or an application's early answer such as 401 before the body, which
carries ``Connection: close``), closing at once would make the kernel answer the client's
unread bytes with a reset, and a client still sending could lose the answer. Instead the
connection is half-closed (FIN after the answer) and what still arrives is read and dropped,
for at most :data:`LINGER_SECONDS` and :data:`LINGER_BYTES`; then it is closed.

Each refusal is reported to ``on_refused`` with its :class:`~ghapplets.exceptions.RejectReason`
(the gateway counts them in ``ghapplets_webhooks_rejected_total{source="_unknown"}``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ghapplets.exceptions import RejectReason

RETRY_AFTER = 1  # seconds a client refused for too many connections is asked to wait
LINGER_SECONDS = 2.0  # how long a closing connection's unread bytes are drained, at most
LINGER_BYTES = 4 * 1024 * 1024  # and how many


@dataclass(frozen=True, slots=True)
class HttpLimits:
    header_timeout: float = 10.0
    max_headers: int = 100
    max_header_bytes: int = 64 * 1024
    keep_alive_timeout: float = 5.0
    max_connections: int = 1024


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head beyond the limits."""


def _response(status: int, phrase: str, error: RejectReason) -> bytes:
    body = orjson.dumps({"error": error.value})
    return b"".join(
        [
            f"HTTP/1.1 {status} {phrase}\r\n".encode(),
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
    )


HEAD_TOO_LARGE = _response(431, "Request Header Fields Too Large", RejectReason.HEADERS_TOO_LARGE)
HEAD_TIMEOUT = _response(408, "Request Timeout", RejectReason.HEADER_TIMEOUT)


async def _overloaded(scope: Any, receive: Any, send: Any) -> None:
    """The application a connection beyond ``max_connections`` gets instead of ours."""
    body = orjson.dumps({"error": RejectReason.OVERLOADED.value, "message": "too many connections"})
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _Transport:
    """The connection's transport as uvicorn sees it: the same, except that ``close`` asks the
    protocol first (it may linger). The calls of the normal path are bound methods, not
    ``__getattr__`` look-ups."""

    def __init__(self, transport: asyncio.Transport, protocol: GuardedProtocol) -> None:
        self.real = transport
        self._protocol = protocol
        self.write = transport.write
        self.is_closing = transport.is_closing
        self.get_extra_info = transport.get_extra_info
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading

    def close(self) -> None:
        self._protocol.close_connection()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class GuardedProtocol(HttpToolsProtocol):
    limits: ClassVar[HttpLimits] = HttpLimits()
    on_refused: ClassVar[Callable[[RejectReason], None] | None] = None
    _sweeper: ClassVar[asyncio.TimerHandle | None] = None  # one per server (per class)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout_keep_alive = self.limits.keep_alive_timeout  # type: ignore[assignment]
        self._real: asyncio.Transport | None = None
        self._reading_head = True
        self._head_started = self.loop.time()
        self._head_received = 0  # bytes received while the head is incomplete
        self._head_too_large = False
        self._lingering = False
        self._lingered = 0
        self._lost = False

    def _refused(self, reason: RejectReason) -> None:
        callback = type(self).on_refused
        if callback is not None:
            callback(reason)

    # -- connections ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._real = transport
        super().connection_made(cast(asyncio.Transport, _Transport(transport, self)))
        self._head_started = self.loop.time()
        if len(self.connections) > self.limits.max_connections:
            self.app = _overloaded  # answered once its head is in, then closed
            self._refused(RejectReason.OVERLOADED)
        cls = type(self)
        if cls._sweeper is None:
            cls._sweeper = self.loop.call_later(self._sweep_every(), self._sweep)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        super().connection_lost(exc)

    def eof_received(self) -> None:
        if self._lingering and self._real is not None:
            self._real.close()

    def close_connection(self) -> None:
        """Close now, or linger when the client may still be sending this request."""
        real = self._real
        if real is None or real.is_closing():
            return
        cycle = self.cycle
        # bytes of a head have come (on a kept-alive connection, reading a head again means
        # the next request has begun), or a body is not read to its end
        unread = (self._reading_head and (self._head_received > 0 or cycle is not None)) or (
            cycle is not None and cycle.more_body
        )
        if self._lost or self._lingering or not unread or not real.can_write_eof():
            real.close()
            return
        self._lingering = True
        self.flow.resume_reading()  # uvicorn pauses reading while a body waits for the app
        real.write_eof()  # the answer, then FIN: the client reads it, then its end
        self.loop.call_later(LINGER_SECONDS, real.close)

    # -- the head's deadline ----------------------------------------------------------------
    def _sweep_every(self) -> float:
        return min(1.0, self.limits.header_timeout / 4)

    def _sweep(self) -> None:
        """Cut off every connection whose head is overdue; again later while any is open."""
        cls = type(self)
        cls._sweeper = None
        deadline = self.loop.time() - self.limits.header_timeout
        for conn in list(self.connections):
            if isinstance(conn, GuardedProtocol) and conn._head_started <= deadline:
                conn._head_timed_out()
        if self.connections:
            cls._sweeper = self.loop.call_later(self._sweep_every(), self._sweep)

    def _head_timed_out(self) -> None:
        if self._reading_head and not self._lingering and not self.transport.is_closing():
            self._refused(RejectReason.HEADER_TIMEOUT)
            self.transport.write(HEAD_TIMEOUT)
            self.transport.close()

    # -- the head's size --------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._lingering:  # drained and dropped, within bounds
            self._lingered += len(data)
            if self._lingered > LINGER_BYTES and self._real is not None:
                self._real.close()
            return
        reading = self._reading_head
        if reading:
            self._head_received += len(data)
        super().data_received(data)
        # a head not complete yet (a flood of lines, a line that never ends): the bytes so far
        if (
            reading
            and self._reading_head
            and self._head_received > self.limits.max_header_bytes
            and not self._lingering
            and not self.transport.is_closing()
        ):
            self._head_too_large = True
            self.send_400_response("")

    def send_400_response(self, msg: str) -> None:
        if not self._head_too_large:
            super().send_400_response(msg)
            return
        self._refused(RejectReason.HEADERS_TOO_LARGE)
        self.transport.write(HEAD_TOO_LARGE)
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._reading_head:  # the next request on a kept-alive connection
            self._reading_head = True
            self._head_started = self.loop.time()

    def on_headers_complete(self) -> None:
        limits = self.limits
        headers = self.headers
        if (
            len(headers) > limits.max_headers
            or len(self.url) + sum([len(n) + len(v) + 4 for n, v in headers])
            > limits.max_header_bytes
        ):
            self._head_too_large = True
            raise _HeadTooLarge  # the parser stops; uvicorn answers through send_400_response
        self._reading_head = False
        self._head_received = 0
        super().on_headers_complete()


def guarded_protocol(
    limits: HttpLimits, on_refused: Callable[[RejectReason], None] | None = None
) -> type[GuardedProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with these limits."""
    namespace: dict[str, Any] = {"limits": limits, "on_refused": None}
    if on_refused is not None:
        namespace["on_refused"] = staticmethod(on_refused)
    return cast(type[GuardedProtocol], type("GuardedHttpProtocol", (GuardedProtocol,), namespace))
