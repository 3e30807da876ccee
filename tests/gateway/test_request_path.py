"""The gateway's whole request path, in-process through the platform's ASGI app (and, for the
client address, through ``ghapplets serve``): behaviour that unit tests of a source or of a
helper cannot show, because it depends on how the gateway wires them together.

- the sources' webhook secrets are registered for redaction as the gateway builds the sources;
- the client address an allow-list sees: the TCP peer, or ``X-Forwarded-For`` only from a
  trusted proxy (``server.trusted_proxies``);
- Splunk's token in the query string, as the gateway parses it;
- credentials (headers and the query string) are never stored with a delivery;
- a broker that cannot store the event answers 503 at once, never a hung request;
- a sender cannot make a CloudEvent ``type`` segment longer than 100 characters.

Each test was seen to fail with the code it guards broken by hand (an audit found mutations of
this code that the rest of the suite let pass).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets as pysecrets
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

import ghapplets.logging as ghlog
from ghapplets.broker.base import EVENTS, OutboundMessage, PublishAck
from ghapplets.broker.sqlite import SqliteBroker
from ghapplets.exceptions import NotFound
from ghapplets.store.records import DeliveryRecord
from ghapplets.testing.events import signed_request
from ghapplets.testing.gateway import GatewayClient, running_gateway
from tests.cli.helpers import clean_env, serving
from tests.conftest import ProjectBuilder
from tests.servers import NatsServer

SPLUNK_TOKEN = "path-splunk-token-5f0c2a91"
SPLUNK_PREVIOUS = "path-splunk-previous-7d13e6b0"
KEY_TOKEN = "path-splunk-key-token-3b8e41c7"
SN_SECRET = "path-servicenow-hmac-secret-a9d2"
BEARER = "path-generic-bearer-token-c4e7"
ALLOWED = "[10.0.0.0/8, '2001:db8::/32']"
DEADLINE = 10.0  # seconds any single request may take here


def splunk_sources(project: ProjectBuilder) -> None:
    project.source("splunk", f"kind: splunk\nsecret: {SPLUNK_TOKEN}\nallowed_ips: {ALLOWED}")
    project.source(
        "splunk-open",
        f"kind: splunk\nsecret: {SPLUNK_TOKEN}\nprevious_secret: {SPLUNK_PREVIOUS}",
    )
    project.source("splunk-key", f"kind: splunk\nsecret: {KEY_TOKEN}\ntoken_param: key")


async def post_as(
    gw: GatewayClient,
    path: str,
    body: bytes,
    headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    *,
    peer: str = "127.0.0.1",
    params: Mapping[str, str] | None = None,
) -> httpx.Response:
    """POST through the gateway's ASGI app from the TCP peer ``peer``, within the deadline."""
    app: Any = gw.platform.asgi()
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        return await asyncio.wait_for(
            client.post(path, content=body, headers=headers, params=params), DEADLINE
        )


def alert(sid: str) -> bytes:
    return orjson.dumps({"sid": sid, "search_name": "errors", "result": {"n": 1}})


async def stored(gw: GatewayClient, delivery_id: str, timeout: float = DEADLINE) -> DeliveryRecord:
    """The delivery record, once the dispatcher has stored it."""
    store = gw.platform.backends.store
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await store.get_delivery(delivery_id)
        except NotFound:
            if time.monotonic() > deadline:
                raise AssertionError(f"delivery {delivery_id} not stored in {timeout}s") from None
            await asyncio.sleep(0.02)


