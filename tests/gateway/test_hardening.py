"""The gateway against hostile senders, in-process on both backends: bounded metric labels,
client addresses behind proxies, no stored credentials, replayed bodies, checks before the body,
and JSON nested too deep."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ghapplets.gateway.ingest import IngestHandler
from ghapplets.metrics import Metrics
from ghapplets.testing.events import make_source
from ghapplets.testing.gateway import GatewayClient, running_gateway
from tests.conftest import WEBHOOK_SECRET, ProjectBuilder
from tests.servers import NatsServer

SPLUNK_TOKEN = "splunk-token-abcdef0123456789"
GITLAB_TOKEN = "gitlab-token-abcdef0123456789"
SN_TOKEN = "servicenow-token-abcdef0123456789"
GENERIC_SECRET = "generic-secret-abcdef0123456789"
BODY = orjson.dumps(
    {
        "action": "opened",
        "issue": {"number": 1, "title": "t", "user": {"login": "u"}},
        "repository": {"full_name": "o/r", "name": "r", "owner": {"login": "o"}},
        "sender": {"login": "u"},
    }
)
COUNTER = """
from ghapplets import Applet, Context
app = Applet("counter")

@app.on("com.github.*")
async def handle(ctx: Context) -> str:
    return ctx.id
"""


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github_headers(body: bytes, delivery: str, event: str = "issues") -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-github-event": event,
        "x-github-delivery": delivery,
        "x-hub-signature-256": sign(body),
    }


@pytest.fixture
async def gw(
    project: ProjectBuilder, tmp_path: Path, platform_backends: str
) -> AsyncIterator[GatewayClient]:
    project.source("github", f"kind: github\nsecret: {WEBHOOK_SECRET}")
    project.source(
        "github-noreplay", f"kind: github\nsecret: {WEBHOOK_SECRET}\nreplay_protection: false"
    )
    project.source("jira", f"kind: jira\nsecret: {WEBHOOK_SECRET}")
    project.source("bitbucket", f"kind: bitbucket\nsecret: {WEBHOOK_SECRET}")
    project.source("gitlab", f"kind: gitlab\nsecret: {GITLAB_TOKEN}")
    project.source("servicenow", f"kind: servicenow\nsecret: {SN_TOKEN}")
    project.source(
        "splunk", f"kind: splunk\nsecret: {SPLUNK_TOKEN}\nallowed_ips: [10.0.0.0/8, 2001:db8::/32]"
    )
    project.source("splunk-open", f"kind: splunk\nsecret: {SPLUNK_TOKEN}")
    project.source(
        "generic", f"kind: generic\nsecret: {GENERIC_SECRET}\nheader: X-Custom-Signature"
    )
    project.source("generic-bearer", f"kind: generic\nsecret: {GENERIC_SECRET}\nmode: bearer")
    project.python_applet("counter", COUNTER)
    # the in-process client's peer is 127.0.0.1 (see running_gateway), a trusted proxy here
    project.extra = (
        "server:\n  max_body_bytes: 65536\n"
        "  trusted_proxies: [127.0.0.1/32, '::1/128', 192.0.2.0/24]\n"
    )
    async with running_gateway(project.build(), tmp_path / "data") as client:
        yield client


def series(metrics: str) -> set[str]:
    """The sample lines' names and labels (one per series)."""
    return {line.rsplit(" ", 1)[0] for line in metrics.splitlines() if not line.startswith("#")}


async def post(gw: GatewayClient, path: str, body: bytes, headers: dict[str, str], **kw: Any):
    return await gw.client.post(path, content=body, headers=headers, **kw)


async def dispatched(gw: GatewayClient) -> None:
    broker = gw.platform.backends.broker
    for _ in range(500):
        if await broker.depth("events") == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("events not dispatched")


# -- metrics -----------------------------------------------------------------------------------
async def test_unknown_sources_add_no_metric_series(gw: GatewayClient) -> None:
    await post(gw, "/hooks/nope", BODY, {})  # the one "_unknown" series, once
    before = series((await gw.client.get("/metrics")).text)
    for _ in range(300):
        name = secrets.token_hex(8)
        r = await post(gw, f"/hooks/{name}", BODY, {})
        assert r.status_code == 404
    text = (await gw.client.get("/metrics")).text
    assert series(text) == before
    assert not re.search(r'source="[0-9a-f]{16}"', text)
    count = re.search(
        r'ghapplets_webhooks_rejected_total\{reason="unknown_source",source="_unknown"\} (\S+)',
        text,
    )
    assert count is not None and float(count.group(1)) == 301.0


