"""The gateway's ASGI application on its own: which request goes to the ingest handler, which to
Starlette's routes, and what each route answers, including the split between the webhook port
and a separate metrics listener (``server.metrics_address``).

The ingest handler and the checks are small recorders here: what is tested is the routing and
the answers, which depend only on the request scope.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from ghapplets.gateway.app import WILDCARDS, GatewayApp, _ip

METRICS = b"# HELP ghapplets_up 1\nghapplets_up 1.0\n"


class Recorder:
    """An ingest handler that records the source names it was called with and answers 299."""

    def __init__(self) -> None:
        self.names: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any, name: str) -> None:
        self.names.append(name)
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": name.encode()})


def make_app(checks: dict[str, str] | None = None) -> tuple[GatewayApp, Recorder]:
    ingest = Recorder()

    async def ready() -> dict[str, str]:
        return dict(checks if checks is not None else {"broker": "ok", "store": "ok"})

    async def render() -> bytes:
        return METRICS

    return GatewayApp(ingest, ready, render), ingest  # type: ignore[arg-type]


def client(app: GatewayApp, base: str = "http://127.0.0.1:8080") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)  # type: ignore[arg-type]


# -- the webhook path ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/hooks/github", "github"),
        ("/hooks/jira/", "jira"),
        ("/hooks/jira//", "jira"),
        ("/hooks/a-b_c", "a-b_c"),
        ("/hooks/GitHubX", "GitHubX"),  # only slashes are trimmed
    ],
)
async def test_post_to_a_hook_goes_to_ingest_with_the_source_name(path: str, name: str) -> None:
    app, ingest = make_app()
    async with client(app) as c:
        response = await c.post(path, content=b"{}")
    assert (response.status_code, response.text) == (299, name)
    assert ingest.names == [name]


@pytest.mark.parametrize("path", ["/hooks/", "/hooks//", "/hooks/a/b", "/hook/github", "/github"])
async def test_other_posts_never_reach_ingest(path: str) -> None:
    app, ingest = make_app()
    async with client(app) as c:
        response = await c.post(path, content=b"{}")
    assert response.status_code in (404, 405)
    assert ingest.names == []


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_other_methods_on_a_hook_are_405_with_allow_post(method: str) -> None:
    app, ingest = make_app()
    async with client(app) as c:
        response = await c.request(method, "/hooks/github")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json() == {"error": "method_not_allowed", "message": "webhooks are POSTed"}
    assert ingest.names == []


# -- health, readiness, metrics --------------------------------------------------------------


async def test_healthz_is_ok() -> None:
    app, _ = make_app()
    async with client(app) as c:
        response = await c.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_is_ok_when_every_check_is() -> None:
    app, _ = make_app({"broker": "ok", "store": "ok"})
    async with client(app) as c:
        response = await c.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"broker": "ok", "store": "ok"}}


async def test_readyz_is_503_when_any_check_fails() -> None:
    app, _ = make_app({"broker": "ok", "store": "database is locked"})
    async with client(app) as c:
        response = await c.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"broker": "ok", "store": "database is locked"},
    }


async def test_metrics_on_the_webhook_port_without_a_metrics_listener() -> None:
    app, _ = make_app()
    async with client(app) as c:
        response = await c.get("/metrics")
    assert response.status_code == 200
    assert response.content == METRICS
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")


# -- a separate metrics listener -------------------------------------------------------------


async def test_with_a_metrics_listener_the_webhook_port_hides_metrics() -> None:
    app, ingest = make_app()
    app.serve_metrics_on("127.0.0.1", 9100)
    async with client(app, "http://127.0.0.1:8080") as c:
        hidden = await c.get("/metrics")
        health = await c.get("/healthz")
        hook = await c.post("/hooks/github", content=b"{}")
    assert hidden.status_code == 404
    assert hidden.json() == {"error": "not_found"}
    assert hidden.headers["content-length"] == str(len(hidden.content))
    assert hidden.headers["content-type"] == "application/json"
    assert health.status_code == 200
    assert hook.status_code == 299
    assert ingest.names == ["github"]


async def test_the_metrics_listener_serves_only_metrics() -> None:
    app, ingest = make_app()
    app.serve_metrics_on("127.0.0.1", 9100)
    async with client(app, "http://127.0.0.1:9100") as c:
        metrics = await c.get("/metrics")
        head = await c.head("/metrics")
        health = await c.get("/healthz")
        hook = await c.post("/hooks/github", content=b"{}")
        post_metrics = await c.post("/metrics")
    assert (metrics.status_code, metrics.content) == (200, METRICS)
    assert head.status_code == 200
    assert health.status_code == 404
    assert health.json() == {"error": "not_found"}
    assert hook.status_code == 404
    assert post_metrics.status_code == 404
    assert ingest.names == []


async def test_the_metrics_listener_is_told_by_address_as_well_as_port() -> None:
    app, _ = make_app()
    app.serve_metrics_on("127.0.0.1", 9100)
    async with client(app, "http://127.0.0.2:9100") as c:  # same port, another local address
        response = await c.get("/healthz")
    assert response.status_code == 200  # the webhook listener, not the metrics one


@pytest.mark.parametrize("host", sorted(WILDCARDS))
async def test_a_wildcard_metrics_bind_matches_any_local_address(host: str) -> None:
    app, _ = make_app()
    app.serve_metrics_on(host, 9100)
    async with client(app, "http://10.1.2.3:9100") as c:
        health = await c.get("/healthz")
        metrics = await c.get("/metrics")
    assert health.status_code == 404
    assert metrics.status_code == 200


async def test_an_ipv4_mapped_address_is_the_same_listener() -> None:
    app, _ = make_app()
    app.serve_metrics_on("::ffff:127.0.0.1", 9100)
    async with client(app, "http://127.0.0.1:9100") as c:
        assert (await c.get("/healthz")).status_code == 404
        assert (await c.get("/metrics")).status_code == 200


async def test_the_lifespan_given_runs_at_startup_and_shutdown() -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    async def ready() -> dict[str, str]:
        return {}

    async def render() -> bytes:
        return b""

    app = GatewayApp(Recorder(), ready, render, lifespan=lifespan)  # type: ignore[arg-type]
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        events.append(message["type"])

    await app({"type": "lifespan"}, receive, send)
    assert events == [
        "startup",
        "lifespan.startup.complete",
        "shutdown",
        "lifespan.shutdown.complete",
    ]


async def test_non_http_scopes_go_to_starlette() -> None:
    app, ingest = make_app()
    app.serve_metrics_on("127.0.0.1", 9100)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"} if not sent else {"type": "lifespan.shutdown"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "lifespan", "server": ("127.0.0.1", 9100)}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert ingest.names == []


@pytest.mark.parametrize(
    ("host", "canonical"),
    [
        ("::ffff:10.0.0.1", "10.0.0.1"),
        ("10.0.0.1", "10.0.0.1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("gateway.internal", "gateway.internal"),
    ],
)
def test_ip_canonical_form(host: str, canonical: str) -> None:
    assert _ip(host) == canonical
