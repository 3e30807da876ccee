"""The gateway ASGI application: the lean ingest path in front of a small Starlette app.

``POST /hooks/{source}`` goes straight to :class:`~ghapplets.gateway.ingest.IngestHandler`;
everything else (``/healthz``, ``/readyz``, ``/metrics``) is routed by Starlette.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ghapplets.gateway.ingest import IngestHandler

ReadyCheck = Callable[[], Awaitable[dict[str, str]]]


class GatewayApp:
    def __init__(
        self,
        ingest: IngestHandler,
        ready: ReadyCheck,
        render_metrics: Callable[[], Awaitable[bytes]],
        lifespan: Any = None,
    ) -> None:
        self.ingest = ingest
        self._ready = ready
        self._render_metrics = render_metrics
        self.app = Starlette(
            routes=[
                Route("/healthz", self.healthz),
                Route("/readyz", self.readyz),
                Route("/metrics", self.metrics),
                Route("/hooks/{source}", self.wrong_method, methods=["GET", "PUT", "DELETE"]),
            ],
            lifespan=lifespan,
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            if path.startswith("/hooks/"):
                name = path[7:].rstrip("/")
                if name and "/" not in name:
                    await self.ingest(scope, receive, send, name)
                    return
        await self.app(scope, receive, send)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        checks = await self._ready()
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": checks},
            status_code=200 if ok else 503,
        )

    async def metrics(self, request: Request) -> Response:
        return Response(await self._render_metrics(), media_type="text/plain; version=0.0.4")

    async def wrong_method(self, request: Request) -> Response:
        return JSONResponse(
            {"error": "method_not_allowed", "message": "webhooks are POSTed"},
            status_code=405,
            headers={"allow": "POST"},
        )
