"""The webhooks the fakes send to a gateway: building, signing and posting them.

Each vendor fake builds the payload and headers its vendor sends and signs them the way the
vendor does (the HMAC helpers here; the schemes themselves are the vendors', not ours). A
webhook is sent with :func:`deliver`, to the configured URL or any other, through a new HTTP
client or a given one (an ``httpx.AsyncClient`` on an in-process app, for tests). Sending never
raises for an HTTP or connection failure: the :class:`Outcome` says what happened, as a
vendor's delivery log would.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Literal

import httpx

Encoding = Literal["hex", "base64"]


def hmac_sha256(secret: str | bytes, body: bytes, encoding: Encoding = "hex") -> str:
    """The HMAC-SHA256 of ``body`` under ``secret``, hex or base64."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, body, hashlib.sha256).digest()
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()


def hmac_sha1_hex(secret: str | bytes, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, body, hashlib.sha1).hexdigest()


@dataclass(frozen=True, slots=True)
class Webhook:
    """A signed webhook ready to post: ``url`` (may be empty: give one to :func:`deliver`)."""

    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a delivery got: ``status_code`` 0 and ``error`` set when no answer came."""

    url: str
    status_code: int
    body: bytes
    duration: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300


async def deliver(
    webhook: Webhook,
    *,
    url: str | None = None,
    client: httpx.AsyncClient | None = None,
    timeout: float = 10.0,
) -> Outcome:
    """POST ``webhook`` to ``url`` (default: its own) with ``client`` (default: a new one)."""
    target = url or webhook.url
    if not target:
        raise ValueError("no URL to deliver the webhook to (configure one or pass url=)")
    started = time.perf_counter()
    try:
        if client is not None:
            response = await client.post(target, content=webhook.body, headers=webhook.headers)
        else:
            async with httpx.AsyncClient(timeout=timeout) as own:
                response = await own.post(target, content=webhook.body, headers=webhook.headers)
    except httpx.HTTPError as exc:
        return Outcome(
            target, 0, b"", time.perf_counter() - started, f"{type(exc).__name__}: {exc}"
        )
    return Outcome(target, response.status_code, response.content, time.perf_counter() - started)