async def test_rejection_reasons_are_a_closed_set(gw: GatewayClient) -> None:
    await post(
        gw,
        "/hooks/github",
        BODY,
        {**github_headers(BODY, "r-1"), "x-hub-signature-256": "sha256=00"},
    )
    await post(gw, "/hooks/gitlab", BODY, {"x-gitlab-token": "wrong"})
    await post(gw, "/hooks/github", b"{", github_headers(b"{", "r-2"))
    text = (await gw.client.get("/metrics")).text
    reasons = set(re.findall(r'ghapplets_webhooks_rejected_total\{reason="([^"]+)"', text))
    assert reasons == {"bad_signature", "bad_token", "malformed"}


# -- the client's address ----------------------------------------------------------------------
SPLUNK_ALERT = orjson.dumps({"sid": "s-1", "search_name": "errors", "result": {"n": 1}})


async def splunk(gw: GatewayClient, xff: str | None, *, peer: str = "127.0.0.1", sid: str = "x"):
    app: Any = gw.platform.asgi()
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    headers = {"content-type": "application/json"}
    if xff is not None:
        headers["x-forwarded-for"] = xff
    body = orjson.dumps({"sid": sid, "result": {"xff": xff, "peer": peer}})
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        return await client.post(
            "/hooks/splunk", content=body, headers=headers, params={"token": SPLUNK_TOKEN}
        )


async def test_the_client_is_the_right_most_untrusted_forwarded_address(gw: GatewayClient) -> None:
    # the proxy 127.0.0.1 saw 10.1.2.3: allowed
    assert (await splunk(gw, "10.1.2.3", sid="a")).status_code == 202
    # a left-most entry is whatever the sender wrote: a spoofed 10.x does not pass
    r = await splunk(gw, "10.9.9.9, 203.0.113.7", sid="b")
    assert r.status_code == 403 and r.json()["error"] == "ip_not_allowed"
    # trusted proxies on the way are skipped, from the right
    assert (await splunk(gw, "203.0.113.7, 10.1.2.3, 192.0.2.10", sid="c")).status_code == 202
    r = await splunk(gw, "10.1.2.3, 203.0.113.7, 192.0.2.10, 192.0.2.11", sid="d")
    assert r.status_code == 403
    # several X-Forwarded-For headers are one list
    app: Any = gw.platform.asgi()
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        r = await client.post(
            "/hooks/splunk",
            content=SPLUNK_ALERT,
            params={"token": SPLUNK_TOKEN},
            headers=[("x-forwarded-for", "10.1.1.1"), ("x-forwarded-for", "198.51.100.1")],
        )
        assert r.status_code == 403


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(gw: GatewayClient) -> None:
    # a direct client outside the allow-list cannot claim an address inside it
    r = await splunk(gw, "10.1.2.3", peer="203.0.113.9", sid="e")
    assert r.status_code == 403
    # a direct client inside it is itself the client, whatever its header says
    assert (await splunk(gw, "203.0.113.9", peer="10.0.0.5", sid="f")).status_code == 202
    assert (await splunk(gw, None, peer="10.0.0.5", sid="g")).status_code == 202


async def test_forwarded_for_with_ipv6(gw: GatewayClient) -> None:
    assert (await splunk(gw, "2001:db8::7", peer="::1", sid="h")).status_code == 202
    assert (await splunk(gw, "[2001:db8::7]:4711", peer="::1", sid="i")).status_code == 202
    assert (await splunk(gw, "2001:db8::7, 2001:db9::1", peer="::1", sid="j")).status_code == 403
    # an IPv4-mapped peer is its IPv4 address: 127.0.0.1 is trusted
    assert (await splunk(gw, "10.3.3.3", peer="::ffff:127.0.0.1", sid="k")).status_code == 202
    # garbage from a trusted proxy: the client is unknown, and an allow-list denies it
    assert (await splunk(gw, "10.1.1.1, not-an-ip", sid="l")).status_code == 403


async def test_an_allow_listed_splunk_refusal_is_403_and_a_bad_token_401(gw: GatewayClient) -> None:
    r = await splunk(gw, None, peer="203.0.113.1", sid="m")
    assert r.status_code == 403
    app: Any = gw.platform.asgi()
    transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        r = await client.post("/hooks/splunk", content=SPLUNK_ALERT, params={"token": "nope"})
    assert r.status_code == 401 and r.json()["error"] == "bad_token"


