"""The gateway ASGI application: the lean ingest path in front of a small Starlette app.

``POST /hooks/{source}`` goes straight to :class:`~ghapplets.gateway.ingest.IngestHandler`;
everything else (``/healthz``, ``/readyz``, ``/metrics``) is routed by Starlette.

With a metrics listener (``server.metrics_address``) the same application serves two sockets:
on the metrics one only ``GET /metrics``, and on the webhook port everything but ``/metrics``
(404). With an admin listener (``server.admin_address``) it serves the admin API
(:mod:`ghapplets.admin`) there, and only there: ``/api/v1`` on the webhook port is 404. A
request's listener is told by the local address it arrived on (``scope["server"]``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ghapplets.gateway.ingest import IngestHandler

ReadyCheck = Callable[[], Awaitable[dict[str, str]]]
Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Listener:
    """A listening socket's local address: ``ip`` None for a wildcard bind (any address)."""

    ip: str | None
    port: int

    @classmethod
    def of(cls, host: str, port: int) -> Listener:
        return cls(None if host in WILDCARDS else _ip(host), port)

    def received(self, scope: dict[str, Any]) -> bool:
        """Did the request of ``scope`` arrive on this listener?"""
        server = scope.get("server")
        if not server or server[1] != self.port:
            return False
        return self.ip is None or _ip(str(server[0])) == self.ip


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
        self._metrics: Listener | None = None  # set: /metrics is served there only
        self._admin: tuple[Listener, Asgi] | None = None  # the admin API, there only
        self.app = Starlette(
            routes=[
                Route("/healthz", self.healthz),
                Route("/readyz", self.readyz),
                Route("/metrics", self.metrics),
                Route("/hooks/{source}", self.wrong_method, methods=["GET", "PUT", "DELETE"]),
            ],
            lifespan=lifespan,
        )

    def serve_metrics_on(self, host: str, port: int) -> None:
        """Serve ``/metrics`` only on the listener bound to ``host:port``, and not elsewhere."""
        self._metrics = Listener.of(host, port)

    def serve_admin_on(self, host: str, port: int, admin: Asgi) -> None:
        """Serve ``admin`` (every request) on the listener bound to ``host:port``."""
        self._admin = (Listener.of(host, port), admin)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if self._admin is not None and self._admin[0].received(scope):
                await self._admin[1](scope, receive, send)
                return
            if self._metrics is not None:
                if self._metrics.received(scope):
                    await self._metrics_only(scope, receive, send)
                    return
                if scope["path"] == "/metrics":
                    await _not_found(send)
                    return
            if scope["method"] == "POST":
                path: str = scope["path"]
                if path.startswith("/hooks/"):
                    name = path[7:].rstrip("/")
                    if name and "/" not in name:
                        await self.ingest(scope, receive, send, name)
                        return
        await self.app(scope, receive, send)

    async def _metrics_only(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] != "/metrics" or scope["method"] not in ("GET", "HEAD"):
            await _not_found(send)
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


WILDCARDS = frozenset({"", "0.0.0.0", "::", "*"})  # noqa: S104 - names, not a bind


def _ip(host: str) -> str:
    """``host`` as a canonical IP address text when it is one (``::ffff:127.0.0.1`` is
    ``127.0.0.1``), else as given (a name, compared as is)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


async def _not_found(send: Any) -> None:
    body = b'{"error":"not_found"}'
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
