"""One way to call a vendor's REST API: an answer is the vendor's JSON, or an action error.

The mapping is the same for every vendor (docs/connectors.md): 2xx is the output; 408, 429 and
5xx, a timeout or no connection are :class:`ActionUnavailable` (retried, not before the
vendor's ``Retry-After``); any other 4xx is :class:`ActionFailed` with the vendor's message
(dead-lettered). A connector says how its vendor spells an error (:attr:`VendorApi.message_of`);
:func:`vendor_error` also takes which other answers are rate limits (GitHub's 403 with
``X-RateLimit-Remaining: 0``, :mod:`ghapplets.connectors.github_kit`). Credentials travel in
the client's headers or auth and are never part of an error message.

:class:`VendorClient` is what a Python applet gets as ``ctx.jira``, ``ctx.servicenow`` or
``ctx.splunk``: any request on the vendor's API, with the connector's credentials and this
mapping, on a path of that API only (:func:`api_path`).
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import orjson

from ghapplets.exceptions import ActionFailed, ActionInputInvalid, ActionUnavailable

RETRYABLE_STATUSES = frozenset({408, 425, 429})
MAX_MESSAGE = 500  # characters of a vendor's error message kept in the job's outcome
_PATH = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*(?:\?[A-Za-z0-9\-._~!$&'()*+,;=:@/%?]*)?")


def api_path(path: str, what: str) -> str:
    """``path`` if it is a path on the vendor's API: absolute, no ``..``, no ``//`` (a URL's
    host), no fragment, no encoded ``.`` or ``/``; else :class:`ActionInputInvalid` naming
    ``what`` asked for it. A request never leaves the connector's ``base_url`` with its
    credentials."""
    if not _PATH.fullmatch(path) or ".." in path or "//" in path.partition("?")[0]:
        raise ActionInputInvalid(
            f"{what}: path {path!r} must be an API path (from '/', without '..' or '//')"
        )
    lowered = path.partition("?")[0].lower()
    if "%2e" in lowered or "%2f" in lowered:
        raise ActionInputInvalid(f"{what}: path {path!r} has an encoded '.' or '/'")
    return path


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


def vendor_error(
    vendor: str,
    method: str,
    path: str,
    response: httpx.Response,
    *,
    message_of: Callable[[httpx.Response], str] = json_message,
    rate_limited: Callable[[httpx.Response], bool] = lambda r: False,
) -> ActionFailed | ActionUnavailable:
    """The action error for the vendor's error answer ``response`` to ``method path``."""
    status = response.status_code
    message = (
        f"{vendor} answered {status} to {method} {path}: " + message_of(response)[:MAX_MESSAGE]
    )
    if status >= 500 or status in RETRYABLE_STATUSES or rate_limited(response):
        return ActionUnavailable(message, status=status, retry_after=retry_after(response))
    return ActionFailed(message, status=status)


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
    ) -> None:
        self.vendor = vendor
        self.message_of = message_of
        self.client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            headers=dict(headers or {}),
            auth=auth,
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
        if response.status_code < 400:
            return response
        raise vendor_error(self.vendor, method, path, response, message_of=self.message_of)

    async def json(self, method: str, path: str, **kw: Any) -> Any:
        """The answer's JSON (None for an empty body, such as a 204)."""
        response = await self.request(method, path, **kw)
        return response.json() if response.content else None

    async def aclose(self) -> None:
        await self.client.aclose()


class VendorClient:
    """A Python applet's authenticated client of one connector (``ctx.jira``,
    ``ctx.servicenow``, ``ctx.splunk``): any call of the vendor's REST API with the connector's
    credentials, for what no catalog action does. ``path`` is a path on the connector's
    ``base_url`` (checked by :func:`api_path`); errors are the actions' own
    (:class:`ActionFailed`, :class:`ActionUnavailable`), so an uncaught one retries or
    dead-letters the job like a failed action. The client is shared: do not close it."""

    def __init__(self, api: VendorApi) -> None:
        self._api = api

    @property
    def vendor(self) -> str:
        return self._api.vendor

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
        """The vendor's 2xx answer to ``method path`` (an :class:`httpx.Response`)."""
        what = f"ctx.{self._api.vendor.lower()}"
        return await self._api.request(
            method.upper(),
            api_path(path, what),
            json=json,
            params=params,
            content=content,
            headers=headers,
        )

    async def json(self, method: str, path: str, **kw: Any) -> Any:
        """The answer's JSON (None for an empty body, such as a 204)."""
        response = await self.request(method, path, **kw)
        return response.json() if response.content else None

    def __repr__(self) -> str:
        return f"VendorClient({self._api.vendor}, {self._api.client.base_url})"
