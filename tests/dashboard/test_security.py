"""The security headers every dashboard answer gets."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ghapplets.dashboard.security import CSP, SecurityHeaders


async def test_every_answer_gets_the_security_headers() -> None:
    async def page(request: Request) -> Response:
        return PlainTextResponse("hi", headers={"x-frame-options": "ALLOWALL"})

    async def cached(request: Request) -> Response:
        return PlainTextResponse("hi", headers={"cache-control": "max-age=60"})

    app = SecurityHeaders(Starlette(routes=[Route("/", page), Route("/c", cached)]))
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.get("/")
        other = await client.get("/c")
    assert answer.headers["content-security-policy"] == CSP
    assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP
    assert answer.headers["x-frame-options"] == "DENY"  # never what the page said
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["cache-control"] == "no-store"
    assert other.headers["cache-control"] == "max-age=60"
