"""Hostile requests against the real server: ``ghapplets serve`` as a subprocess, raw sockets.

Each test is one attack that was reproduced on the running server before it was fixed: a flood of
unknown sources (metric series), a spoofed X-Forwarded-For, a replayed body under a new delivery
id or event name, 20,000 header lines, a head that never ends, a large body behind a wrong token,
too many connections, JSON nested too deep; and no credential is stored or logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.cli.helpers import Server, clean_env, cli, logging_restored, poll, serving
from tests.conftest import ProjectBuilder, free_port, write

pytestmark = pytest.mark.slow  # one server for the module, and timeouts to wait out

GITHUB_SECRET = "hostile-github-secret-7c1e"
GITLAB_TOKEN = "hostile-gitlab-token-52d9"
SPLUNK_TOKEN = "hostile-splunk-token-0b6f"
BEARER = "hostile-bearer-token-e3a4"
HEADER_TIMEOUT = 1.0
KEEP_ALIVE = 1.0
MAX_CONNECTIONS = 8

COUNTER = """\
#!/bin/sh
cat > /dev/null
echo '{}'
"""


@dataclass
class Target:
    root: Path
    server: Server
    metrics_url: str

    @property
    def port(self) -> int:
        return self.server.port

    def post(self, path: str, body: bytes, headers: dict[str, str], **kw: Any) -> httpx.Response:
        return httpx.post(self.server.url + path, content=body, headers=headers, **kw)

    def metrics(self) -> str:
        return httpx.get(self.metrics_url, timeout=10).text

    def cli(self, *args: object) -> list[dict[str, Any]]:
        with logging_restored():
            result = cli(*args, "--json", "-p", self.root)
        assert result.code == 0, result
        return result.json_lines()

    def delivery(self, delivery_id: str) -> dict[str, Any]:
        with logging_restored():
            result = cli("deliveries", "show", delivery_id, "--json", "--body", "-p", self.root)
        assert result.code == 0, result
        (doc,) = result.json_lines()
        return doc  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    root = tmp_path_factory.mktemp("hostile") / "project"
    builder = ProjectBuilder(root)
    builder.exec_applet("counter", COUNTER, "on: [com.github.*]\n")
    metrics_port = free_port()
    write(
        root / "ghapplets.yaml",
        f"""\
        project: hostile
        applets: [applets]
        sources:
          github:
            kind: github
            secret: {GITHUB_SECRET}
          gitlab:
            kind: gitlab
            secret: {GITLAB_TOKEN}
          splunk:
            kind: splunk
            secret: {SPLUNK_TOKEN}
            allowed_ips: [10.0.0.0/8]
          generic:
            kind: generic
            mode: bearer
            secret: {BEARER}
        server:
          trusted_proxies: [127.0.0.1/32]
          metrics_address: 127.0.0.1:{metrics_port}
          header_timeout: {HEADER_TIMEOUT}
          keep_alive_timeout: {KEEP_ALIVE}
          max_connections: {MAX_CONNECTIONS}
        """,
    )
    port = free_port()
    with serving(root, "--processes", "1", env=clean_env(), port=port) as server:
        yield Target(root, server, f"http://127.0.0.1:{metrics_port}/metrics")


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()


def github(body: bytes, delivery: str, event: str = "issues") -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-github-event": event,
        "x-github-delivery": delivery,
        "x-hub-signature-256": sign(body),
    }


def series(text: str) -> set[str]:
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if not line.startswith("#")}


async def exchange(port: int, data: bytes, *, timeout: float = 10.0) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


def status_of(response: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", response)
    assert match, response[:200]
    return int(match.group(1))


# -- metrics -----------------------------------------------------------------------------------
def test_an_unknown_source_flood_adds_no_metric_series(target: Target) -> None:
    target.post("/hooks/warm-up", b"{}", {})
    before = series(target.metrics())
    with httpx.Client(base_url=target.server.url) as client:
        for _ in range(300):
            r = client.post(f"/hooks/{secrets.token_hex(6)}", content=b"{}")
            assert r.status_code == 404
    after = target.metrics()
    assert series(after) == before
    assert not re.search(r'source="[0-9a-f]{12}"', after)
    # /metrics is on its own address, not on the webhook port
    assert httpx.get(target.server.url + "/metrics").status_code == 404
    assert httpx.get(target.metrics_url.replace("/metrics", "/healthz")).status_code == 404


# -- the client's address ----------------------------------------------------------------------
def test_a_spoofed_forwarded_for_does_not_pass_the_allow_list(target: Target) -> None:
    params = {"token": SPLUNK_TOKEN}

    def alert(xff: str, sid: str) -> httpx.Response:
        body = orjson.dumps({"sid": sid, "search_name": "s", "result": {}})
        headers = {"content-type": "application/json", "x-forwarded-for": xff}
        return target.post("/hooks/splunk", body, headers, params=params)

    # the trusted proxy (127.0.0.1) saw 203.0.113.5; the 10.x on the left is the sender's claim
    r = alert("10.0.0.1, 203.0.113.5", "spoof-1")
    assert r.status_code == 403 and r.json()["error"] == "ip_not_allowed"
    assert alert("10.20.30.40", "spoof-2").status_code == 202


# -- replays and stored credentials --------------------------------------------------------------
BODY = orjson.dumps(
    {
        "action": "opened",
        "issue": {"number": 7, "title": "replayed", "user": {"login": "u"}},
        "repository": {"full_name": "o/r", "name": "r", "owner": {"login": "o"}},
        "sender": {"login": "u"},
    }
)


def test_a_replayed_body_is_a_duplicate_and_runs_nothing(target: Target) -> None:
    first = target.post("/hooks/github", BODY, github(BODY, "replay-orig"))
    assert first.status_code == 202 and first.json() == {"id": "replay-orig"}
    again = target.post("/hooks/github", BODY, github(BODY, "replay-new-id"))
    assert again.status_code == 202
    assert again.json() == {"id": "replay-new-id", "duplicate": True}
    other = target.post("/hooks/github", BODY, github(BODY, "replay-orig", event="push"))
    assert other.json() == {"id": "replay-orig", "duplicate": True}

    def done() -> dict[str, Any] | None:
        rows = [d for d in target.cli("deliveries") if d["id"].startswith("replay-")]
        return rows[0] if rows and rows[0]["status"] == "succeeded" else None

    row = poll(done)
    assert row["id"] == "replay-orig" and row["jobs_total"] == 1
    time.sleep(0.5)  # anything else would have been dispatched by now
    assert [d["id"] for d in target.cli("deliveries") if d["id"].startswith("replay-")] == [
        "replay-orig"
    ]
    shown = target.delivery("replay-orig")
    assert len(shown["jobs"]) == 1
    text = orjson.dumps(shown).decode()
    assert sign(BODY) not in text and "x-hub-signature" not in text


def test_send_explains_a_replayed_fixture(target: Target) -> None:
    with logging_restored():
        first = cli("send", "issues.reopened", "--url", target.server.url, "-p", target.root)
        again = cli("send", "issues.reopened", "--url", target.server.url, "-p", target.root)
    assert first.code == 0 and again.code == 0, (first, again)
    assert "replay protection" not in first.err
    assert '"duplicate":true' in again.out.replace(" ", "")
    assert "replay protection" in again.err and "replay_protection: false" in again.err


def test_no_token_or_signature_is_stored_or_logged(target: Target) -> None:
    gitlab = orjson.dumps({"object_kind": "push", "project": {"path_with_namespace": "a/b"}})
    sent = [
        target.post(
            "/hooks/gitlab",
            gitlab,
            {"x-gitlab-token": GITLAB_TOKEN, "x-gitlab-event-uuid": "cred-gitlab", "cookie": "c=1"},
        ),
        target.post(
            "/hooks/splunk",
            orjson.dumps({"sid": "cred-splunk", "result": {}}),
            {"x-forwarded-for": "10.1.1.1"},
            params={"token": SPLUNK_TOKEN},
        ),
        target.post(
            "/hooks/generic",
            b"{}",
            {"authorization": f"Bearer {BEARER}", "x-request-id": "cred-generic"},
        ),
        target.post(
            "/hooks/github", b'{"zen": "x"}', github(b'{"zen": "x"}', "cred-github", "ping")
        ),
    ]
    assert [r.status_code for r in sent] == [202, 202, 202, 202], [r.text for r in sent]
    for delivery_id in ("cred-gitlab", "cred-splunk", "cred-generic", "cred-github"):
        doc = poll(lambda d=delivery_id: target.delivery(d))  # type: ignore[misc]
        text = orjson.dumps(doc).decode()
        for secret in (GITLAB_TOKEN, SPLUNK_TOKEN, BEARER, GITHUB_SECRET, sign(b'{"zen": "x"}')):
            assert secret not in text, (delivery_id, secret)
        for name in ("x-gitlab-token", "authorization", "cookie", "x-hub-signature-256"):
            assert name not in doc["headers"], (delivery_id, name)
        assert doc["headers"], delivery_id
    log = target.server.log_text()
    for secret in (GITLAB_TOKEN, SPLUNK_TOKEN, BEARER, GITHUB_SECRET):
        assert secret not in log


# -- HTTP limits -------------------------------------------------------------------------------
HEAD = b"POST /hooks/github HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n"


async def test_twenty_thousand_header_lines_get_431(target: Target) -> None:
    lines = b"".join(b"x-h-%d: v\r\n" % i for i in range(20_000))
    response = await exchange(target.port, HEAD + lines + b"\r\n{}")
    assert status_of(response) == 431
    assert b'"headers_too_large"' in response
    assert httpx.get(target.server.url + "/healthz").status_code == 200
    assert 'reason="headers_too_large"' in target.metrics()


async def test_more_header_lines_than_allowed_get_431(target: Target) -> None:
    lines = b"".join(b"x-h-%d: v\r\n" % i for i in range(101))  # 1.2 KB, 104 lines
    assert status_of(await exchange(target.port, HEAD + lines + b"\r\n{}")) == 431
    ok = b"".join(b"x-h-%d: v\r\n" % i for i in range(90))
    assert status_of(await exchange(target.port, HEAD + ok + b"connection: close\r\n\r\n{}")) == 401


async def test_a_header_line_that_never_ends_gets_431(target: Target) -> None:
    # never finished, so the parser never hands it over: the bytes received are counted
    response = await exchange(target.port, HEAD + b"x-long: " + b"a" * 200_000, timeout=5)
    assert status_of(response) == 431


async def test_a_head_that_never_ends_is_cut_off(target: Target) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
    started = time.monotonic()
    writer.write(b"POST /hooks/github HTTP/1.1\r\nhost: x\r\nx-slow: ")
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), HEADER_TIMEOUT + 10)
    elapsed = time.monotonic() - started
    writer.close()
    assert status_of(response) == 408
    assert HEADER_TIMEOUT * 0.8 <= elapsed < HEADER_TIMEOUT + 5, elapsed
    # a connection that sends nothing at all is closed too
    reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
    assert status_of(await asyncio.wait_for(reader.read(), HEADER_TIMEOUT + 10)) == 408
    writer.close()


async def test_an_idle_kept_alive_connection_is_closed(target: Target) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert status_of(head) == 200
    started = time.monotonic()
    rest = await asyncio.wait_for(reader.read(), KEEP_ALIVE + 10)  # the body, then the end
    elapsed = time.monotonic() - started
    writer.close()
    assert rest.endswith(b"}")
    assert KEEP_ALIVE * 0.8 <= elapsed < KEEP_ALIVE + 2, elapsed


async def test_a_wrong_token_is_answered_before_the_body_is_sent(target: Target) -> None:
    size = 20 * 1024 * 1024
    reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
    writer.write(
        b"POST /hooks/gitlab HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"x-gitlab-token: wrong-token\r\ncontent-length: %d\r\n\r\n" % size
    )
    chunk = b" " * 65536
    sent = 0
    response = b""
    read = asyncio.ensure_future(reader.read())
    try:
        while sent < size and not read.done():
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
            await asyncio.sleep(0.005)  # a sender on a slow line
        response = await asyncio.wait_for(read, 10)
    except (ConnectionResetError, BrokenPipeError):
        response = await asyncio.wait_for(read, 10)
    finally:
        writer.close()
    assert status_of(response) == 401
    assert b'"bad_token"' in response
    assert sent < size // 4, f"the answer came after {sent} of {size} bytes"


async def test_connections_beyond_the_limit_get_503_with_retry_after(target: Target) -> None:
    held = [await asyncio.open_connection("127.0.0.1", target.port) for _ in range(MAX_CONNECTIONS)]
    try:
        for _, writer in held:  # each holds a slot with a request under way
            writer.write(b"GET /healthz HTTP/1.1\r\n")
        response = await exchange(target.port, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        assert status_of(response) == 503
        assert re.search(rb"\r\nretry-after: \d+\r\n", response.lower()), response
    finally:
        for _, writer in held:
            writer.close()
    await asyncio.sleep(0.2)
    response = await exchange(target.port, b"GET /healthz HTTP/1.1\r\nconnection: close\r\n\r\n")
    assert status_of(response) == 200


# -- bodies ------------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [300, 5000])
def test_json_nested_too_deep_is_400(target: Target, depth: int) -> None:
    body = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
    r = target.post("/hooks/github", body, github(body, f"deep-{depth}"))
    assert r.status_code == 400 and r.json()["error"] == "malformed"
    r = target.post(
        "/hooks/gitlab", body, {"x-gitlab-token": GITLAB_TOKEN, "content-type": "text/plain"}
    )
    assert r.status_code == 400
