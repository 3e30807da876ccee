"""Helpers for the source tests: build sources, sign fixtures, send them through ``ingest``."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from ghapplets.events import CloudEvent, InboundRequest
from ghapplets.sources.base import Source
from ghapplets.sources.common import to_inbound
from ghapplets.sources.fixtures import Fixture
from ghapplets.sources.registry import build_source, settings_model

SECRET = b"current-secret"
PREVIOUS = b"previous-secret"
STALE = b"stale-secret-rotated-out"


def make(
    kind: str,
    *,
    secrets: Sequence[bytes] = (SECRET, PREVIOUS),
    name: str | None = None,
    **settings: Any,
) -> Source:
    return build_source(name or kind, settings_model(kind)(kind=kind, **settings), list(secrets))


def signed_inbound(source: Source, fx: Fixture, *, client_ip: str | None = None) -> InboundRequest:
    signed = source.sign(fx.event, fx.payload, fx.delivery_id, fx.headers)
    return to_inbound(signed, source.name, client_ip=client_ip)


def send(source: Source, fx: Fixture, *, client_ip: str | None = None) -> tuple[CloudEvent, bytes]:
    request = signed_inbound(source, fx, client_ip=client_ip)
    return source.ingest(request), request.body


def request(
    body: bytes,
    headers: Mapping[str, str] | None = None,
    *,
    query: Mapping[str, str] | None = None,
    client_ip: str | None = None,
    source: str = "test",
) -> InboundRequest:
    return InboundRequest(
        source=source,
        headers={k.lower(): v for k, v in (headers or {}).items()},
        body=body,
        query=dict(query or {}),
        client_ip=client_ip,
    )


def body_hash(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()
