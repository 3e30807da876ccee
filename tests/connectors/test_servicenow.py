"""The ServiceNow connector and the ``servicenow.*`` actions against the ServiceNow fake, over
real HTTP: basic auth, the OAuth2 grants and token renewal, and the error mapping."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from ghapplets.connectors.config import ServiceNowConnector, ServiceNowGrant
from ghapplets.connectors.registry import Connectors
from ghapplets.connectors.servicenow import ServiceNow, seconds, servicenow_message
from ghapplets.exceptions import ActionFailed, ActionInputInvalid, ActionUnavailable
from ghapplets.fakes.config import OAuthClient, ServiceNowConfig, ServiceNowUser
from ghapplets.secrets.refs import Lookup
from ghapplets.secrets.scopes import Reader
from ghapplets.secrets.tokens import TokenCache
from ghapplets.store.database import Database
from tests.secrets.test_tokens import token_cache

USER = ServiceNowUser()
CLIENT = OAuthClient()
TTL = ServiceNowConfig().access_token_ttl  # 1799
REFRESH_TTL = ServiceNowConfig().refresh_token_ttl
TOKEN_PATH = "/oauth_token.do"


def no_secrets(reader: Reader) -> Lookup:
    async def lookup(name: str) -> str:
        raise AssertionError(f"no secret should be read, {reader} read {name}")

    return lookup


def config(fakes: Any, grant: ServiceNowGrant | None = None, **kw: Any) -> ServiceNowConnector:
    values: dict[str, Any] = {"kind": "servicenow", "base_url": fakes.servicenow.base_url}
    if grant in (None, ServiceNowGrant.PASSWORD):
        values.update(username=USER.username, password=USER.password)
    if grant is not None:
        values.update(grant=grant, client_id=CLIENT.client_id, client_secret=CLIENT.client_secret)
    return ServiceNowConnector.model_validate({**values, **kw})


async def opened(fakes: Any, grant: ServiceNowGrant | None = None, **kw: Any) -> Connectors:
    return await Connectors.open({"sn": config(fakes, grant, **kw)}, no_secrets)


def connector(connectors: Connectors) -> ServiceNow:
    found = connectors.by_name["sn"]
    assert isinstance(found, ServiceNow)
    return found


def form(request: Any) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.body.decode()).items()}


def token_grants(fakes: Any) -> list[str]:
    """The grant of each token request the fake got, oldest first."""
    return [form(r)["grant_type"] for r in fakes.servicenow.requests(path=TOKEN_PATH)]


def api_requests(fakes: Any) -> list[Any]:
    return list(fakes.servicenow.requests(path="/api/now/table/*"))


@pytest.fixture
async def basic(ghapplets_fakes: Any) -> AsyncIterator[Connectors]:
    opened_ = await opened(ghapplets_fakes)
    yield opened_
    await opened_.aclose()


@pytest.fixture
async def password(ghapplets_fakes: Any) -> AsyncIterator[Connectors]:
    opened_ = await opened(ghapplets_fakes, ServiceNowGrant.PASSWORD)
    yield opened_
    await opened_.aclose()


@pytest.fixture
async def client_credentials(ghapplets_fakes: Any) -> AsyncIterator[Connectors]:
    opened_ = await opened(ghapplets_fakes, ServiceNowGrant.CLIENT_CREDENTIALS)
    yield opened_
    await opened_.aclose()


BASIC = "Basic " + base64.b64encode(f"{USER.username}:{USER.password}".encode()).decode()


# -- the actions, with basic auth ----------------------------------------------------------------
async def test_create_record_posts_the_fields_to_the_table(
    basic: Connectors, ghapplets_fakes: Any
) -> None:
    fake = ghapplets_fakes.servicenow
    out = await basic.act(
        "servicenow.create_record",
        {"table": "incident", "fields": {"short_description": "disk full", "urgency": 1}},
    )
    assert out["number"] == "INC0000001" and out["short_description"] == "disk full"
    assert out["urgency"] == "1" and out["sys_created_by"] == USER.username
    assert fake.record("incident", out["sys_id"]) == out
    [request] = fake.requests()
    assert (request.method, request.path, request.query) == ("POST", "/api/now/table/incident", "")
    assert request.json() == {"short_description": "disk full", "urgency": 1}
    assert request.header("authorization") == BASIC
    assert request.header("accept") == "application/json"
    assert request.header("content-type") == "application/json"


async def test_update_record_patches_the_record(basic: Connectors, ghapplets_fakes: Any) -> None:
    fake = ghapplets_fakes.servicenow
    sys_id = fake.insert("incident", {"short_description": "x", "state": "1"})["sys_id"]
    out = await basic.act(
        "servicenow.update_record",
        {"table": "incident", "sys_id": sys_id, "fields": {"state": 2, "work_notes": "on it"}},
    )
    assert (out["sys_id"], out["state"], out["work_notes"]) == (sys_id, "2", "on it")
    stored = fake.record("incident", sys_id)
    assert (stored["state"], stored["short_description"], stored["sys_mod_count"]) == (
        "2",
        "x",
        "1",
    )
    [request] = fake.requests()
    assert (request.method, request.path) == ("PATCH", f"/api/now/table/incident/{sys_id}")
    assert request.json() == {"state": 2, "work_notes": "on it"}
    assert request.header("authorization") == BASIC


async def test_get_record_reads_all_or_some_fields(basic: Connectors, ghapplets_fakes: Any) -> None:
    fake = ghapplets_fakes.servicenow
    record = fake.insert("problem", {"short_description": "flaky"})
    sys_id = record["sys_id"]
    assert await basic.act("servicenow.get_record", {"table": "problem", "sys_id": sys_id}) == (
        record
    )
    out = await basic.act(
        "servicenow.get_record",
        {"table": "problem", "sys_id": sys_id, "fields": ["number", "short_description"]},
    )
    assert out == {"number": "PRB0000001", "short_description": "flaky"}
    whole, some = fake.requests()
    assert (whole.method, whole.path, whole.params) == (
        "GET",
        f"/api/now/table/problem/{sys_id}",
        {},
    )
    assert some.params == {"sysparm_fields": "number,short_description"}


async def test_query_sends_the_encoded_query_and_answers_the_list(
    basic: Connectors, ghapplets_fakes: Any
) -> None:
    fake = ghapplets_fakes.servicenow
    for n, state in enumerate(["1", "2", "2", "2"]):
        fake.insert("incident", {"short_description": f"i{n}", "state": state})
    out = await basic.act("servicenow.query", {"table": "incident", "query": "state=2"})
    assert [r["short_description"] for r in out] == ["i1", "i2", "i3"]
    out = await basic.act(
        "servicenow.query",
        {
            "table": "incident",
            "query": "state=2^ORDERBYDESCshort_description",
            "limit": 2,
            "fields": ["short_description"],
        },
    )
    assert out == [{"short_description": "i3"}, {"short_description": "i2"}]
    default, limited = fake.requests()
    assert (default.method, default.path) == ("GET", "/api/now/table/incident")
    assert default.params == {"sysparm_query": "state=2", "sysparm_limit": "100"}
    assert limited.params == {
        "sysparm_query": "state=2^ORDERBYDESCshort_description",
        "sysparm_limit": "2",
        "sysparm_fields": "short_description",
    }


async def test_create_change_request(basic: Connectors, ghapplets_fakes: Any) -> None:
    out = await basic.act(
        "servicenow.create_change_request",
        {"fields": {"short_description": "deploy v2", "type": "normal"}},
    )
    assert out["number"] == "CHG0000001" and len(out["sys_id"]) == 32
    stored = ghapplets_fakes.servicenow.find("change_request", "CHG0000001")
    assert (stored["short_description"], stored["state"], stored["approval"]) == (
        "deploy v2",
        "-5",
        "not requested",
    )
    [request] = ghapplets_fakes.servicenow.requests()
    assert (request.method, request.path) == ("POST", "/api/now/table/change_request")


# -- bad input and vendor errors -----------------------------------------------------------------
SYS_ID = "0" * 32


CREATE, GET, UPDATE, QUERY = (
    f"servicenow.{a}" for a in ("create_record", "get_record", "update_record", "query")
)
INC = {"table": "incident"}


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        (CREATE, {"table": "../sys_user", "fields": {}}, "table"),
        (CREATE, {"table": "Incident", "fields": {}}, "table"),
        (CREATE, {"table": "x" * 81, "fields": {}}, "table"),
        (CREATE, {"table": "incident?x=1", "fields": {}}, "table"),
        (CREATE, {"table": "incident\n", "fields": {}}, "not a table name"),
        (CREATE, INC, "'fields' is a required"),
        (GET, {**INC, "sys_id": "abc"}, "sys_id"),
        (GET, {**INC, "sys_id": "0" * 31 + "G"}, "sys_id"),
        (GET, {**INC, "sys_id": "../" + SYS_ID[3:]}, "sys_id"),
        (GET, {**INC, "sys_id": SYS_ID + "\n"}, "not a sys_id"),
        (GET, {**INC, "sys_id": SYS_ID, "fields": ["a,b"]}, "fields"),
        (UPDATE, {**INC, "sys_id": SYS_ID, "fields": {}}, "fields"),
        (UPDATE, {"table": "../x", "sys_id": SYS_ID, "fields": {"a": 1}}, "table"),
        (QUERY, INC, "'query' is a required"),
        (QUERY, {**INC, "query": "", "limit": 10_001}, "limit"),
        (QUERY, {**INC, "query": "", "limit": 0}, "limit"),
        (QUERY, {"table": "a/b", "query": ""}, "table"),
        ("servicenow.create_change_request", {"fields": {}, "table": "incident"}, "table"),
    ],
)  # fmt: skip
async def test_bad_input_is_refused_before_any_request(
    basic: Connectors, ghapplets_fakes: Any, name: str, data: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ActionInputInvalid, match=problem):
        await basic.act(name, data)
    assert ghapplets_fakes.servicenow.requests() == []


async def test_basic_auth_refused_is_permanent_without_the_password(
    ghapplets_fakes: Any,
) -> None:
    wrong = await opened(ghapplets_fakes, password="not-the-password")
    try:
        with pytest.raises(ActionFailed) as failed:
            await wrong.act("servicenow.query", {"table": "incident", "query": ""})
    finally:
        await wrong.aclose()
    assert failed.value.status == 401 and not failed.value.retryable
    assert str(failed.value) == (
        "ServiceNow answered 401 to GET /api/now/table/incident: "
        "User Not Authenticated: Required to provide Auth information"
    )
    assert "not-the-password" not in str(failed.value)
    assert len(ghapplets_fakes.servicenow.requests()) == 1  # basic auth is not retried


async def test_vendor_refusals_are_permanent(basic: Connectors, ghapplets_fakes: Any) -> None:
    with pytest.raises(ActionFailed, match=r"404 .*No Record found: Record doesn't exist") as e:
        await basic.act("servicenow.get_record", {"table": "incident", "sys_id": SYS_ID})
    assert e.value.status == 404
    with pytest.raises(ActionFailed, match=r"400 .*Invalid table u_nope") as e:
        await basic.act("servicenow.create_record", {"table": "u_nope", "fields": {"a": 1}})
    assert e.value.status == 400


async def test_rate_limit_and_server_errors_are_retried(
    basic: Connectors, ghapplets_fakes: Any
) -> None:
    fake = ghapplets_fakes.servicenow
    fake.inject(429, retry_after=30)
    with pytest.raises(ActionUnavailable, match=r"429 .*Too many requests") as limited:
        await basic.act("servicenow.query", {"table": "incident", "query": ""})
    assert limited.value.retryable and limited.value.retry_after == 30.0
    assert limited.value.status == 429
    fake.inject(503)
    with pytest.raises(ActionUnavailable, match=r"503 .*Service Unavailable") as down:
        await basic.act("servicenow.create_change_request", {"fields": {}})
    assert down.value.retry_after is None and down.value.status == 503
    fake.inject(500)
    with pytest.raises(ActionUnavailable, match=r"500 .*Internal Server Error"):
        await basic.act("servicenow.create_change_request", {"fields": {}})
    assert fake.records("change_request") == []
    assert (await basic.act("servicenow.create_change_request", {"fields": {}}))["number"] == (
        "CHG0000001"
    )


# -- OAuth2 --------------------------------------------------------------------------------------
async def test_client_credentials_grant(
    client_credentials: Connectors, ghapplets_fakes: Any
) -> None:
    fake = ghapplets_fakes.servicenow
    out = await client_credentials.act(
        "servicenow.create_record", {"table": "incident", "fields": {"short_description": "x"}}
    )
    assert out["sys_created_by"] == CLIENT.client_id  # the fake's user for this grant
    token_request, api = fake.requests()
    assert (token_request.method, token_request.path) == ("POST", TOKEN_PATH)
    assert token_request.header("content-type") == "application/x-www-form-urlencoded"
    assert token_request.header("authorization") is None
    assert form(token_request) == {
        "grant_type": "client_credentials",
        "client_id": CLIENT.client_id,
        "client_secret": CLIENT.client_secret,
    }
    [token] = fake.access_tokens
    assert api.header("authorization") == f"Bearer {token}"


async def test_password_grant(password: Connectors, ghapplets_fakes: Any) -> None:
    fake = ghapplets_fakes.servicenow
    out = await password.act(
        "servicenow.create_record", {"table": "incident", "fields": {"short_description": "x"}}
    )
    assert out["sys_created_by"] == USER.username
    token_request, api = fake.requests()
    assert form(token_request) == {
        "grant_type": "password",
        "client_id": CLIENT.client_id,
        "client_secret": CLIENT.client_secret,
        "username": USER.username,
        "password": USER.password,
    }
    [token] = fake.access_tokens
    assert api.header("authorization") == f"Bearer {token}"


async def test_one_token_serves_many_actions_even_concurrent_ones(
    password: Connectors, ghapplets_fakes: Any
) -> None:
    fake = ghapplets_fakes.servicenow
    created = await asyncio.gather(
        *(
            password.act("servicenow.create_record", {"table": "task", "fields": {"n": n}})
            for n in range(5)
        )
    )
    for record in created:
        await password.act("servicenow.get_record", {"table": "task", "sys_id": record["sys_id"]})
    await password.act("servicenow.query", {"table": "task", "query": ""})
    assert token_grants(ghapplets_fakes) == ["password"]
    assert len(api_requests(ghapplets_fakes)) == 11
    assert all(r.status in (200, 201) for r in api_requests(ghapplets_fakes))
    assert len({r.header("authorization") for r in fake.requests()[1:]}) == 1


async def test_a_token_near_its_expiry_is_refreshed_first(
    password: Connectors, ghapplets_fakes: Any
) -> None:
    connector(password).oauth.clock = ghapplets_fakes.clock.now  # type: ignore[union-attr]
    fake = ghapplets_fakes.servicenow
    await password.act("servicenow.query", {"table": "incident", "query": ""})
    ghapplets_fakes.clock.advance(TTL - 90)  # still valid, renewed 60 s before its expiry
    await password.act("servicenow.query", {"table": "incident", "query": ""})
    assert token_grants(ghapplets_fakes) == ["password"]
    ghapplets_fakes.clock.advance(40)  # 50 s left: due
    await password.act("servicenow.query", {"table": "incident", "query": ""})
    assert token_grants(ghapplets_fakes) == ["password", "refresh_token"]
    [_, refresh] = fake.requests(path=TOKEN_PATH)
    assert form(refresh) == {
        "grant_type": "refresh_token",
        "client_id": CLIENT.client_id,
        "client_secret": CLIENT.client_secret,
        "refresh_token": first_refresh_token(fake),
    }
    assert "password" not in form(refresh)
    assert [r.status for r in api_requests(ghapplets_fakes)] == [200, 200, 200]  # no 401
    apis = api_requests(ghapplets_fakes)
    assert apis[1].header("authorization") != apis[2].header("authorization")


def first_refresh_token(fake: Any) -> str:
    [token] = fake.refresh_tokens
    return str(token)


async def test_client_credentials_are_asked_again_at_expiry(
    client_credentials: Connectors, ghapplets_fakes: Any
) -> None:
    connector(client_credentials).oauth.clock = ghapplets_fakes.clock.now  # type: ignore[union-attr]
    await client_credentials.act("servicenow.query", {"table": "incident", "query": ""})
    ghapplets_fakes.clock.advance(TTL)
    await client_credentials.act("servicenow.query", {"table": "incident", "query": ""})
    assert token_grants(ghapplets_fakes) == ["client_credentials", "client_credentials"]
    assert [r.status for r in api_requests(ghapplets_fakes)] == [200, 200]


async def test_a_refused_refresh_token_falls_back_to_the_grant(
    password: Connectors, ghapplets_fakes: Any
) -> None:
    connector(password).oauth.clock = ghapplets_fakes.clock.now  # type: ignore[union-attr]
    await password.act("servicenow.query", {"table": "incident", "query": ""})
    ghapplets_fakes.clock.advance(REFRESH_TTL + 1)
    await password.act("servicenow.query", {"table": "incident", "query": ""})
    tokens = ghapplets_fakes.servicenow.requests(path=TOKEN_PATH)
    assert [(form(r)["grant_type"], r.status) for r in tokens] == [
        ("password", 200),
        ("refresh_token", 401),
        ("password", 200),
    ]
    # the new refresh token is the one used next
    ghapplets_fakes.clock.advance(TTL)
    await password.act("servicenow.query", {"table": "incident", "query": ""})
    assert token_grants(ghapplets_fakes)[-1] == "refresh_token"
    assert [r.status for r in api_requests(ghapplets_fakes)] == [200, 200, 200]


async def test_a_stale_token_refused_by_the_api_is_replaced_once(
    password: Connectors, ghapplets_fakes: Any
) -> None:
    # the connector's own clock does not move: it learns of the expiry from the 401
    fake = ghapplets_fakes.servicenow
    await password.act("servicenow.query", {"table": "incident", "query": ""})
    ghapplets_fakes.clock.advance(TTL + 1)
    out = await password.act(
        "servicenow.create_record", {"table": "incident", "fields": {"short_description": "x"}}
    )
    assert out["number"] == "INC0000001"
    assert token_grants(ghapplets_fakes) == ["password", "refresh_token"]
    _, refused, retried = api_requests(ghapplets_fakes)
    assert (refused.method, refused.status, retried.method, retried.status) == (
        "POST",
        401,
        "POST",
        201,
    )
    assert refused.body == retried.body
    assert refused.header("authorization") != retried.header("authorization")
    assert len(fake.records("incident")) == 1


async def test_an_api_401_gets_one_new_token_and_one_retry_only(
    client_credentials: Connectors, ghapplets_fakes: Any
) -> None:
    fake = ghapplets_fakes.servicenow
    fake.inject(401, times=None, path="/api/*")
    with pytest.raises(ActionFailed, match=r"401 .*User Not Authenticated") as failed:
        await client_credentials.act("servicenow.query", {"table": "incident", "query": ""})
    assert failed.value.status == 401
    assert token_grants(ghapplets_fakes) == ["client_credentials", "client_credentials"]
    assert len(api_requests(ghapplets_fakes)) == 2
    for token in fake.access_tokens:
        assert token not in str(failed.value)
    assert CLIENT.client_secret not in str(failed.value)


async def test_token_refusals_and_outages_map_like_any_answer(ghapplets_fakes: Any) -> None:
    fake = ghapplets_fakes.servicenow
    wrong = await opened(
        ghapplets_fakes, ServiceNowGrant.CLIENT_CREDENTIALS, client_secret="wrong-secret"
    )
    try:
        with pytest.raises(ActionFailed) as refused:
            await wrong.act("servicenow.query", {"table": "incident", "query": ""})
    finally:
        await wrong.aclose()
    assert refused.value.status == 401 and not refused.value.retryable
    assert str(refused.value) == (
        "ServiceNow answered 401 to POST /oauth_token.do: server_error: access_denied"
    )
    assert "wrong-secret" not in str(refused.value)
    assert api_requests(ghapplets_fakes) == []

    bad_user = await opened(ghapplets_fakes, ServiceNowGrant.PASSWORD, password="bad-password")
    try:
        with pytest.raises(ActionFailed, match=r"access_denied") as refused:
            await bad_user.act("servicenow.query", {"table": "incident", "query": ""})
    finally:
        await bad_user.aclose()
    assert "bad-password" not in str(refused.value)

    fake.clear_requests()
    good = await opened(ghapplets_fakes, ServiceNowGrant.PASSWORD)
    try:
        fake.inject(429, retry_after=12, path=TOKEN_PATH)
        with pytest.raises(ActionUnavailable, match=r"429 to POST /oauth_token.do") as limited:
            await good.act("servicenow.query", {"table": "incident", "query": ""})
        assert limited.value.retry_after == 12.0
        fake.inject(503, path=TOKEN_PATH)
        with pytest.raises(ActionUnavailable, match=r"503 to POST /oauth_token.do"):
            await good.act("servicenow.query", {"table": "incident", "query": ""})
        assert api_requests(ghapplets_fakes) == []
        assert await good.act("servicenow.query", {"table": "incident", "query": ""}) == []
    finally:
        await good.aclose()


# -- the error text ------------------------------------------------------------------------------
def answer(status: int, body: Any) -> httpx.Response:
    if isinstance(body, str):
        return httpx.Response(status, text=body)
    return httpx.Response(status, json=body)


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"error": {"message": "No Record found", "detail": "gone"}, "status": "failure"},
         "No Record found: gone"),
        ({"error": {"message": "Invalid table x", "detail": None}, "status": "failure"},
         "Invalid table x"),
        ({"error": "server_error", "error_description": "access_denied"},
         "server_error: access_denied"),
        ({"error": "invalid_grant"}, "invalid_grant"),
        ({"message": "plain"}, "plain"),
        ("<html>Instance hibernating</html>", "<html>Instance hibernating</html>"),
    ],
)  # fmt: skip
def test_servicenow_message(body: Any, text: str) -> None:
    assert servicenow_message(answer(400, body)) == text


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1799, 1799.0), (1799.5, 1799.5), ("1799", 1799.0), (None, None), ("soon", None),
     (True, None), (-1, None)],
)  # fmt: skip
def test_expires_in(value: Any, expected: float | None) -> None:
    assert seconds(value) == expected


async def test_an_answer_without_a_result_is_retried(ghapplets_fakes: Any) -> None:
    def hibernating(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>Your instance is hibernating</html>")

    sn = ServiceNow("sn", config(ghapplets_fakes))
    await sn.api.client.aclose()
    sn.api.client = httpx.AsyncClient(
        base_url="https://acme.service-now.com", transport=httpx.MockTransport(hibernating)
    )
    try:
        with pytest.raises(ActionUnavailable, match=r"200 to GET .*without a result"):
            await sn.get("incident", SYS_ID)
    finally:
        await sn.aclose()


async def test_a_token_answer_without_a_token_is_retried(ghapplets_fakes: Any) -> None:
    def hibernating(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>Your instance is hibernating</html>")

    sn = ServiceNow("sn", config(ghapplets_fakes, ServiceNowGrant.CLIENT_CREDENTIALS))
    assert sn.oauth is not None
    await sn.oauth.api.client.aclose()
    sn.oauth.api.client = httpx.AsyncClient(
        base_url="https://acme.service-now.com", transport=httpx.MockTransport(hibernating)
    )
    try:
        with pytest.raises(ActionUnavailable, match=r"200 to POST /oauth_token\.do without"):
            await sn.get("incident", SYS_ID)
    finally:
        await sn.aclose()
    assert api_requests(ghapplets_fakes) == []


# -- OAuth tokens shared through the store's token cache ------------------------------------------
@pytest.fixture
def cache(tmp_path: Path) -> Iterator[tuple[TokenCache, Database]]:
    with token_cache(tmp_path) as found:
        yield found


async def process(fakes: Any, grant: ServiceNowGrant, tokens: TokenCache) -> Connectors:
    """The connectors as one process of the project opens them."""
    opened_ = await Connectors.open({"sn": config(fakes, grant)}, no_secrets, tokens=tokens)
    connector(opened_).oauth.clock = fakes.clock.now  # type: ignore[union-attr]
    return opened_


QUERY = {"table": "incident", "query": ""}


@pytest.mark.parametrize("grant", [ServiceNowGrant.CLIENT_CREDENTIALS, ServiceNowGrant.PASSWORD])
async def test_processes_share_one_access_token(
    ghapplets_fakes: Any, cache: tuple[TokenCache, Database], grant: ServiceNowGrant
) -> None:
    tokens, database = cache
    first, second = await process(ghapplets_fakes, grant, tokens), None
    try:
        await first.act("servicenow.query", QUERY)
        second = await process(ghapplets_fakes, grant, tokens)
        await second.act("servicenow.query", QUERY)
        assert token_grants(ghapplets_fakes) == [str(grant)]
        one, two = api_requests(ghapplets_fakes)
        assert one.header("authorization") == two.header("authorization")
        access = (one.header("authorization") or "").removeprefix("Bearer ")
        with sqlite3.connect(database.path) as raw:
            rows = raw.execute("SELECT key, ciphertext FROM connector_tokens").fetchall()
        assert len(rows) == 1 and access.encode() not in rows[0][1]  # encrypted
    finally:
        await first.aclose()
        if second is not None:
            await second.aclose()


async def test_a_cached_refresh_token_renews_an_expired_access_token(
    ghapplets_fakes: Any, cache: tuple[TokenCache, Database]
) -> None:
    tokens, _ = cache
    first = await process(ghapplets_fakes, ServiceNowGrant.PASSWORD, tokens)
    try:
        await first.act("servicenow.query", QUERY)
    finally:
        await first.aclose()
    ghapplets_fakes.clock.advance(TTL)  # the cached access token has expired
    second = await process(ghapplets_fakes, ServiceNowGrant.PASSWORD, tokens)
    third = await process(ghapplets_fakes, ServiceNowGrant.PASSWORD, tokens)
    try:
        await second.act("servicenow.query", QUERY)
        await third.act("servicenow.query", QUERY)  # takes the renewed token
    finally:
        await second.aclose()
        await third.aclose()
    assert token_grants(ghapplets_fakes) == ["password", "refresh_token"]
    assert [r.status for r in api_requests(ghapplets_fakes)] == [200, 200, 200]


async def test_a_cached_token_the_api_refuses_is_replaced_for_everyone(
    ghapplets_fakes: Any, cache: tuple[TokenCache, Database]
) -> None:
    tokens, _ = cache
    grant = ServiceNowGrant.CLIENT_CREDENTIALS
    first = await process(ghapplets_fakes, grant, tokens)
    second = await process(ghapplets_fakes, grant, tokens)
    third = await process(ghapplets_fakes, grant, tokens)
    try:
        await first.act("servicenow.query", QUERY)
        fake = ghapplets_fakes.servicenow
        with fake.lock:  # an administrator revokes every access token
            fake.access_tokens.clear()
        await second.act("servicenow.query", QUERY)  # cached token refused: one new one
        await third.act("servicenow.query", QUERY)  # the new one, from the cache
    finally:
        for opened_ in (first, second, third):
            await opened_.aclose()
    assert token_grants(ghapplets_fakes) == [str(grant), str(grant)]
    statuses = [r.status for r in api_requests(ghapplets_fakes)]
    assert statuses == [200, 401, 200, 200]