# -- 1. the webhook secrets are registered for redaction ------------------------------------
@pytest.fixture
def no_registered_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing registered for redaction by earlier tests (and nothing left behind)."""
    monkeypatch.setattr(ghlog, "_SECRETS", set())
    monkeypatch.setattr(ghlog, "_ORDERED", ())


@pytest.mark.usefixtures("no_registered_secrets")
async def test_the_gateway_registers_each_sources_secrets_for_redaction(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Literal and ``${env:...}`` secrets (the vault registers what it hands out by itself):
    an applet that echoes them leaves ``***`` in its stored result, and a log line too."""
    literal = f"literal-hook-{pysecrets.token_hex(8)}"
    previous = f"previous-hook-{pysecrets.token_hex(8)}"
    from_env = f"env-hook-{pysecrets.token_hex(8)}"
    monkeypatch.setenv("GHAPPLETS_TEST_PATH_HOOK", from_env)
    project.source(
        "github", f"kind: github\nsecret: {literal}\nprevious_secret: {previous}"
    ).source("gitlab", "kind: gitlab\nsecret: ${env:GHAPPLETS_TEST_PATH_HOOK}")
    project.python_applet(
        "echo",
        f"""
        from ghapplets import Applet
        app = Applet("echo")

        @app.on("com.github.issues.opened")
        async def handle(ctx):
            return {{"hooks": ["{literal}", "{previous}", "{from_env}"]}}
        """,
    )
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        r = await gw.send("github", "issues.opened", delivery_id="echo-1")
        assert r.status_code == 202, r.text
        [job] = await gw.wait_for_jobs("echo-1", count=1)
    assert job.status == "succeeded", job
    assert job.result == {"hooks": ["***", "***", "***"]}
    for value in (literal, previous, from_env):
        assert ghlog.redact(f"calling with {value}.") == "calling with ***."


# -- 2 and 5. the client address, and X-Forwarded-For -----------------------------------------
@pytest.fixture
async def direct(project: ProjectBuilder, tmp_path: Path) -> AsyncIterator[GatewayClient]:
    """No ``server.trusted_proxies``: the TCP peer is the client, whatever it claims."""
    splunk_sources(project)
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        yield gw


@pytest.fixture
async def proxied(project: ProjectBuilder, tmp_path: Path) -> AsyncIterator[GatewayClient]:
    """Behind a trusted proxy on 127.0.0.1 (and one more on 192.0.2.0/24)."""
    splunk_sources(project)
    project.extra = "server:\n  trusted_proxies: [127.0.0.1/32, 192.0.2.0/24]\n"
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        yield gw


async def allow_listed(
    gw: GatewayClient, sid: str, *, peer: str, xff: str | None = None
) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if xff is not None:
        headers["x-forwarded-for"] = xff
    return await post_as(
        gw, "/hooks/splunk", alert(sid), headers, peer=peer, params={"token": SPLUNK_TOKEN}
    )


async def test_without_trusted_proxies_the_peer_is_the_client(direct: GatewayClient) -> None:
    # a peer inside allowed_ips is let in, whatever it writes in X-Forwarded-For
    assert (await allow_listed(direct, "d-1", peer="10.0.0.5")).status_code == 202
    assert (
        await allow_listed(direct, "d-2", peer="10.0.0.5", xff="203.0.113.9")
    ).status_code == 202
    assert (await allow_listed(direct, "d-3", peer="2001:db8::5")).status_code == 202
    assert (await allow_listed(direct, "d-4", peer="::ffff:10.0.0.5")).status_code == 202
    # a peer outside it is refused, whatever address it claims: even from a local proxy
    for i, (peer, xff) in enumerate(
        [
            ("203.0.113.9", None),
            ("203.0.113.9", "10.1.2.3"),
            ("127.0.0.1", "10.1.2.3"),
            ("127.0.0.1", "10.1.2.3, 10.4.5.6"),
            ("::1", "2001:db8::7"),
        ]
    ):
        r = await allow_listed(direct, f"r-{i}", peer=peer, xff=xff)
        assert r.status_code == 403, (peer, xff, r.text)
        assert r.json()["error"] == "ip_not_allowed"
    stored_ids = {d.id for d in await direct.platform.backends.store.list_deliveries(limit=100)}
    assert not {f"r-{i}" for i in range(5)} & stored_ids


async def test_behind_a_trusted_proxy_forwarded_for_is_the_client(proxied: GatewayClient) -> None:
    assert (await allow_listed(proxied, "p-1", peer="127.0.0.1", xff="10.1.2.3")).status_code == 202
    r = await allow_listed(proxied, "p-2", peer="::ffff:127.0.0.1", xff="[2001:db8::7]:443")
    assert r.status_code == 202
    # through two trusted proxies
    r = await allow_listed(proxied, "p-3", peer="127.0.0.1", xff="10.1.2.3, 192.0.2.10")
    assert r.status_code == 202
    # without the header the peer, the proxy itself, is the client: not an allowed one
    assert (await allow_listed(proxied, "p-4", peer="127.0.0.1")).status_code == 403
    # what the proxy saw counts, not what the sender wrote to its left
    r = await allow_listed(proxied, "p-5", peer="127.0.0.1", xff="10.9.9.9, 203.0.113.7")
    assert r.status_code == 403
    # a peer that is not a trusted proxy: its header is its own claim
    r = await allow_listed(proxied, "p-6", peer="203.0.113.9", xff="10.1.2.3")
    assert r.status_code == 403 and r.json()["error"] == "ip_not_allowed"
    assert (
        await allow_listed(proxied, "p-7", peer="10.0.0.5", xff="203.0.113.9")
    ).status_code == 202


