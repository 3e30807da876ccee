"""POST /hooks/{source}: verification, limits, status codes, dedup, and that nothing unverified
is stored."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ghapplets.exceptions import StoreUnavailable
from ghapplets.testing.gateway import GatewayClient, running_gateway
from tests.conftest import PREVIOUS_SECRET, WEBHOOK_SECRET, ProjectBuilder

VECTOR_SECRET = "It's a Secret to Everybody"
VECTOR_SIG = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github_headers(
    body: bytes, delivery: str, secret: str = WEBHOOK_SECRET, event: str = "issues"
) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-github-event": event,
        "x-github-delivery": delivery,
        "x-hub-signature-256": sign(body, secret),
    }


BODY = orjson.dumps(
    {
        "action": "opened",
        "issue": {"number": 1, "title": "t", "user": {"login": "u"}},
        "repository": {"full_name": "o/r", "name": "r", "owner": {"login": "o"}},
        "sender": {"login": "u"},
    }
)


@pytest.fixture
async def gw(
    project: ProjectBuilder, tmp_path: Path, platform_backends: str
) -> AsyncIterator[GatewayClient]:
    """The whole platform in-process, on the embedded backends and on NATS JetStream."""
    project.source(
        "github", f"kind: github\nsecret: {WEBHOOK_SECRET}\nprevious_secret: {PREVIOUS_SECRET}"
    )
    project.source("vector", f'kind: github\nsecret: "{VECTOR_SECRET}"')
    project.extra = "server:\n  max_body_bytes: 65536\n"
    async with running_gateway(project.build(), tmp_path / "data") as client:
        yield client


async def stored_ids(gw: GatewayClient) -> list[str]:
    return [d.id for d in await gw.platform.backends.store.list_deliveries(limit=1000)]


async def events_depth(gw: GatewayClient) -> int:
    """Events stored, once the dispatcher has recorded all of them."""
    broker = gw.platform.backends.broker
    for _ in range(200):
        if await broker.depth("events") == 0:
            break
        await asyncio.sleep(0.01)
    return len(await stored_ids(gw))


async def test_accepts_a_signed_webhook_and_stores_it(gw: GatewayClient) -> None:
    r = await gw.client.post("/hooks/github", content=BODY, headers=github_headers(BODY, "d-1"))
    assert r.status_code == 202
    assert r.json() == {"id": "d-1"}
    assert await events_depth(gw) == 1


async def test_official_test_vector_verifies(gw: GatewayClient) -> None:
    headers = {
        "x-github-event": "ping",
        "x-github-delivery": "v-1",
        "x-hub-signature-256": VECTOR_SIG,
        "content-type": "application/json",
    }
    r = await gw.client.post("/hooks/vector", content=b"Hello, World!", headers=headers)
    # the signature is accepted; the body is then (rightly) not JSON
    assert r.status_code == 400 and r.json()["error"] == "malformed"
    headers["x-hub-signature-256"] = VECTOR_SIG[:-1] + "0"
    r = await gw.client.post("/hooks/vector", content=b"Hello, World!", headers=headers)
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("case", "mutate"),
    [
        ("wrong", lambda h: h.update({"x-hub-signature-256": sign(BODY, "wrong")})),
        ("missing", lambda h: h.pop("x-hub-signature-256")),
        ("stale", lambda h: h.update({"x-hub-signature-256": sign(BODY, "rotated-out")})),
        ("garbled", lambda h: h.update({"x-hub-signature-256": "sha256=zz"})),
        ("sha1-only", lambda h: h.update({"x-hub-signature-256": "sha1=" + "0" * 40})),
    ],
)
async def test_bad_signatures_are_rejected_and_nothing_is_stored(
    gw: GatewayClient, case: str, mutate
) -> None:
    headers = github_headers(BODY, f"bad-{case}")
    mutate(headers)
    r = await gw.client.post("/hooks/github", content=BODY, headers=headers)
    assert r.status_code == 401, case
    assert await events_depth(gw) == 0
    metrics = (await gw.client.get("/metrics")).text
    assert 'ghapplets_webhooks_rejected_total{reason="' in metrics


async def test_both_current_and_previous_secret_verify(gw: GatewayClient) -> None:
    for i, secret in enumerate((WEBHOOK_SECRET, PREVIOUS_SECRET)):
        r = await gw.client.post(
            "/hooks/github", content=BODY, headers=github_headers(BODY, f"rot-{i}", secret)
        )
        assert r.status_code == 202


async def test_duplicate_delivery_is_acknowledged_once(gw: GatewayClient) -> None:
    headers = github_headers(BODY, "dup-1")
    first = await gw.client.post("/hooks/github", content=BODY, headers=headers)
    second = await gw.client.post("/hooks/github", content=BODY, headers=headers)
    assert first.status_code == second.status_code == 202
    assert "duplicate" not in first.json()
    assert second.json() == {"id": "dup-1", "duplicate": True}
    assert await events_depth(gw) == 1
    assert "ghapplets_webhooks_duplicate_total" in (await gw.client.get("/metrics")).text


async def test_a_delivery_the_store_holds_is_a_duplicate_where_the_broker_forgets(
    gw: GatewayClient, platform_backends: str
) -> None:
    ingest = gw.platform.ingest
    # NATS remembers ids for its duplicate window only: the gateway asks the store too
    assert (ingest.stored is not None) == (platform_backends != "embedded")
    asked: list[tuple[str, str]] = []

    async def stored(delivery_id: str, source: str) -> bool:
        asked.append((delivery_id, source))
        return delivery_id == "held-1"

    ingest.stored = stored
    held = await gw.client.post(
        "/hooks/github", content=BODY, headers=github_headers(BODY, "held-1")
    )
    assert held.status_code == 202 and held.json() == {"id": "held-1", "duplicate": True}
    assert asked == [("held-1", "github")]
    new = await gw.client.post("/hooks/github", content=BODY, headers=github_headers(BODY, "new-1"))
    assert new.status_code == 202 and "duplicate" not in new.json()
    assert await events_depth(gw) == 1  # only the new one was stored
    assert await stored_ids(gw) == ["new-1"]


async def test_a_store_that_cannot_answer_leaves_duplicates_to_the_broker(
    gw: GatewayClient,
) -> None:
    async def down(delivery_id: str, source: str) -> bool:
        raise StoreUnavailable("the store is down")

    gw.platform.ingest.stored = down
    r = await gw.client.post("/hooks/github", content=BODY, headers=github_headers(BODY, "s-1"))
    assert r.status_code == 202 and r.json() == {"id": "s-1"}
    assert await events_depth(gw) == 1


async def test_unknown_source_is_404(gw: GatewayClient) -> None:
    r = await gw.client.post("/hooks/nope", content=BODY, headers=github_headers(BODY, "x"))
    assert r.status_code == 404
    assert r.json()["error"] == "unknown_source"


async def test_too_large_is_413_declared_or_streamed(gw: GatewayClient) -> None:
    big = b"{" + b" " * 70000 + b"}"
    r = await gw.client.post("/hooks/github", content=big, headers=github_headers(big, "big"))
    assert r.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while streaming
        for _ in range(20):
            yield b" " * 4096

    headers = github_headers(b"", "big2")
    r = await gw.client.post("/hooks/github", content=chunks(), headers=headers)
    assert r.status_code == 413
    assert await events_depth(gw) == 0


async def test_malformed_body_is_400_after_verification(gw: GatewayClient) -> None:
    body = b"{not json"
    r = await gw.client.post("/hooks/github", content=body, headers=github_headers(body, "m-1"))
    assert r.status_code == 400
    # the same body with a bad signature is a 401: nothing is parsed before verification
    headers = github_headers(body, "m-2", "wrong")
    assert (await gw.client.post("/hooks/github", content=body, headers=headers)).status_code == 401
    assert await events_depth(gw) == 0


async def test_storage_down_is_503_and_ready_says_so(gw: GatewayClient) -> None:
    await gw.platform.backends.broker.close()
    post = gw.client.post("/hooks/github", content=BODY, headers=github_headers(BODY, "u-1"))
    r = await asyncio.wait_for(post, 30)  # answered, not left hanging
    assert r.status_code == 503
    ready = await gw.client.get("/readyz")
    assert ready.status_code == 503
    await gw.platform.backends.broker.start()
    assert (await gw.client.get("/readyz")).status_code == 200


async def test_health_metrics_and_wrong_method(gw: GatewayClient) -> None:
    assert (await gw.client.get("/healthz")).json() == {"status": "ok"}
    await gw.client.post("/hooks/github", content=BODY, headers=github_headers(BODY, "h-1"))
    text = (await gw.client.get("/metrics")).text
    for name in (
        "ghapplets_webhooks_received_total",
        "ghapplets_queue_depth",
        "ghapplets_job_start_latency_seconds",
        "ghapplets_job_retries_total",
        "ghapplets_dead_letters_total",
    ):
        assert name in text
    assert (await gw.client.get("/hooks/github")).status_code == 405


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    body=st.one_of(
        st.binary(max_size=2048),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
            max_leaves=20,
        ).map(lambda v: json.dumps(v).encode()),
    ),
    event=st.text(min_size=0, max_size=30),
    delivery=st.text(min_size=0, max_size=60),
    signed=st.booleans(),
)
async def test_fuzzed_requests_never_crash_the_gateway(
    gw: GatewayClient, body: bytes, event: str, delivery: str, signed: bool
) -> None:
    headers = {
        "x-github-event": event.encode("ascii", "ignore").decode(),
        "x-github-delivery": delivery.encode("ascii", "ignore").decode(),
        "content-type": "application/json",
    }
    if signed:
        headers["x-hub-signature-256"] = sign(body)
    r = await gw.client.post("/hooks/github", content=body, headers=headers)
    assert r.status_code in (202, 400, 401), r.text
    if not signed:
        assert r.status_code == 401
    assert (await gw.client.get("/healthz")).status_code == 200


async def test_http_error_status_is_json(gw: GatewayClient) -> None:
    r = await gw.client.post("/hooks/github", content=BODY, headers={"content-length": "abc"})
    assert r.status_code in (400, 413)
    assert isinstance(r.json(), dict)
