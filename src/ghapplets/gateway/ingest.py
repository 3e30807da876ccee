"""The webhook ingest path, as a lean ASGI handler (the hot path of the whole platform).

Order of work (design.md section 4): size limit (Content-Length first, then counted while
streaming) -> the checks that need no body (:meth:`Source.verify_headers`: a token, basic or
bearer credentials, the client's address, a signature header's presence) -> read the body ->
verify the raw bytes -> parse -> normalise -> durable write with dedup -> 202.
Unknown source 404, bad signature 401, client not allowed 403, too large 413, malformed 400,
storage down 503, duplicate 202 with ``"duplicate": true``. Nothing is stored before it is
verified, and no credential is stored at all. An answer given before the body was read closes
the connection, so a refused sender cannot make the gateway read the rest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import orjson

from ghapplets.broker.base import Broker
from ghapplets.crashpoints import CrashPoint, reached
from ghapplets.dispatch.messages import event_message
from ghapplets.events import InboundRequest
from ghapplets.exceptions import (
    BrokerUnavailable,
    MalformedPayload,
    RejectReason,
    Unavailable,
    VerificationError,
)
from ghapplets.gateway.forwarded import TrustedProxies
from ghapplets.logging import get_logger
from ghapplets.metrics import UNKNOWN, Metrics
from ghapplets.sources.base import Source

log = get_logger("ghapplets.gateway")
Scope = dict[str, Any]
Stored = Callable[[str, str], Awaitable[bool]]  # (delivery id, source) -> held by the store?
_JSON = [(b"content-type", b"application/json")]
_CLOSE = (b"connection", b"close")


class BodyTooLarge(Exception):
    pass


async def _send_json(
    send: Any, status: int, doc: Mapping[str, Any], *, close: bool = False
) -> None:
    body = orjson.dumps(doc)
    headers = [*_JSON, (b"content-length", str(len(body)).encode())]
    if close:
        headers.append(_CLOSE)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Any, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionAbortedError("client went away")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class IngestHandler:
    def __init__(
        self,
        sources: Mapping[str, Source],
        broker: Broker,
        metrics: Metrics,
        *,
        max_body: int,
        body_timeout: float = 30.0,
        trusted_proxies: TrustedProxies | None = None,
        stored: Stored | None = None,
    ) -> None:
        """``stored(delivery_id, source)``: does the store hold that delivery? Asked before a
        publish when the broker remembers message ids only for a window (NATS), so a delivery
        sent again after it (or after a restore into a new stream) is still a duplicate."""
        self.stored = stored
        self.sources = sources
        self.broker = broker
        self.metrics = metrics
        self._max_body = max_body
        self.body_timeout = body_timeout
        self.proxies = trusted_proxies or TrustedProxies(())
        self._received: dict[str, Any] = {}  # per-source counter children, looked up once

    @property
    def max_body(self) -> int:
        """``server.max_body_bytes``, or less when the broker takes no larger message (a NATS
        server's ``max_payload``): such a body is answered 413, not stored and then 503."""
        broker_limit = self.broker.max_message_bytes
        return self._max_body if broker_limit is None else min(self._max_body, broker_limit)

    def _reject(self, source: str, reason: RejectReason) -> None:
        self.metrics.rejected.labels(source, reason.value).inc()

    async def __call__(self, scope: Scope, receive: Any, send: Any, name: str) -> None:
        source = self.sources.get(name)
        if source is None:  # counted under one label: a name from the URL is not a label
            self._reject(UNKNOWN, RejectReason.UNKNOWN_SOURCE)
            doc = {"error": RejectReason.UNKNOWN_SOURCE, "message": f"no source {name[:64]!r}"}
            await _send_json(send, 404, doc, close=True)
            return
        headers: dict[str, str] = {}
        for key, value in scope["headers"]:
            k = key.decode("latin-1").lower()
            v = value.decode("latin-1")
            headers[k] = f"{headers[k]}, {v}" if k in headers else v
        declared = headers.get("content-length")
        limit = self.max_body
        if declared is not None and (not _is_number(declared) or int(declared) > limit):
            await self._too_large(send, name)
            return
        head = InboundRequest(
            source=name,
            headers=headers,
            body=b"",
            query=_query(scope),
            client_ip=self._client_ip(scope, headers),
        )
        try:
            source.verify_headers(head)  # a wrong token is refused before the body is read
        except VerificationError as exc:
            await self._refuse(send, name, exc, close=True)
            return
        try:
            # asyncio.timeout, not wait_for: no extra task per request
            async with asyncio.timeout(self.body_timeout):
                body = await _read_body(receive, limit)
        except BodyTooLarge:
            await self._too_large(send, name)
            return
        except TimeoutError:
            self._reject(name, RejectReason.BODY_TIMEOUT)
            await _send_json(send, 408, {"error": RejectReason.BODY_TIMEOUT}, close=True)
            return
        except ConnectionAbortedError:
            self._reject(name, RejectReason.DISCONNECTED)
            return
        received_at = time.time()
        request = InboundRequest(name, headers, body, head.query, head.client_ip)
        try:
            event = source.ingest(request)
        except VerificationError as exc:
            await self._refuse(send, name, exc)
            return
        except MalformedPayload as exc:
            self._reject(name, RejectReason.MALFORMED)
            await _send_json(send, 400, {"error": RejectReason.MALFORMED, "message": str(exc)})
            return
        except Exception as exc:  # a bug in a normaliser must not take the gateway down
            self._reject(name, RejectReason.NORMALISE_ERROR)
            log.exception("normaliser failed", source=name, error=str(exc))
            doc = {"error": RejectReason.MALFORMED, "message": "payload not understood"}
            await _send_json(send, 400, doc)
            return
        reached(CrashPoint.GATEWAY_VERIFIED)
        ctype = headers.get("content-type", "")
        data = body if ctype.startswith("application/json") else event.data_bytes()
        message = event_message(
            name,
            event,
            data,
            headers,
            received_at,
            credentials=source.credential_headers,
            secrets=source.secrets,
            dedup_key=source.replay_key(request),
        )
        if self.stored is not None and await self._stored(event.id, name):
            self.metrics.duplicates.labels(name).inc()
            await _send_json(send, 202, {"id": event.id, "duplicate": True})
            reached(CrashPoint.GATEWAY_ANSWERED)
            return
        try:
            ack = await self.broker.publish(message)
        except BrokerUnavailable as exc:
            self._reject(name, RejectReason.UNAVAILABLE)
            log.error("could not store webhook", source=name, error=str(exc))
            doc = {"error": RejectReason.UNAVAILABLE, "message": "try again later"}
            await _send_json(send, 503, doc)
            return
        reached(CrashPoint.GATEWAY_PUBLISHED)
        if ack.duplicate:
            self.metrics.duplicates.labels(name).inc()
            await _send_json(send, 202, {"id": event.id, "duplicate": True})
            reached(CrashPoint.GATEWAY_ANSWERED)
            return
        received = self._received.get(name)
        if received is None:
            received = self._received[name] = self.metrics.received.labels(name)
        received.inc()
        await _send_json(send, 202, {"id": event.id})
        reached(CrashPoint.GATEWAY_ANSWERED)

    async def _stored(self, delivery_id: str, source: str) -> bool:
        """Does the store hold the delivery? Best effort: a store that cannot answer now leaves
        the decision to the broker (its window, then the store's idempotent writes)."""
        assert self.stored is not None
        try:
            return await self.stored(delivery_id, source)
        except Unavailable as exc:
            log.warning("could not ask the store for a duplicate", source=source, error=str(exc))
            return False

    async def _too_large(self, send: Any, name: str) -> None:
        self._reject(name, RejectReason.TOO_LARGE)
        doc = {"error": RejectReason.TOO_LARGE.value, "limit": self.max_body}
        await _send_json(send, 413, doc, close=True)

    async def _refuse(
        self, send: Any, name: str, exc: VerificationError, *, close: bool = False
    ) -> None:
        self._reject(name, exc.reason)
        log.warning("webhook rejected", source=name, reason=exc.reason.value)
        doc = {"error": exc.reason, "message": str(exc)}
        await _send_json(send, exc.status, doc, close=close)

    def _client_ip(self, scope: Scope, headers: Mapping[str, str]) -> str | None:
        client = scope.get("client")
        peer = client[0] if client else None
        if not self.proxies:
            return peer
        return self.proxies.client(peer, headers.get("x-forwarded-for"))


def _is_number(text: str) -> bool:
    """ASCII digits only: "²" is a digit to ``str.isdigit``, not to ``int``."""
    return text.isascii() and text.isdigit()


def _query(scope: Scope) -> dict[str, str]:
    raw = scope.get("query_string", b"")
    if not raw:
        return {}
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))
