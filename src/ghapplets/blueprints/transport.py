"""Sending the HTTP requests of ``call: http`` / ``call: openapi`` tasks, with httpx.

Redirects are never followed (the task's ``redirect`` decides whether a 3xx is an error); the
response body is bounded; each request has a timeout (the task's own ``timeout`` may cut it
shorter). JSON bodies are sent as JSON, strings as text, bytes as they are.
"""

from __future__ import annotations

from urllib.parse import urlencode

import httpx
import orjson

from ghapplets.blueprints.errors import ErrorKind, raise_error
from ghapplets.blueprints.host import HttpRequest, HttpResponse

MAX_RESPONSE = 10 << 20
DEFAULT_TIMEOUT = 60.0


class HttpxSender:
    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self.client = client or httpx.AsyncClient(
            timeout=DEFAULT_TIMEOUT, follow_redirects=False, trust_env=False
        )

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        headers = dict(request.headers)
        content: bytes | None = None
        if request.form is not None:
            content = urlencode(dict(request.form)).encode()
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif isinstance(request.body, bytes):
            content = request.body
        elif isinstance(request.body, str):
            content = request.body.encode()
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        elif request.body is not None:
            content = orjson.dumps(request.body)
            headers.setdefault("Content-Type", "application/json")
        timeout = request.timeout if request.timeout is not None else DEFAULT_TIMEOUT
        try:
            async with self.client.stream(
                request.method,
                request.uri,
                params=dict(request.query) or None,
                headers=headers,
                content=content,
                timeout=timeout,
            ) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > MAX_RESPONSE:
                        raise raise_error(
                            ErrorKind.COMMUNICATION,
                            f"{request.method} {request.uri}: the response is over "
                            f"{MAX_RESPONSE} bytes",
                        )
                return HttpResponse(response.status_code, dict(response.headers), bytes(body))
        except httpx.TimeoutException as exc:
            raise TimeoutError(str(exc)) from exc

    async def aclose(self) -> None:
        await self.client.aclose()