@pytest.mark.slow
def test_ghapplets_serve_ignores_forwarded_for_without_trusted_proxies(
    project: ProjectBuilder,
) -> None:
    """The real server: uvicorn must not read X-Forwarded-For itself (its default trusts it
    from 127.0.0.1), or any local client could claim an address in an allow-list."""
    project.source(
        "splunk", f"kind: splunk\nsecret: {SPLUNK_TOKEN}\nallowed_ips: [10.0.0.0/8]"
    ).source("local", f"kind: splunk\nsecret: {SPLUNK_TOKEN}\nallowed_ips: [127.0.0.0/8]")
    root = project.build()
    params = {"token": SPLUNK_TOKEN}
    with serving(root, "--processes", "1", env=clean_env()) as server:

        def post(name: str, sid: str, xff: str) -> httpx.Response:
            headers = {"content-type": "application/json", "x-forwarded-for": xff}
            return httpx.post(
                f"{server.url}/hooks/{name}",
                content=alert(sid),
                headers=headers,
                params=params,
                timeout=DEADLINE,
            )

        r = post("splunk", "s-1", "10.1.2.3")
        assert r.status_code == 403 and r.json()["error"] == "ip_not_allowed", r.text
        # the TCP peer, 127.0.0.1, is the client
        assert post("local", "s-2", "10.1.2.3").status_code == 202


