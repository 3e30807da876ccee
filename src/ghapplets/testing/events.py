"""Event factories: realistic CloudEvents and signed vendor requests from the built-in fixtures."""

from __future__ import annotations

import secrets as _secrets
import uuid
from collections.abc import Mapping
from typing import Any

from ghapplets.events import CloudEvent
from ghapplets.sources import fixtures
from ghapplets.sources.base import SignedRequest, Source
from ghapplets.sources.common import to_inbound
from ghapplets.sources.registry import build_source, settings_model


def make_source(
    kind: str, name: str | None = None, secret: str | bytes | None = None, **settings: Any
) -> Source:
    """A source of ``kind`` with ``secret`` (random when not given) and optional settings."""
    raw = secret if secret is not None else _secrets.token_hex(16)
    value = raw.encode() if isinstance(raw, str) else raw
    model = settings_model(kind)
    return build_source(name or kind, model(kind=kind, **settings), [value])


def signed_request(
    kind: str,
    event: str,
    *,
    source: Source | None = None,
    payload: Any = None,
    variant: str | None = None,
    delivery_id: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[Source, SignedRequest]:
    """The request the vendor would send for ``event``, and the source that verifies it."""
    src = source or make_source(kind)
    fx = fixtures.load(kind, event, variant=variant)
    merged = {**fx.headers, **(headers or {})}
    signed = src.sign(
        fx.event,
        fx.payload if payload is None else payload,
        delivery_id or str(uuid.uuid4()),
        headers=merged,
    )
    return src, signed


def fixture_event(
    kind: str,
    event: str,
    *,
    variant: str | None = None,
    payload: Any = None,
    delivery_id: str | None = None,
    source_name: str | None = None,
) -> CloudEvent:
    """The CloudEvent the gateway would produce for a built-in fixture (signed, then ingested)."""
    src, signed = signed_request(
        kind,
        event,
        source=make_source(kind, source_name),
        payload=payload,
        variant=variant,
        delivery_id=delivery_id,
    )
    return src.ingest(to_inbound(signed, src.name, client_ip="127.0.0.1"))
