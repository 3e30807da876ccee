"""The ``http`` runtime: POST the event to a URL (Knative, Fission, OpenFaaS, any container).

This module owns the HTTP contract. The event is sent in CloudEvents binary mode (``ce-*``
headers, the data as the body) with ``spec.headers`` (where ``${secrets.NAME}`` is replaced by a
declared secret), ``Idempotency-Key: <job id>``, ``X-Ghapplets-Attempt`` and
``X-Ghapplets-Delivery-Id``. A 2xx response is success (JSON body parsed, other text as a
string, empty as ``null``); 408, 409, 429, 5xx, connection errors and timeouts are retryable,
honouring ``Retry-After``; redirects are not followed and, like other 4xx, permanent. Bodies
are read up to ``spec.max_output_bytes``. Header values are never logged.
"""

from __future__ import annotations

import re
import time
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from ghapplets.applets.model import AppletSpec
from ghapplets.applets.result import AppletOutcome
from ghapplets.applets.runtime import (
    Invocation,
    LogSink,
    Runtime,
    declared_secrets,
    result_from_document,
)
from ghapplets.connectors import wire
from ghapplets.exceptions import ErrorType, PermanentError, RetryableError

if TYPE_CHECKING:
    from ghapplets.metrics import Metrics

SECRET_REF = re.compile(r"\$\{\s*secrets\.([A-Za-z0-9_.-]+)\s*\}")
RETRYABLE_STATUS = frozenset({408, 409, 429})
MAX_RETRY_AFTER = 86400.0
_ERROR_SNIPPET = 4096


def safe_url(url: str) -> str:
    """``url`` without credentials, query or fragment: safe to log and show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def render_headers(spec: AppletSpec, secrets: dict[str, str]) -> dict[str, str]:
    """``spec.headers`` with ``${secrets.NAME}`` references replaced."""

    def sub(m: re.Match[str]) -> str:
        name = m[1]
        if name not in spec.secrets:
            raise PermanentError(
                f"a header uses secret {name!r}, which the applet does not declare in 'secrets:'",
                type=ErrorType.SECRET_NOT_DECLARED,
            )
        if name not in secrets:
            raise PermanentError(f"secret {name!r} has no value", type=ErrorType.SECRET_MISSING)
        return secrets[name]

    return {k: SECRET_REF.sub(sub, v) for k, v in spec.headers.items()}


class HttpRuntime(Runtime):
    """Delivers each invocation as one HTTP POST."""

    kind = "http"

    def __init__(
        self,
        spec: AppletSpec,
        *,
        http: httpx.AsyncClient | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(spec, metrics=metrics)
        self._shared = http
        self._own: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if self._shared is None and self._own is None:
            self._own = httpx.AsyncClient(follow_redirects=False)

    async def close(self) -> None:
        if self._own is not None:
            await self._own.aclose()
            self._own = None

    async def _run(self, inv: Invocation, sink: LogSink) -> AppletOutcome:
        await self.start()
        client = self._shared or self._own
        assert client is not None and self.spec.url
        # case-insensitive: the event's content-type and ce-* win over spec.headers
        headers = httpx.Headers(render_headers(self.spec, declared_secrets(self.spec, inv)))
        headers.update(inv.event.binary_headers())
        headers["Idempotency-Key"] = inv.job_id
        headers["X-Ghapplets-Attempt"] = str(inv.attempt)
        headers["X-Ghapplets-Delivery-Id"] = inv.delivery_id
        if inv.action_grant is not None:  # the worker's local action endpoint, for this job
            headers[wire.URL_HEADER] = inv.action_grant.url
            headers[wire.TOKEN_HEADER] = inv.action_grant.token
        where = safe_url(self.spec.url)
        started = time.monotonic()
        try:
            async with client.stream(
                "POST",
                self.spec.url,
                headers=headers,
                content=inv.event.data_bytes(),
                timeout=httpx.Timeout(self.spec.timeout),
                follow_redirects=False,
            ) as response:
                ok = response.is_success
                body, complete = await self._read(
                    response, self.spec.max_output_bytes if ok else _ERROR_SNIPPET
                )
        except httpx.TimeoutException as exc:
            raise RetryableError(
                f"{where} did not answer within {self.spec.timeout:g}s ({type(exc).__name__})",
                type=ErrorType.TIMEOUT,
            ) from None
        except httpx.TransportError as exc:
            raise RetryableError(
                f"cannot reach {where}: {type(exc).__name__}: {exc}",
                type=ErrorType.CONNECTION_ERROR,
            ) from None
        self._log.info(
            "http applet answered",
            delivery_id=inv.delivery_id,
            job_id=inv.job_id,
            url=where,
            status=response.status_code,
            ms=round((time.monotonic() - started) * 1000, 1),
        )
        if ok:
            if not complete:
                raise PermanentError(
                    f"the response from {where} is larger than {self.spec.max_output_bytes} bytes",
                    type=ErrorType.OUTPUT_TOO_LARGE,
                )
            return result_from_document(self._parse(response, body, where))
        return self._failure(response, body, where)

    @staticmethod
    async def _read(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
        """Up to ``limit`` bytes of the body, and whether that was all of it."""
        buf = bytearray()
        async for chunk in response.aiter_bytes():
            buf.extend(chunk)
            if len(buf) > limit:
                return bytes(buf[:limit]), False
        return bytes(buf), True

    @staticmethod
    def _parse(response: httpx.Response, body: bytes, where: str) -> Any:
        if not body.strip():
            return None
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json" or ctype.endswith("+json"):
            try:
                return orjson.loads(body)
            except orjson.JSONDecodeError:
                raise PermanentError(
                    f"{where} answered {ctype} that is not valid JSON", type=ErrorType.BAD_OUTPUT
                ) from None
        return body.decode(response.encoding or "utf-8", "replace")

    @staticmethod
    def _failure(response: httpx.Response, body: bytes, where: str) -> AppletOutcome:
        status = response.status_code
        retryable = status in RETRYABLE_STATUS or status >= 500
        retry_after = parse_retry_after(response.headers.get("retry-after")) if retryable else None
        doc: Any = None
        if "json" in response.headers.get("content-type", ""):
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError:
                doc = None
        envelope = result_from_document(doc) if doc is not None else None
        if envelope is not None and not envelope.ok:
            if envelope.retryable and envelope.retry_after is None:
                envelope.retry_after = retry_after
            return envelope
        if 300 <= status < 400:
            location = safe_url(response.headers.get("location", "")) or "nowhere"
            return AppletOutcome.failure(
                "Redirect",
                f"{where} answered {status} redirecting to {location}; redirects are not "
                "followed: set 'url' to the final address",
                retryable=False,
            )
        snippet = body.decode("utf-8", "replace").strip()[:500]
        reason = response.reason_phrase or ""
        return AppletOutcome.failure(
            "HTTPError",
            f"{where} answered {status} {reason}".rstrip() + (f": {snippet}" if snippet else ""),
            retryable=retryable,
            retry_after=retry_after,
        )
