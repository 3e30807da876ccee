"""A client that never finishes its body gets 408 after the body timeout; nothing is stored."""

from __future__ import annotations

import asyncio
from typing import Any

from ghapplets.broker.base import OutboundMessage, PublishAck
from ghapplets.gateway.ingest import IngestHandler
from ghapplets.metrics import Metrics
from ghapplets.testing.events import make_source


class RecordingBroker:
    """Only ``publish`` is reached from the ingest path; it records what would be stored."""

    max_message_bytes = None  # no limit of its own

    def __init__(self) -> None:
        self.published: list[OutboundMessage] = []

    async def publish(self, message: OutboundMessage) -> PublishAck:
        self.published.append(message)
        return PublishAck(len(self.published), duplicate=False)


async def call(handler: IngestHandler, receive: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/hooks/github",
        "query_string": b"",
        # the signature header is there (it is checked before the body), its value after
        "headers": [(b"content-type", b"application/json"), (b"x-hub-signature-256", b"x")],
        "client": ("127.0.0.1", 1),
    }
    await handler(scope, receive, send, "github")
    return sent


async def test_a_stalled_body_times_out_with_408() -> None:
    broker = RecordingBroker()
    metrics = Metrics()
    handler = IngestHandler(
        {"github": make_source("github")},
        broker,
        metrics,  # type: ignore[arg-type]
        max_body=1024,
        body_timeout=0.2,
    )

    async def stalled() -> dict[str, Any]:
        if not hasattr(stalled, "started"):
            stalled.started = True  # type: ignore[attr-defined]
            return {"type": "http.request", "body": b'{"a":', "more_body": True}
        await asyncio.sleep(10)
        raise AssertionError("unreachable")

    sent = await call(handler, stalled)
    assert sent[0]["status"] == 408
    assert broker.published == []
    assert b'reason="body_timeout"' in metrics.render()


async def test_a_client_that_disconnects_gets_nothing_stored() -> None:
    broker = RecordingBroker()
    handler = IngestHandler(
        {"github": make_source("github")},
        broker,
        Metrics(),  # type: ignore[arg-type]
        max_body=1024,
    )

    async def gone() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    assert await call(handler, gone) == []
    assert broker.published == []
