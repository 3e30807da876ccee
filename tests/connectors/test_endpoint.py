"""The worker's local action endpoint, listening on a real socket: a job's token runs that job's
actions and nothing else, and is refused once revoked; what a stranger sends (no token, a wrong
one, a huge or broken body) is refused before any action runs."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from ghapplets.connectors import endpoint as endpoint_module
from ghapplets.connectors import wire
from ghapplets.connectors.endpoint import ActionEndpoint
from ghapplets.exceptions import ActionFailed, ActionUnavailable, ConnectorNotAllowed


class Caller:
    """An action caller that records its calls and answers from a script."""

    def __init__(self, answer: Any = None, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.answer = answer
        self.error = error

    async def __call__(self, name: str, data: Any) -> Any:
        self.calls.append((name, data))
        if self.error is not None:
            raise self.error
        return self.answer


@pytest.fixture
async def endpoint() -> AsyncIterator[ActionEndpoint]:
    ep = ActionEndpoint()
    await ep.start()
    try:
        yield ep
    finally:
        await ep.stop()


async def post(url: str, token: str | None, body: bytes, **headers: str) -> httpx.Response:
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        return await client.post(url, content=body, headers=headers)


async def test_a_granted_token_runs_its_callers_actions(endpoint: ActionEndpoint) -> None:
    caller = Caller(answer={"key": "OPS-1"})
    grant = endpoint.grant(caller)
    assert grant.url == f"http://127.0.0.1:{endpoint.port}/v1/actions"
    response = await post(f"{grant.url}/jira.create_issue", grant.token, b'{"summary": "x"}')
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"output": {"key": "OPS-1"}}
    assert caller.calls == [("jira.create_issue", {"summary": "x"})]


async def test_two_jobs_tokens_reach_their_own_callers(endpoint: ActionEndpoint) -> None:
    first, second = Caller(answer=1), Caller(answer=2)
    a, b = endpoint.grant(first), endpoint.grant(second)
    assert a.token != b.token and len(a.token) == 43  # 32 random bytes, URL-safe base64
    assert (await post(f"{a.url}/x.y", a.token, b"{}")).json() == {"output": 1}
    assert (await post(f"{b.url}/x.y", b.token, b"{}")).json() == {"output": 2}
    assert (len(first.calls), len(second.calls)) == (1, 1)


@pytest.mark.parametrize(
    "authorization", [None, "Bearer", "Bearer not-a-granted-token", "Basic dXNlcjpwYXNz"]
)
async def test_without_a_valid_token_nothing_runs(
    endpoint: ActionEndpoint, authorization: str | None
) -> None:
    caller = Caller(answer="ran")
    grant = endpoint.grant(caller)
    headers = {} if authorization is None else {"authorization": authorization}
    response = await post(f"{grant.url}/splunk.send_event", None, b"{}", **headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == wire.refusal(
        "no valid action token: it is valid only while its job runs"
    )
    assert caller.calls == []


async def test_the_grant_token_with_another_scheme_is_refused(endpoint: ActionEndpoint) -> None:
    caller = Caller(answer="ran")
    grant = endpoint.grant(caller)
    response = await post(f"{grant.url}/x.y", None, b"{}", authorization=f"Token {grant.token}")
    assert response.status_code == 401
    assert caller.calls == []


async def test_a_revoked_token_is_refused(endpoint: ActionEndpoint) -> None:
    caller = Caller(answer="ran")
    grant = endpoint.grant(caller)
    endpoint.revoke(grant)
    endpoint.revoke(grant)  # twice is harmless
    response = await post(f"{grant.url}/x.y", grant.token, b"{}")
    assert response.status_code == 401
    assert "valid only while its job runs" in response.json()["error"]["message"]
    assert caller.calls == []


async def test_a_body_over_the_limit_is_refused_unread(
    endpoint: ActionEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wire, "MAX_INPUT", 64)
    caller = Caller(answer="ran")
    grant = endpoint.grant(caller)
    exact = b'"' + b"a" * 62 + b'"'
    assert (await post(f"{grant.url}/x.y", grant.token, exact)).status_code == 200
    declared = await post(f"{grant.url}/x.y", grant.token, exact + b" ")
    assert declared.status_code == 413
    assert "larger than 64 bytes" in declared.json()["error"]["message"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        for _ in range(10):
            yield b" " * 10

    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        streamed = await client.post(
            f"{grant.url}/x.y", content=chunks(), headers={"authorization": f"Bearer {grant.token}"}
        )
    assert streamed.status_code == 413
    assert caller.calls == [("x.y", "a" * 62)]


async def test_a_body_that_is_not_json_is_refused(endpoint: ActionEndpoint) -> None:
    caller = Caller(answer="ran")
    grant = endpoint.grant(caller)
    response = await post(f"{grant.url}/x.y", grant.token, b"{not json")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("the input is not JSON")
    assert caller.calls == []


async def test_action_errors_keep_their_type_and_retry_time(endpoint: ActionEndpoint) -> None:
    busy = endpoint.grant(
        Caller(error=ActionUnavailable("Jira is busy", status=429, retry_after=2.4))
    )
    response = await post(f"{busy.url}/jira.add_comment", busy.token, b"{}")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    error = wire.error_of(response.status_code, response.json())
    assert isinstance(error, ActionUnavailable)
    assert (error.message, error.retry_after, error.status) == ("Jira is busy", 2.4, 429)

    soon = endpoint.grant(Caller(error=ActionUnavailable("busy", retry_after=0.2)))
    response = await post(f"{soon.url}/jira.add_comment", soon.token, b"{}")
    assert response.headers["retry-after"] == "1"  # whole seconds, at least one

    refused = endpoint.grant(Caller(error=ConnectorNotAllowed("not in the list")))
    response = await post(f"{refused.url}/jira.add_comment", refused.token, b"{}")
    assert response.status_code == 403
    assert "retry-after" not in response.headers
    assert isinstance(wire.error_of(403, response.json()), ConnectorNotAllowed)

    failed = endpoint.grant(Caller(error=ActionFailed("Issue does not exist", status=404)))
    response = await post(f"{failed.url}/jira.add_comment", failed.token, b"{}")
    assert response.status_code == 422
    error = wire.error_of(422, response.json())
    assert isinstance(error, ActionFailed) and error.status == 404


async def test_only_post_on_an_action_path_is_served(endpoint: ActionEndpoint) -> None:
    grant = endpoint.grant(Caller(answer="ran"))
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        got = await client.get(
            f"{grant.url}/x.y", headers={"authorization": f"Bearer {grant.token}"}
        )
        other = await client.post(
            f"http://127.0.0.1:{endpoint.port}/hooks/github",
            headers={"authorization": f"Bearer {grant.token}"},
        )
    assert got.status_code == 405
    assert other.status_code == 404


async def test_the_url_handed_out(endpoint: ActionEndpoint) -> None:
    assert ActionEndpoint("::1", 8099).url == "http://[::1]:8099/v1/actions"
    public = ActionEndpoint(url="http://worker-0.workers:8099/v1/actions/")
    assert public.url == "http://worker-0.workers:8099/v1/actions"
    assert public.grant(Caller()).url == public.url


async def test_stopping_forgets_every_grant() -> None:
    ep = ActionEndpoint()
    await ep.start()
    grant = ep.grant(Caller(answer="ran"))
    await ep.stop()
    with pytest.raises(httpx.ConnectError):
        await post(f"{grant.url}/x.y", grant.token, b"{}")
    await ep.start()  # the same port again, say after a restart of the worker's loop
    try:
        assert (await post(f"{grant.url}/x.y", grant.token, b"{}")).status_code == 401
    finally:
        await ep.stop()


async def test_a_port_in_use_is_an_error_at_start(endpoint: ActionEndpoint) -> None:
    with pytest.raises(OSError):
        await ActionEndpoint("127.0.0.1", endpoint.port).start()


async def raw_request(port: int, token: str, length: int, body: bytes = b"") -> bytes:
    """POST an action by hand, declaring ``length`` bytes and sending ``body`` (a slow or lying
    client), and read the answer until the endpoint closes."""
    head = (
        f"POST /v1/actions/x.y HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode() + body)
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read(65536)
    finally:
        writer.close()


async def test_an_input_not_sent_in_time_is_refused(
    endpoint: ActionEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(endpoint_module, "READ_TIMEOUT", 0.3)
    caller = Caller(answer="ran")
    grant = endpoint.grant(caller)
    answer = await raw_request(
        endpoint.port, grant.token, 10, b'{"a"'
    )  # 4 of the 10 bytes, then nothing
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert answer.endswith(orjson.dumps(wire.refusal("the input was not sent in time")))
    assert caller.calls == []


async def test_a_declared_length_over_the_limit_is_refused_before_any_body(
    endpoint: ActionEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(endpoint_module, "READ_TIMEOUT", 5.0)
    grant = endpoint.grant(Caller(answer="ran"))
    answer = await raw_request(
        endpoint.port, grant.token, wire.MAX_INPUT + 1
    )  # no body at all: nothing to wait for
    assert answer.startswith(b"HTTP/1.1 413 ")


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
async def test_an_ipv6_address_is_listened_on() -> None:
    ep = ActionEndpoint("::1")
    await ep.start()
    try:
        grant = ep.grant(Caller(answer=6))
        assert grant.url == f"http://[::1]:{ep.port}/v1/actions"
        assert (await post(f"{grant.url}/x.y", grant.token, b"{}")).json() == {"output": 6}
    finally:
        await ep.stop()


async def test_the_endpoint_leaves_logging_alone_and_logs_no_access_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    before = list(logging.getLogger("uvicorn").handlers)  # what other code set up, if any
    ep = ActionEndpoint()
    await ep.start()
    try:
        grant = ep.grant(Caller(answer=1))
        assert (await post(f"{grant.url}/x.y", grant.token, b"{}")).status_code == 200
    finally:
        await ep.stop()
    assert [r for r in caplog.records if r.name == "uvicorn.access"] == []
    assert logging.getLogger("uvicorn").handlers == before  # uvicorn configured no logging