# -- credentials are never stored --------------------------------------------------------------
EXTRA = {
    "authorization": "Bearer extra-authorization-value",
    "cookie": "session=extra-cookie-value",
    "x-api-key": "extra-api-key-value",
    "proxy-authorization": "Basic extra-proxy-value",
}


async def test_no_credential_is_stored_with_a_delivery(gw: GatewayClient) -> None:
    sent: dict[str, set[str]] = {}  # delivery id -> credential values it carried
    for name in ("github", "jira", "bitbucket", "gitlab", "servicenow", "splunk-open", "generic"):
        source = gw.platform.sources[name]
        kind = source.kind
        event = {
            "github": "issues.opened",
            "jira": "jira:issue_created",
            "bitbucket": "repo:push",
            "gitlab": "push",
            "servicenow": "incident.created",
            "splunk": "alert",
            "generic": "issues.opened",
        }[kind]
        fixture_kind = "github" if kind == "generic" else kind
        from ghapplets.testing.events import signed_request

        delivery = f"cred-{name}"
        payload = None
        if kind == "splunk":
            payload = {"sid": delivery, "search_name": "s", "result": {}}
        headers = {} if kind in ("servicenow", "generic-bearer") else dict(EXTRA)
        _, req = signed_request(
            fixture_kind,
            event,
            source=source,
            delivery_id=delivery,
            headers=headers,
            payload=payload,
        )
        r = await gw.client.post(
            f"/hooks/{name}", content=req.body, headers=req.headers, params=req.query
        )
        assert r.status_code == 202, (name, r.text)
        values = {v for k, v in req.headers.items() if k.lower() in source.credential_headers}
        values |= set(req.query.values()) | (set(EXTRA.values()) if headers else set())
        assert values, name
        sent[r.json()["id"]] = values
    await dispatched(gw)
    store = gw.platform.backends.store
    for delivery_id, values in sent.items():
        record = await store.get_delivery(delivery_id)
        stored = orjson.dumps(
            {"headers": record.headers, "attributes": record.attributes}
        ).decode() + record.body.decode("utf-8", "replace")
        for value in values:
            assert value not in stored, (delivery_id, value)
        for name in ("authorization", "cookie", "x-hub-signature", "x-hub-signature-256",
                     "x-gitlab-token", "x-custom-signature", "x-api-key"):  # fmt: skip
            assert name not in record.headers, (delivery_id, name)
        assert "token=" not in stored
        assert record.headers  # the other vendor headers are kept
    # and the query string is never stored, of any source
    assert SPLUNK_TOKEN not in str(await store.list_deliveries(limit=100))


# -- replays -----------------------------------------------------------------------------------
async def jobs_of(gw: GatewayClient, delivery_id: str) -> list[Any]:
    await dispatched(gw)
    return await gw.platform.backends.store.list_jobs(delivery_id=delivery_id, limit=100)


async def test_a_replayed_body_under_a_new_delivery_id_is_a_duplicate(gw: GatewayClient) -> None:
    first = await post(gw, "/hooks/github", BODY, github_headers(BODY, "orig-1"))
    assert first.status_code == 202 and first.json() == {"id": "orig-1"}
    replay = await post(gw, "/hooks/github", BODY, github_headers(BODY, "replay-1"))
    assert replay.status_code == 202
    assert replay.json() == {"id": "replay-1", "duplicate": True}
    jobs = await gw.wait_for_jobs("orig-1", count=1)
    assert [j.applet for j in jobs] == ["counter"]
    assert await jobs_of(gw, "replay-1") == []
    deliveries = await gw.platform.backends.store.list_deliveries(limit=10)
    assert [d.id for d in deliveries] == ["orig-1"]


async def test_a_replayed_body_under_another_event_name_is_a_duplicate(gw: GatewayClient) -> None:
    assert (await post(gw, "/hooks/github", BODY, github_headers(BODY, "e-1"))).status_code == 202
    r = await post(gw, "/hooks/github", BODY, github_headers(BODY, "e-2", event="push"))
    assert r.json() == {"id": "e-2", "duplicate": True}
    r = await post(gw, "/hooks/github", BODY, github_headers(BODY, "e-1", event="push"))
    assert r.json() == {"id": "e-1", "duplicate": True}
    await gw.wait_for_jobs("e-1", count=1)
    assert len(await gw.platform.backends.store.list_deliveries(limit=10)) == 1