# -- 5. Splunk's token in the query string ------------------------------------------------------
async def splunk_token(
    gw: GatewayClient,
    name: str,
    sid: str,
    params: Mapping[str, str] | None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    headers = {"content-type": "application/json", **(headers or {})}
    return await post_as(gw, f"/hooks/{name}", alert(sid), headers, params=params)


async def test_splunks_query_token_through_the_gateway(direct: GatewayClient) -> None:
    ok = await splunk_token(direct, "splunk-open", "t-1", {"token": SPLUNK_TOKEN})
    assert ok.status_code == 202 and ok.json() == {"id": "t-1"}
    rotated = await splunk_token(direct, "splunk-open", "t-2", {"token": SPLUNK_PREVIOUS})
    assert rotated.status_code == 202
    extra = await splunk_token(direct, "splunk-open", "t-3", {"a": "1", "token": SPLUNK_TOKEN})
    assert extra.status_code == 202
    for i, (params, headers, reason) in enumerate(
        [
            ({"token": "wrong"}, None, "bad_token"),
            ({"token": SPLUNK_TOKEN[:-1]}, None, "bad_token"),
            ({"token": ""}, None, "missing_token"),
            (None, None, "missing_token"),
            ({"Token": SPLUNK_TOKEN}, None, "missing_token"),  # the name is exact
            ({"key": SPLUNK_TOKEN}, None, "missing_token"),
            # the token is only read from the query string
            (None, {"authorization": f"Bearer {SPLUNK_TOKEN}"}, "missing_token"),
            (None, {"x-splunk-token": SPLUNK_TOKEN}, "missing_token"),
        ]
    ):
        r = await splunk_token(direct, "splunk-open", f"bad-{i}", params, headers)
        assert r.status_code == 401, (params, headers, r.text)
        assert r.json()["error"] == reason, (params, headers)
    # a source with its own token_param reads that parameter only
    assert (await splunk_token(direct, "splunk-key", "k-1", {"key": KEY_TOKEN})).status_code == 202
    r = await splunk_token(direct, "splunk-key", "k-2", {"token": KEY_TOKEN})
    assert r.status_code == 401 and r.json()["error"] == "missing_token"
    ids = {d.id for d in await direct.platform.backends.store.list_deliveries(limit=100)}
    assert not any(i.startswith(("bad-", "k-2")) for i in ids)


async def test_the_address_is_checked_before_the_token(direct: GatewayClient) -> None:
    async def send(peer: str, token: str | None, sid: str) -> httpx.Response:
        params = None if token is None else {"token": token}
        return await post_as(direct, "/hooks/splunk", alert(sid), peer=peer, params=params)

    for token in (SPLUNK_TOKEN, "wrong", None):
        r = await send("203.0.113.9", token, "o-1")
        assert r.status_code == 403 and r.json()["error"] == "ip_not_allowed", token
    r = await send("10.0.0.5", "wrong", "o-2")
    assert r.status_code == 401 and r.json()["error"] == "bad_token"
    assert (await send("10.0.0.5", None, "o-3")).json()["error"] == "missing_token"
    assert (await send("10.0.0.5", SPLUNK_TOKEN, "o-4")).status_code == 202


# -- 3. no credential is stored with a delivery ------------------------------------------------
@pytest.fixture
async def gw(
    project: ProjectBuilder, tmp_path: Path, platform_backends: str
) -> AsyncIterator[GatewayClient]:
    """Sources whose credentials travel in the query, in ``Authorization`` and in a header of
    the source's own choosing; on the embedded backends and on NATS + PostgreSQL."""
    splunk_sources(project)
    project.source(
        "servicenow", f"kind: servicenow\nauth: hmac\nheader: X-SN-Sig\nsecret: {SN_SECRET}"
    )
    project.source(
        "generic", f"kind: generic\nmode: bearer\nsecret: {BEARER}\ntype_header: X-Event-Type"
    )
    project.source("github", "kind: github\nsecret: path-github-secret-61f0")
    async with running_gateway(project.build(), tmp_path / "data") as client:
        yield client


def stored_text(record: DeliveryRecord) -> str:
    doc = {"headers": record.headers, "attributes": record.attributes, "type": record.type}
    return orjson.dumps(doc).decode() + record.body.decode("utf-8", "replace")


# carried by every request below; never the source's own credential, never stored either
FOREIGN = {
    "authorization": "Bearer path-foreign-authorization",
    "cookie": "session=path-foreign-cookie",
    "x-api-key": "path-foreign-api-key",
}


async def test_no_credential_is_stored_with_an_accepted_delivery(gw: GatewayClient) -> None:
    sn_body = orjson.dumps({"sys_id": "sn-1", "table": "incident", "operation": "insert"})
    sn_sig = hmac.new(SN_SECRET.encode(), sn_body, hashlib.sha256).hexdigest()
    sent: list[tuple[str, httpx.Response, set[str]]] = []

    splunk = await post_as(
        gw,
        "/hooks/splunk-open",
        alert("cred-splunk"),
        {
            "content-type": "application/json",
            "user-agent": "Splunk/9.3.1",
            "x-my-copy": f"Splunk {SPLUNK_TOKEN}",  # the token again, under any name
            **FOREIGN,
        },
        params={"token": SPLUNK_TOKEN, "other": "kept-out-too"},
    )
    sent.append(("splunk-open", splunk, {SPLUNK_TOKEN, *FOREIGN.values()}))
    servicenow = await post_as(
        gw,
        "/hooks/servicenow",
        sn_body,
        {"content-type": "application/json", "x-sn-sig": sn_sig, "x-request-id": "r1", **FOREIGN},
    )
    sent.append(("servicenow", servicenow, {sn_sig, *FOREIGN.values()}))
    _, signed = signed_request(
        "github",
        "issues.opened",
        source=gw.platform.sources["generic"],
        delivery_id="cred-generic",
        headers={"cookie": FOREIGN["cookie"], "x-api-key": FOREIGN["x-api-key"]},
    )
    generic = await post_as(gw, "/hooks/generic", signed.body, signed.headers)
    sent.append(
        (
            "generic",
            generic,
            {BEARER, *FOREIGN.values()} - {FOREIGN["authorization"]},
        )
    )

    for name, response, values in sent:
        assert response.status_code == 202, (name, response.text)
        record = await stored(gw, response.json()["id"])
        text = stored_text(record)
        for value in values:
            assert value not in text, (name, value)
        for header in ("authorization", "cookie", "x-api-key", "x-sn-sig", "x-my-copy"):
            assert header not in record.headers, (name, header)
        assert "token=" not in text and "kept-out-too" not in text, name
        assert record.headers, name  # the vendor's other headers are kept
    assert (await stored(gw, "cred-splunk")).headers.get("user-agent") == "Splunk/9.3.1"
    assert (await stored(gw, servicenow.json()["id"])).headers.get("x-request-id") == "r1"


# -- 4. a broker that cannot store the event: 503 at once ----------------------------------------
class WriteFailingBroker(SqliteBroker):
    """The embedded broker, whose writes of events fail while ``failing`` is set, as they would
    on a full or broken disk (the write fails inside the database's writer thread)."""

    failing = False

    def _insert(self, items: Sequence[OutboundMessage], conn: Any) -> list[PublishAck]:
        if self.failing and any(m.stream == EVENTS for m in items):
            raise OSError(28, "No space left on device")
        return super()._insert(items, conn)


@pytest.fixture
async def failing(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[GatewayClient]:
    monkeypatch.setattr("ghapplets.backends.SqliteBroker", WriteFailingBroker)
    async with running_gateway(project.build(), tmp_path / "data") as client:
        assert isinstance(client.platform.backends.broker, WriteFailingBroker)
        yield client


async def test_a_failed_broker_write_is_answered_503_at_once(failing: GatewayClient) -> None:
    broker = failing.platform.backends.broker
    assert isinstance(broker, WriteFailingBroker)
    broker.failing = True
    r = await asyncio.wait_for(failing.send("github", "issues.opened", delivery_id="w-1"), DEADLINE)
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "unavailable"
    metrics = (await failing.client.get("/metrics")).text
    assert 'ghapplets_webhooks_rejected_total{reason="unavailable",source="github"} 1.0' in metrics
    # nothing was stored, and the vendor's retry is taken once the disk is back
    assert await failing.platform.backends.store.list_deliveries(limit=10) == []
    broker.failing = False
    r = await asyncio.wait_for(failing.send("github", "issues.opened", delivery_id="w-1"), DEADLINE)
    assert r.status_code == 202 and r.json() == {"id": "w-1"}
    assert (await stored(failing, "w-1")).id == "w-1"


@pytest.fixture
def nats_platform(nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[NatsServer]:
    monkeypatch.setenv("GHAPPLETS_BROKER__BACKEND", "nats")
    monkeypatch.setenv("GHAPPLETS_BROKER__URL", nats_server.url)
    monkeypatch.setenv("GHAPPLETS_BROKER__PUBLISH_TIMEOUT", "1")
    monkeypatch.setenv("GHAPPLETS_SERVER__DRAIN_TIMEOUT", "1")
    yield nats_server


async def test_an_unreachable_nats_server_is_503_after_the_publish_timeout(
    nats_platform: NatsServer, project: ProjectBuilder, tmp_path: Path
) -> None:
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        ok = await asyncio.wait_for(gw.send("github", "issues.opened", delivery_id="n-1"), DEADLINE)
        assert ok.status_code == 202, ok.text
        nats_platform.kill()
        started = time.monotonic()
        r = await asyncio.wait_for(gw.send("github", "issues.opened", delivery_id="n-2"), DEADLINE)
        elapsed = time.monotonic() - started
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "unavailable"
        assert elapsed < 1 + 3, elapsed  # publish_timeout, and a margin


# -- 6. a CloudEvent type segment is at most 100 characters -------------------------------------
async def test_a_sender_cannot_make_a_type_segment_longer_than_100(gw: GatewayClient) -> None:
    payload = {"action": "B" * 150, "repository": {"full_name": "o/r"}}
    r = await gw.send(
        "github",
        "issues.opened",
        payload=payload,
        delivery_id="long-1",
        headers={"X-GitHub-Event": "X" * 150},
    )
    assert r.status_code == 202, r.text
    record = await stored(gw, "long-1")
    assert record.type == "com.github." + "x" * 100 + "." + "b" * 100
    assert record.attributes["githubevent"] == "x" * 100
    # a type header of the sender's choosing: one segment, however many dots it has
    _, signed = signed_request(
        "github",
        "issues.opened",
        source=gw.platform.sources["generic"],
        delivery_id="long-2",
        headers={"x-event-type": "Y." * 150},
    )
    r = await post_as(gw, "/hooks/generic", signed.body, signed.headers)
    assert r.status_code == 202, r.text
    assert (await stored(gw, "long-2")).type == "dev.ghapplets.generic." + "y_" * 50
