"""One way to call a vendor's REST API: an answer is the vendor's JSON, or an action error.

The mapping is the same for every vendor (docs/connectors.md): 2xx is the output; 408, 429 and
5xx, a timeout or no connection are :class:`ActionUnavailable` (retried, not before the
vendor's ``Retry-After``); any other 4xx is :class:`ActionFailed` with the vendor's message
(dead-lettered). A connector says how its vendor spells an error (:attr:`VendorApi.message_of`)
and which other answers are rate limits (GitHub's 403 with ``X-RateLimit-Remaining: 0``).
Credentials travel in the client's headers or auth and are never part of an error message.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import orjson

from ghapplets.exceptions import ActionFailed, ActionUnavailable

RETRYABLE_STATUSES = frozenset({408, 425, 429})
MAX_MESSAGE = 500  # characters of a vendor's error message kept in the job's outcome


def retry_after(response: httpx.Response, now: float | None = None) -> float | None:
    """Seconds to wait, from ``Retry-After`` (seconds or an HTTP date) or, when the rate limit
    is spent, ``X-RateLimit-Reset`` (epoch seconds); None when the vendor did not say."""
    now = time.time() if now is None else now
    value = response.headers.get("retry-after", "").strip()
    if value:
        if value.isdigit():
            return float(value)
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
        except (TypeError, ValueError):
            return None
    reset = response.headers.get("x-ratelimit-reset", "")
    if response.headers.get("x-ratelimit-remaining") == "0" and reset.isdigit():
        return max(0.0, float(reset) - now)
    return None


def json_message(response: httpx.Response) -> str:
    """The vendor's error as text: its JSON's usual message fields, else the body's start."""
    try:
        doc = response.json()
    except ValueError:
        return response.text.strip()[:MAX_MESSAGE] or response.reason_phrase
    if isinstance(doc, dict):
        for key in ("message", "text", "error_description", "error"):
            value = doc.get(key)
            if isinstance(value, str) and value:
                return value
    return orjson.dumps(doc).decode()[:MAX_MESSAGE]


class VendorApi:
    """An HTTP client for one vendor instance, with the error mapping above."""

    def __init__(
        self,
        vendor: str,
        base_url: str,
        *,
        timeout: float,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
        message_of: Callable[[httpx.Response], str] = json_message,
        rate_limited: Callable[[httpx.Response], bool] = lambda r: False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.vendor = vendor
        self.message_of = message_of
        self.rate_limited = rate_limited
        self.client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            headers=dict(headers or {}),
            auth=auth,
            transport=transport,
            follow_redirects=False,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """The 2xx answer to one request, or :class:`ActionFailed` / :class:`ActionUnavailable`."""
        try:
            response = await self.client.request(
                method, path, json=json, params=params, content=content, headers=headers
            )
        except httpx.TimeoutException:
            raise ActionUnavailable(
                f"{self.vendor} did not answer {method} {path} in time"
            ) from None
        except httpx.TransportError as exc:
            raise ActionUnavailable(f"cannot reach {self.vendor}: {type(exc).__name__}") from None
        status = response.status_code
        if status < 400:
            return response
        message = (
            f"{self.vendor} answered {status} to {method} {path}: "
            + self.message_of(response)[:MAX_MESSAGE]
        )
        if status >= 500 or status in RETRYABLE_STATUSES or self.rate_limited(response):
            raise ActionUnavailable(message, status=status, retry_after=retry_after(response))
        raise ActionFailed(message, status=status)

    async def json(self, method: str, path: str, **kw: Any) -> Any:
        """The answer's JSON (None for an empty body, such as a 204)."""
        response = await self.request(method, path, **kw)
        return response.json() if response.content else None

    async def aclose(self) -> None:
        await self.client.aclose()
