"""The http runtime against a real local HTTP server (no request mocking)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import structlog

from ghapplets.applets.http_runtime import parse_retry_after, safe_url
from ghapplets.applets.model import AppletSpec
from ghapplets.applets.result import AppletOutcome
from ghapplets.applets.runtime import Invocation, build_runtime

if TYPE_CHECKING:
    from tests.applets.conftest import MakeInvocation, Server


async def run(spec: AppletSpec, inv: Invocation) -> AppletOutcome:
    async with build_runtime(spec) as rt:
        return await rt.invoke(inv)


def http_spec(url: str, **kw: Any) -> AppletSpec:
    return AppletSpec(name=kw.pop("name", "http-test"), runtime="http", url=url, **kw)


async def test_ok_json_binary_mode_and_idempotency(
    http_server: Server, invocation: MakeInvocation
) -> None:
    inv = invocation(job_id="job-77", attempt=2)
    headers = {"X-Team": "a", "Content-Type": "text/plain", "CE-ID": "spoofed"}
    async with build_runtime(http_spec(f"{http_server.url}/ok", headers=headers)) as rt:
        outcome = await rt.invoke(inv)
    assert outcome.ok, outcome
    assert outcome.result["received"] == inv.event.data  # body = the data only (binary mode)
    got = http_server.last()
    assert got.method == "POST" and got.body == inv.event.data_bytes()
    h = got.headers
    assert h["ce-id"] == "delivery-1" and h["ce-type"] == "com.github.issues.opened"
    assert h["ce-source"] == "/github" and h["ce-specversion"] == "1.0"
    assert h["ce-subject"] == "octo/repo#7" and h["ce-githubhost"] == "github.com"
    assert h["content-type"] == "application/json"
    assert h["idempotency-key"] == "job-77" and h["x-ghapplets-attempt"] == "2"
    assert h["x-ghapplets-delivery-id"] == "delivery-1"
    assert h["x-team"] == "a"
    names = [k for k, _ in got.header_list]
    assert names.count("content-type") == 1 and names.count("ce-id") == 1


async def test_text_and_empty_bodies(http_server: Server, invocation: MakeInvocation) -> None:
    text = await run(http_spec(f"{http_server.url}/text"), invocation())
    assert text.ok and text.result == "plain words"
    empty = await run(http_spec(f"{http_server.url}/empty"), invocation())
    assert empty.ok and empty.result is None


async def test_invalid_json_is_bad_output(http_server: Server, invocation: MakeInvocation) -> None:
    outcome = await run(http_spec(f"{http_server.url}/badjson"), invocation())
    assert not outcome.ok and not outcome.retryable and outcome.error_type == "BadOutput"


async def test_503_with_retry_after_seconds(
    http_server: Server, invocation: MakeInvocation
) -> None:
    outcome = await run(http_spec(f"{http_server.url}/unavailable"), invocation())
    assert not outcome.ok and outcome.retryable and outcome.retry_after == 7
    assert "503" in (outcome.error_message or "") and "maintenance" in (outcome.error_message or "")


async def test_503_with_retry_after_date(http_server: Server, invocation: MakeInvocation) -> None:
    url = f"{http_server.url}/unavailable-date"
    outcome = await run(http_spec(url), invocation())
    assert outcome.retryable and outcome.retry_after is not None
    assert 100 < outcome.retry_after <= 121


@pytest.mark.parametrize("path", ["/ratelimit", "/conflict"])
async def test_429_and_409_are_retryable(
    http_server: Server, invocation: MakeInvocation, path: str
) -> None:
    outcome = await run(http_spec(http_server.url + path), invocation())
    assert not outcome.ok and outcome.retryable
    if path == "/ratelimit":
        assert outcome.retry_after == 3


async def test_404_is_permanent(http_server: Server, invocation: MakeInvocation) -> None:
    outcome = await run(http_spec(f"{http_server.url}/missing"), invocation())
    assert not outcome.ok and not outcome.retryable and outcome.retry_after is None
    assert outcome.error_type == "HTTPError" and "404" in (outcome.error_message or "")


async def test_redirect_is_not_followed(http_server: Server, invocation: MakeInvocation) -> None:
    before = len(http_server.requests)
    outcome = await run(http_spec(f"{http_server.url}/redirect"), invocation())
    assert not outcome.ok and not outcome.retryable and outcome.error_type == "Redirect"
    assert "https://elsewhere.example/x" in (outcome.error_message or "")
    assert "token=abc" not in (outcome.error_message or "")
    assert len(http_server.requests) == before + 1


async def test_error_envelope_in_response_is_honoured(
    http_server: Server, invocation: MakeInvocation
) -> None:
    url = f"{http_server.url}/envelope-error"
    outcome = await run(http_spec(url), invocation())
    assert (outcome.error_type, outcome.error_message, outcome.retryable) == (
        "Quota",
        "over quota",
        True,
    )


async def test_connection_refused_is_retryable(free_port: int, invocation: MakeInvocation) -> None:
    outcome = await run(http_spec(f"http://127.0.0.1:{free_port}/x"), invocation())
    assert not outcome.ok and outcome.retryable and outcome.error_type == "ConnectionError"


async def test_slow_server_times_out_retryable(
    http_server: Server, invocation: MakeInvocation
) -> None:
    spec = http_spec(f"{http_server.url}/slow", timeout=0.5)
    outcome = await run(spec, invocation())
    assert not outcome.ok and outcome.retryable and outcome.error_type == "Timeout"


async def test_response_body_is_capped(http_server: Server, invocation: MakeInvocation) -> None:
    spec = http_spec(f"{http_server.url}/big", max_output_bytes=1000)
    outcome = await run(spec, invocation())
    assert not outcome.ok and not outcome.retryable and outcome.error_type == "OutputTooLarge"


async def test_secret_in_header_sent_never_logged(
    http_server: Server, invocation: MakeInvocation
) -> None:
    spec = http_spec(
        f"{http_server.url}/ok?api_key=q-secret",
        headers={"Authorization": "Bearer ${secrets.fn_token}"},
        secrets=["fn_token"],
    )
    with structlog.testing.capture_logs() as logs:
        outcome = await run(spec, invocation(secrets={"fn_token": "tok-987"}))
    assert outcome.ok
    assert http_server.last().headers["authorization"] == "Bearer tok-987"
    dumped = json.dumps(logs, default=str)
    assert "tok-987" not in dumped and "q-secret" not in dumped
    assert any(e.get("status") == 200 for e in logs)


async def test_undeclared_secret_in_header_is_permanent(
    http_server: Server, invocation: MakeInvocation
) -> None:
    spec = http_spec(f"{http_server.url}/ok", headers={"Authorization": "${secrets.nope}"})
    outcome = await run(spec, invocation())
    assert not outcome.ok and outcome.error_type == "SecretNotDeclared"


async def test_shared_client_is_used_and_not_closed(
    http_server: Server, invocation: MakeInvocation
) -> None:
    async with httpx.AsyncClient() as client:
        rt = build_runtime(http_spec(f"{http_server.url}/ok"), http=client)
        await rt.start()
        assert (await rt.invoke(invocation())).ok
        await rt.close()
        assert not client.is_closed
        assert (await rt.invoke(invocation())).ok


def test_parse_retry_after() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == 90.0
    assert parse_retry_after("99999999") == 86400.0


def test_safe_url() -> None:
    assert safe_url("https://user:pw@host:8443/p/a?token=x#f") == "https://host:8443/p/a"
