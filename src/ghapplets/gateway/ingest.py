"""The webhook ingest path, as a lean ASGI handler (the hot path of the whole platform).

Order of work (design.md section 4): size limit (Content-Length first, then counted while
streaming) -> verify the raw bytes -> parse -> normalise -> durable write with dedup -> 202.
Unknown source 404, bad signature 401, too large 413, malformed 400, storage down 503,
duplicate 202 with ``"duplicate": true``. Nothing is stored before it is verified.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import orjson

from ghapplets.broker.base import Broker
from ghapplets.dispatch.messages import event_message
from ghapplets.events import InboundRequest
from ghapplets.exceptions import BrokerUnavailable, MalformedPayload, VerificationError
from ghapplets.logging import get_logger
from ghapplets.metrics import Metrics
from ghapplets.sources.base import Source

log = get_logger("ghapplets.gateway")
Scope = dict[str, Any]
_JSON = [(b"content-type", b"application/json")]


class BodyTooLarge(Exception):
    pass


async def _send_json(send: Any, status: int, doc: Mapping[str, Any]) -> None:
    body = orjson.dumps(doc)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*_JSON, (b"content-length", str(len(body)).encode())],
        }
    )
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
        trust_forwarded_for: bool = False,
    ) -> None:
        self.sources = sources
        self.broker = broker
        self.metrics = metrics
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.trust_forwarded_for = trust_forwarded_for
        self._received: dict[str, Any] = {}  # per-source counter children, looked up once

    def _reject(self, source: str, reason: str) -> None:
        self.metrics.rejected.labels(source, reason).inc()

    async def __call__(self, scope: Scope, receive: Any, send: Any, name: str) -> None:
        source = self.sources.get(name)
        if source is None:
            self._reject(name[:64], "unknown_source")
            doc = {"error": "unknown_source", "message": f"no source {name!r}"}
            await _send_json(send, 404, doc)
            return
        headers: dict[str, str] = {}
        for key, value in scope["headers"]:
            k = key.decode("latin-1").lower()
            v = value.decode("latin-1")
            headers[k] = f"{headers[k]}, {v}" if k in headers else v
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            self._reject(name, "too_large")
            await _send_json(send, 413, {"error": "too_large", "limit": self.max_body})
            return
        try:
            # asyncio.timeout, not wait_for: no extra task per request
            async with asyncio.timeout(self.body_timeout):
                body = await _read_body(receive, self.max_body)
        except BodyTooLarge:
            self._reject(name, "too_large")
            await _send_json(send, 413, {"error": "too_large", "limit": self.max_body})
            return
        except TimeoutError:
            self._reject(name, "body_timeout")
            await _send_json(send, 408, {"error": "body_timeout"})
            return
        except ConnectionAbortedError:
            self._reject(name, "disconnected")
            return
        received_at = time.time()
        request = InboundRequest(
            source=name,
            headers=headers,
            body=body,
            query=_query(scope),
            client_ip=self._client_ip(scope, headers),
        )
        try:
            event = source.ingest(request)
        except VerificationError as exc:
            self._reject(name, exc.reason)
            log.warning("webhook rejected", source=name, reason=exc.reason)
            await _send_json(send, 401, {"error": exc.reason, "message": str(exc)})
            return
        except MalformedPayload as exc:
            self._reject(name, "malformed")
            await _send_json(send, 400, {"error": "malformed", "message": str(exc)})
            return
        except Exception as exc:  # a bug in a normaliser must not take the gateway down
            self._reject(name, "normalise_error")
            log.exception("normaliser failed", source=name, error=str(exc))
            await _send_json(send, 400, {"error": "malformed", "message": "payload not understood"})
            return
        ctype = headers.get("content-type", "")
        data = body if ctype.startswith("application/json") else event.data_bytes()
        try:
            ack = await self.broker.publish(event_message(name, event, data, headers, received_at))
        except BrokerUnavailable as exc:
            self._reject(name, "unavailable")
            log.error("could not store webhook", source=name, error=str(exc))
            await _send_json(send, 503, {"error": "unavailable", "message": "try again later"})
            return
        if ack.duplicate:
            self.metrics.duplicates.labels(name).inc()
            await _send_json(send, 202, {"id": event.id, "duplicate": True})
            return
        received = self._received.get(name)
        if received is None:
            received = self._received[name] = self.metrics.received.labels(name)
        received.inc()
        await _send_json(send, 202, {"id": event.id})

    def _client_ip(self, scope: Scope, headers: Mapping[str, str]) -> str | None:
        if self.trust_forwarded_for and "x-forwarded-for" in headers:
            return headers["x-forwarded-for"].split(",")[0].strip()
        client = scope.get("client")
        return client[0] if client else None


def _query(scope: Scope) -> dict[str, str]:
    raw = scope.get("query_string", b"")
    if not raw:
        return {}
    from urllib.parse import parse_qsl

    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))