async def test_replays_of_other_body_signed_sources_are_duplicates(gw: GatewayClient) -> None:
    from ghapplets.testing.events import signed_request

    for name, kind, event, id_header in (
        ("jira", "jira", "jira:issue_created", "X-Atlassian-Webhook-Identifier"),
        ("bitbucket", "bitbucket", "repo:push", "X-Request-UUID"),
        ("generic", "github", "issues.opened", "X-Request-Id"),
    ):
        source = gw.platform.sources[name]
        _, req = signed_request(kind, event, source=source, delivery_id=f"{name}-1")
        first = await gw.client.post(f"/hooks/{name}", content=req.body, headers=req.headers)
        assert first.status_code == 202 and "duplicate" not in first.json(), name
        headers = {**req.headers, id_header: f"{name}-2"}
        again = await gw.client.post(f"/hooks/{name}", content=req.body, headers=headers)
        assert again.json() == {"id": f"{name}-2", "duplicate": True}, name


async def test_token_sources_are_not_deduplicated_by_body(gw: GatewayClient) -> None:
    body = orjson.dumps({"object_kind": "push", "project": {"path_with_namespace": "a/b"}})
    for uuid in ("g-1", "g-2"):
        headers = {"x-gitlab-token": GITLAB_TOKEN, "x-gitlab-event-uuid": uuid}
        r = await post(gw, "/hooks/gitlab", body, headers)
        assert r.json() == {"id": uuid}


async def test_replay_protection_off_accepts_the_same_body_twice(gw: GatewayClient) -> None:
    for delivery in ("n-1", "n-2"):
        r = await post(gw, "/hooks/github-noreplay", BODY, github_headers(BODY, delivery))
        assert r.json() == {"id": delivery}
    await gw.wait_for_jobs("n-1", count=1)
    await gw.wait_for_jobs("n-2", count=1)
    # the delivery id still deduplicates
    r = await post(gw, "/hooks/github-noreplay", BODY, github_headers(BODY, "n-1"))
    assert r.json() == {"id": "n-1", "duplicate": True}


# -- JSON nested too deep ------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [300, 1023, 2000])
async def test_json_nested_too_deep_is_400_for_every_source(gw: GatewayClient, depth: int) -> None:
    nested = b"[" * depth + b"]" * depth
    body = b'{"sid":"deep","object_kind":"push","webhookEvent":"x","a":' + nested + b"}"
    requests: dict[str, tuple[dict[str, str], dict[str, str]]] = {
        "github": (github_headers(body, f"deep-{depth}"), {}),
        "jira": ({"x-hub-signature": sign(body)}, {}),
        "bitbucket": ({"x-hub-signature": sign(body), "x-event-key": "repo:push"}, {}),
        "gitlab": ({"x-gitlab-token": GITLAB_TOKEN}, {}),
        "servicenow": ({"authorization": f"Bearer {SN_TOKEN}"}, {}),
        "splunk-open": ({}, {"token": SPLUNK_TOKEN}),
        "generic": ({"x-custom-signature": sign(body, GENERIC_SECRET)}, {}),
    }
    for name, (headers, params) in requests.items():
        for ctype in ("application/json", "text/plain"):
            r = await post(
                gw, f"/hooks/{name}", body, {**headers, "content-type": ctype}, params=params
            )
            assert r.status_code == 400, (name, ctype, r.status_code, r.text)
            assert r.json()["error"] == "malformed"
    form = b"payload=" + body
    r = await post(
        gw,
        "/hooks/github",
        form,
        {**github_headers(form, "deep-form"), "content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 400


# -- credentials in the head are checked before the body is read ------------------------------
class NoBroker:
    max_message_bytes = None

    async def publish(self, message: Any) -> Any:
        raise AssertionError("nothing may be published")


async def call_without_body(source_kind: str, headers: list[tuple[bytes, bytes]], query: bytes,
                            **settings: Any) -> tuple[list[dict[str, Any]], bool]:  # fmt: skip
    """Call the ingest handler with a receive() that records being called (and then hands
    over a body that is not JSON)."""
    source = make_source(source_kind, secret="right-secret", **settings)
    handler = IngestHandler({"s": source}, NoBroker(), Metrics(), max_body=1 << 30)  # type: ignore[arg-type]
    sent: list[dict[str, Any]] = []
    read = False

    async def receive() -> dict[str, Any]:
        nonlocal read
        read = True
        return {"type": "http.request", "body": b"not json", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/hooks/s",
        "query_string": query,
        "headers": [(b"content-length", b"8"), *headers],
        "client": ("192.0.2.1", 1),
    }
    await asyncio.wait_for(handler(scope, receive, send, "s"), 5)
    return sent, read


@pytest.mark.parametrize(
    ("kind", "headers", "query", "settings", "status"),
    [
        ("splunk", [], b"token=wrong", {}, 401),
        ("splunk", [], b"", {}, 401),
        ("splunk", [], b"token=right-secret", {"allowed_ips": ["10.0.0.0/8"]}, 403),
        ("gitlab", [(b"x-gitlab-token", b"wrong")], b"", {}, 401),
        ("servicenow", [(b"authorization", b"Bearer wrong")], b"", {}, 401),
        ("servicenow", [(b"authorization", b"Basic d3Jvbmc=")], b"", {"auth": "basic",
                                                                   "username": "u"}, 401),
        ("generic", [(b"authorization", b"Bearer wrong")], b"", {"mode": "bearer"}, 401),
        ("generic", [], b"", {"mode": "basic", "username": "u"}, 401),
        ("github", [], b"", {}, 401),
        ("jira", [(b"x-hub-signature", b"")], b"", {}, 401),
    ],
)  # fmt: skip
async def test_a_wrong_credential_in_the_head_is_refused_before_the_body(
    kind: str, headers: list[tuple[bytes, bytes]], query: bytes, settings: dict[str, Any],
    status: int,
) -> None:  # fmt: skip
    sent, read = await call_without_body(kind, headers, query, **settings)
    assert not read, "the body was read"
    assert sent[0]["status"] == status
    assert (b"connection", b"close") in sent[0]["headers"]


async def test_a_right_token_reads_the_body() -> None:
    sent, read = await call_without_body("gitlab", [(b"x-gitlab-token", b"right-secret")], b"")
    assert read and sent[0]["status"] == 400


async def test_credentials_of_other_vendors_are_not_stored_either(gw: GatewayClient) -> None:
    body = orjson.dumps({"object_kind": "push", "project": {"path_with_namespace": "a/b"}})
    foreign = {
        "x-hub-signature-256": "sha256=" + "a" * 64,
        "x-hub-signature": "sha1=" + "b" * 40,
        "x-signature": "sha256=" + "c" * 64,
        "x-servicenow-signature": "d" * 64,
        "x-auth-token": "foreign-auth-token",
        "x-access-token": "foreign-access-token",
    }
    headers = {"x-gitlab-token": GITLAB_TOKEN, "x-gitlab-event-uuid": "foreign-1", **foreign}
    assert (await post(gw, "/hooks/gitlab", body, headers)).status_code == 202
    await dispatched(gw)
    record = await gw.platform.backends.store.get_delivery("foreign-1")
    assert "x-gitlab-event-uuid" in record.headers
    assert not set(foreign) & set(record.headers)
    assert GITLAB_TOKEN not in orjson.dumps(record.headers).decode()


async def test_a_body_larger_than_the_nats_server_takes_is_413_not_503(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NATS server's max_payload (1 MiB by default) caps the body limit: such a body is
    refused as too large before it is read, instead of failing to store (503)."""
    server = NatsServer(tmp_path / "nats").start()
    monkeypatch.setenv("GHAPPLETS_BROKER__BACKEND", "nats")
    monkeypatch.setenv("GHAPPLETS_BROKER__URL", server.url)
    try:
        async with running_gateway(project.build(), tmp_path / "data") as gw:
            limit = gw.platform.backends.broker.max_message_bytes
            assert limit is not None and 512 * 1024 < limit < 1024 * 1024
            big = {"action": "opened", "padding": "x" * (limit + 1)}
            refused = await gw.send("github", "issues.opened", payload=big, delivery_id="big")
            assert refused.status_code == 413, refused.text
            assert refused.json() == {"error": "too_large", "limit": limit}
            fits = {"action": "opened", "padding": "x" * (limit - 4096)}
            taken = await gw.send("github", "issues.opened", payload=fits, delivery_id="fits")
            assert taken.status_code == 202, taken.text
    finally:
        server.kill()
