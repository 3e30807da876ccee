"""The GitHub connector and the ``github.*`` actions against the GitHub fake, over real HTTP, with
installation tokens cached in a real SQLite store."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from githubkit.exception import (
    PrimaryRateLimitExceeded,
    RequestError,
    RequestFailed,
    RequestTimeout,
    SecondaryRateLimitExceeded,
)
from githubkit.versions import LATEST_VERSION

from ghapplets.connectors.config import GithubConnector
from ghapplets.connectors.github import REFRESH_MARGIN, GitHub, rate_limited
from ghapplets.connectors.github_kit import InstallationToken, action_error
from ghapplets.connectors.registry import Connectors
from ghapplets.exceptions import ActionFailed, ActionInputInvalid, ActionUnavailable
from ghapplets.fakes.config import generate_app_key
from ghapplets.secrets.crypto import Keyring, generate_key
from ghapplets.secrets.refs import Lookup
from ghapplets.secrets.scopes import Reader
from ghapplets.secrets.tokens import TokenCache
from ghapplets.store.database import Database
from ghapplets.store.sqlite import SqliteSecretStore

APP_ID = 1001
INSTALLATION = 2001
OWNER, REPO = "octo-org", "hello-world"
FULL = f"{OWNER}/{REPO}"
SHA = "a" * 40
TTL = 3600  # the fake's token_ttl


def no_secrets(reader: Reader) -> Lookup:
    async def lookup(name: str) -> str:
        raise AssertionError(f"no secret should be read, {reader} read {name}")

    return lookup


def app_config(fakes: Any, **kw: Any) -> GithubConnector:
    return GithubConnector(
        kind="github",
        base_url=fakes.github.base_url,
        app_id=APP_ID,
        private_key=fakes.private_keys[APP_ID],
        **kw,
    )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "store.db")
    database.open()
    yield database
    database.close()


@pytest.fixture
def tokens(db: Database) -> TokenCache:
    keys = Keyring(base64.urlsafe_b64decode(generate_key()))
    return TokenCache(SqliteSecretStore(db), lambda: keys)


class Opened:
    """Connector instances (each one a "process") closed at the end of the test."""

    def __init__(self, fakes: Any, tokens: TokenCache) -> None:
        self.fakes = fakes
        self.tokens = tokens
        self.all: list[GitHub] = []

    def github(self, config: GithubConnector | None = None, *, cache: bool = True) -> Connectors:
        connector = GitHub(
            "github",
            config or app_config(self.fakes),
            tokens=self.tokens if cache else None,
            clock=self.fakes.clock.now,
        )
        self.all.append(connector)
        return Connectors({"github": connector})


@pytest.fixture
async def opened(ghapplets_fakes: Any, tokens: TokenCache) -> AsyncIterator[Opened]:
    o = Opened(ghapplets_fakes, tokens)
    yield o
    for connector in o.all:
        await connector.aclose()


@pytest.fixture
def connectors(opened: Opened) -> Connectors:
    return opened.github()


@pytest.fixture
def gh(ghapplets_fakes: Any) -> Any:
    return ghapplets_fakes.github


def repo_calls(gh: Any) -> list[Any]:
    """The requests on repositories, but the installation lookups."""
    return [r for r in gh.requests(path="/repos/*") if not r.path.endswith("/installation")]


# -- the actions -----------------------------------------------------------------------------------
async def test_create_comment_as_the_app(connectors: Connectors, gh: Any) -> None:
    out = await connectors.act(
        "github.create_comment",
        {"owner": OWNER, "repo": REPO, "issue_number": 1, "body": "Deployed :rocket:"},
    )
    assert out["body"] == "Deployed :rocket:" and out["id"] > 0
    assert [c["body"] for c in gh.repo(FULL).comments] == ["Deployed :rocket:"]
    [lookup] = gh.requests(path="/repos/*/installation")  # the installation, from the repo
    assert lookup.header("authorization").startswith("Bearer ey")  # the App JWT
    [exchange] = gh.requests(path="/app/installations/*/access_tokens")
    assert exchange.path == f"/app/installations/{INSTALLATION}/access_tokens"
    [call] = repo_calls(gh)
    assert call.path == f"/repos/{FULL}/issues/1/comments"
    assert call.header("authorization").startswith("Bearer ghs_")
    assert call.header("x-github-api-version") == "2022-11-28"
    assert gh.exchanges(INSTALLATION) == 1


async def test_add_labels(connectors: Connectors, gh: Any) -> None:
    out = await connectors.act(
        "github.add_labels",
        {"owner": OWNER, "repo": REPO, "issue_number": 1, "labels": ["bug", "triage"]},
    )
    assert [label["name"] for label in out] == ["bug", "triage"]
    assert gh.repo(FULL).labels_of(1) == ["bug", "triage"]


async def test_create_commit_status(connectors: Connectors, gh: Any) -> None:
    out = await connectors.act(
        "github.create_commit_status",
        {
            "owner": OWNER,
            "repo": REPO,
            "sha": SHA,
            "state": "success",
            "context": "ghapplets/deploy",
            "description": "deployed",
            "target_url": "https://ci.example.com/1",
        },
    )
    assert out["state"] == "success" and out["context"] == "ghapplets/deploy"
    [status] = gh.repo(FULL).statuses
    assert (status["sha"], status["description"], status["target_url"]) == (
        SHA,
        "deployed",
        "https://ci.example.com/1",
    )


async def test_create_check_run(connectors: Connectors, gh: Any) -> None:
    out = await connectors.act(
        "github.create_check_run",
        {
            "owner": OWNER,
            "repo": REPO,
            "name": "lint",
            "head_sha": SHA,
            "status": "completed",
            "conclusion": "success",
            "output": {"title": "Lint", "summary": "all clean"},
            "details_url": "https://ci.example.com/lint",
        },
    )
    assert (out["name"], out["status"], out["conclusion"]) == ("lint", "completed", "success")
    [run] = gh.repo(FULL).check_runs
    assert run["output"]["summary"] == "all clean" and run["head_sha"] == SHA


async def test_deployment_and_its_status(connectors: Connectors, gh: Any) -> None:
    deployment = await connectors.act(
        "github.create_deployment",
        {
            "owner": OWNER,
            "repo": REPO,
            "ref": "main",
            "environment": "staging",
            "description": "by ghapplets",
            "payload": {"job": "j-1"},
            "auto_merge": False,
            "required_contexts": [],
        },
    )
    assert deployment["environment"] == "staging" and deployment["payload"] == {"job": "j-1"}
    [sent] = gh.requests(path=f"/repos/{FULL}/deployments")
    assert sent.json()["auto_merge"] is False and sent.json()["required_contexts"] == []
    status = await connectors.act(
        "github.create_deployment_status",
        {
            "owner": OWNER,
            "repo": REPO,
            "deployment_id": deployment["id"],
            "state": "success",
            "log_url": "https://ci.example.com/log",
            "environment_url": "https://staging.example.com",
        },
    )
    assert status["state"] == "success"
    assert [d["id"] for d in gh.repo(FULL).deployments] == [deployment["id"]]
    [recorded] = gh.repo(FULL).deployment_statuses
    assert recorded["log_url"] == "https://ci.example.com/log"
    assert gh.exchanges(INSTALLATION) == 1


async def test_repository_dispatch(connectors: Connectors, gh: Any) -> None:
    out = await connectors.act(
        "github.repository_dispatch",
        {"owner": OWNER, "repo": REPO, "event_type": "deploy", "client_payload": {"env": "prod"}},
    )
    assert out == {"dispatched": True}
    assert gh.repo(FULL).dispatches == [{"event_type": "deploy", "client_payload": {"env": "prod"}}]


async def test_any_rest_call(connectors: Connectors, gh: Any) -> None:
    issue = await connectors.act(
        "github.request", {"method": "GET", "path": f"/repos/{FULL}/issues/1?per_page=1"}
    )
    assert issue["number"] == 1
    [call] = repo_calls(gh)
    assert call.params == {"per_page": "1"}
    comment = await connectors.act(
        "github.request",
        {"method": "POST", "path": f"/repos/{FULL}/issues/1/comments", "body": {"body": "hi"}},
    )
    assert comment["body"] == "hi"
    app = await connectors.act("github.request", {"method": "GET", "path": "/app"})
    assert app["id"] == APP_ID  # the App's own endpoints: with the App JWT
    with pytest.raises(ActionInputInvalid, match="give the action an installation_id"):
        await connectors.act("github.request", {"method": "GET", "path": "/installation/x"})
    listed = await connectors.act(
        "github.request",
        {"method": "GET", "path": "/installation/repositories", "installation_id": INSTALLATION},
    )
    assert [r["full_name"] for r in listed["repositories"]] == [FULL]
    assert gh.exchanges(INSTALLATION) == 1


# -- App authentication and the token cache -------------------------------------------------------
async def test_one_token_serves_many_actions_and_concurrent_calls(
    connectors: Connectors, gh: Any
) -> None:
    body = {"owner": OWNER, "repo": REPO, "issue_number": 1}
    await asyncio.gather(
        *(connectors.act("github.create_comment", {**body, "body": f"c{i}"}) for i in range(5))
    )
    await connectors.act("github.add_labels", {**body, "labels": ["x"]})
    assert len(gh.repo(FULL).comments) == 5
    assert gh.exchanges(INSTALLATION) == 1
    assert len(gh.requests(path="/repos/*/installation")) == 1  # the answer is kept too
    assert len({r.header("authorization") for r in repo_calls(gh)}) == 1


async def test_two_processes_sharing_the_store_mint_once(opened: Opened, gh: Any) -> None:
    one, two = opened.github(), opened.github()
    body = {"owner": OWNER, "repo": REPO, "issue_number": 1, "body": "hi"}
    await one.act("github.create_comment", body)
    await two.act("github.create_comment", body)
    assert gh.exchanges(INSTALLATION) == 1
    first, second = repo_calls(gh)
    assert first.header("authorization") == second.header("authorization")
    alone = opened.github(cache=False)  # without the store a process mints its own
    await alone.act("github.create_comment", body)
    assert gh.exchanges(INSTALLATION) == 2


async def test_a_token_is_replaced_five_minutes_before_it_expires(
    connectors: Connectors, gh: Any, ghapplets_fakes: Any
) -> None:
    body = {"owner": OWNER, "repo": REPO, "issue_number": 1, "body": "hi"}
    await connectors.act("github.create_comment", body)
    ghapplets_fakes.clock.advance(TTL - REFRESH_MARGIN - 30)  # 5.5 minutes left: still good
    await connectors.act("github.create_comment", body)
    assert gh.exchanges(INSTALLATION) == 1
    ghapplets_fakes.clock.advance(60)  # 4.5 minutes left: a new one (under a fresh JWT)
    await connectors.act("github.create_comment", body)
    assert gh.exchanges(INSTALLATION) == 2
    tokens = [r.header("authorization") for r in repo_calls(gh)]
    assert tokens[0] == tokens[1] != tokens[2]


async def test_a_stale_token_in_the_store_is_not_used(
    opened: Opened, gh: Any, ghapplets_fakes: Any
) -> None:
    body = {"owner": OWNER, "repo": REPO, "issue_number": 1, "body": "hi"}
    await opened.github().act("github.create_comment", body)
    ghapplets_fakes.clock.advance(TTL - REFRESH_MARGIN + 1)
    await opened.github().act("github.create_comment", body)  # another process, later
    assert gh.exchanges(INSTALLATION) == 2


async def test_a_revoked_token_is_replaced_once(connectors: Connectors, gh: Any) -> None:
    body = {"owner": OWNER, "repo": REPO, "issue_number": 1, "body": "hi"}
    await connectors.act("github.create_comment", body)
    assert gh.expire_tokens(INSTALLATION) == 1  # revoked (or expired early): GitHub answers 401
    await connectors.act("github.create_comment", body)
    assert gh.exchanges(INSTALLATION) == 2 and len(gh.repo(FULL).comments) == 2
    statuses = [r.status for r in repo_calls(gh)]
    assert statuses == [201, 401, 201]


async def test_a_revoked_token_in_the_store_is_replaced_for_every_process(
    opened: Opened, gh: Any
) -> None:
    one, two = opened.github(), opened.github()
    body = {"owner": OWNER, "repo": REPO, "issue_number": 1, "body": "hi"}
    await one.act("github.create_comment", body)
    gh.expire_tokens()
    await one.act("github.create_comment", body)  # 401, re-mint, retry
    await two.act("github.create_comment", body)  # reads the new token from the store
    assert gh.exchanges(INSTALLATION) == 2


async def test_a_refused_new_token_is_not_retried_again(connectors: Connectors, gh: Any) -> None:
    gh.inject(401, times=None, path=f"/repos/{FULL}/issues/*")
    with pytest.raises(ActionFailed, match="Bad credentials") as failed:
        await connectors.act(
            "github.create_comment", {"owner": OWNER, "repo": REPO, "issue_number": 1, "body": "x"}
        )
    assert failed.value.status == 401
    assert gh.exchanges(INSTALLATION) == 2  # the first token and one new one, then give up
    assert len(repo_calls(gh)) == 2
    assert "ghs_" not in str(failed.value)


async def test_installation_from_the_input_or_the_connector(opened: Opened, gh: Any) -> None:
    body = {"owner": OWNER, "repo": REPO, "issue_number": 1, "body": "hi"}
    await opened.github().act("github.create_comment", {**body, "installation_id": INSTALLATION})
    configured = app_config(opened.fakes, installation_id=INSTALLATION)
    await opened.github(configured, cache=False).act("github.create_comment", body)
    assert gh.requests(path="/repos/*/installation") == []  # no lookup was needed
    with pytest.raises(ActionFailed, match="404 to POST /app/installations/999/access_tokens"):
        await opened.github().act("github.create_comment", {**body, "installation_id": 999})


async def test_an_app_key_github_does_not_know_is_refused(opened: Opened, gh: Any) -> None:
    wrong = app_config(opened.fakes).model_copy(update={"private_key": generate_app_key()[0]})
    with pytest.raises(ActionFailed, match="A JSON web token could not be decoded") as failed:
        await opened.github(wrong).act(
            "github.create_comment",
            {"owner": OWNER, "repo": REPO, "issue_number": 1, "body": "x"},
        )
    assert failed.value.status == 401 and repo_calls(gh) == []
    broken = app_config(opened.fakes).model_copy(update={"private_key": "not a key"})
    with pytest.raises(ActionFailed, match="private_key is not a usable RSA key"):
        await opened.github(broken).act(
            "github.create_comment",
            {"owner": OWNER, "repo": REPO, "issue_number": 1, "body": "x", "installation_id": 1},
        )


async def test_tokens_are_stored_encrypted_and_bound_to_their_key(
    connectors: Connectors, gh: Any, db: Database, tokens: TokenCache
) -> None:
    await connectors.act(
        "github.create_comment", {"owner": OWNER, "repo": REPO, "issue_number": 1, "body": "x"}
    )
    [call] = repo_calls(gh)
    token = call.header("authorization").removeprefix("Bearer ")
    key = f"github:github:{gh.base_url}:{INSTALLATION}"
    with sqlite3.connect(db.path) as raw:
        rows = raw.execute("SELECT key, ciphertext, expires_at FROM connector_tokens").fetchall()
    assert [r[0] for r in rows] == [key]
    assert token.encode() not in rows[0][1] and token[4:].encode() not in rows[0][1]
    found = await tokens.get(key)
    assert found is not None and found[0] == token
    assert abs(found[1] - (rows[0][2])) < 1e-6
    other = key.replace(str(INSTALLATION), "2002")
    await tokens.store.put_token(other, rows[0][1], rows[0][2])  # the row copied onto another key
    assert await tokens.get(other) is None


# -- token auth ------------------------------------------------------------------------------------
async def test_token_auth(opened: Opened, gh: Any, ghapplets_fakes: Any) -> None:
    token = httpx.post(
        f"{gh.base_url}/app/installations/{INSTALLATION}/access_tokens",
        headers={"Authorization": f"Bearer {ghapplets_fakes.app_jwt()}"},
    ).json()["token"]
    config = GithubConnector(kind="github", base_url=gh.base_url, token=token)
    connectors = opened.github(config)
    await connectors.act(
        "github.create_comment", {"owner": OWNER, "repo": REPO, "issue_number": 1, "body": "x"}
    )
    [call] = repo_calls(gh)
    assert call.header("authorization") == f"Bearer {token}"
    assert gh.exchanges(INSTALLATION) == 1  # the test's own: the connector minted nothing


async def test_bad_credentials_fail_without_the_token(opened: Opened, gh: Any) -> None:
    token = "ghs_" + "x" * 36
    config = GithubConnector(kind="github", base_url=gh.base_url, token=token)
    with pytest.raises(ActionFailed, match=r"GitHub answered 401 .*: Bad credentials") as failed:
        await opened.github(config).act(
            "github.create_comment", {"owner": OWNER, "repo": REPO, "issue_number": 1, "body": "x"}
        )
    assert failed.value.status == 401 and not failed.value.retryable
    assert token not in str(failed.value)


async def test_the_connector_opens_with_the_store_cache(
    ghapplets_fakes: Any, tokens: TokenCache, gh: Any
) -> None:
    connectors = await Connectors.open(
        {"gh": app_config(ghapplets_fakes)}, no_secrets, tokens=tokens
    )
    try:
        assert connectors.by_name["gh"].tokens is tokens
        await connectors.act(
            "github.add_labels",
            {"owner": OWNER, "repo": REPO, "issue_number": 1, "labels": ["a"]},
        )
        assert await tokens.get(f"github:gh:{gh.base_url}:{INSTALLATION}") is not None
    finally:
        await connectors.aclose()


# -- the githubkit client (ctx.github) ------------------------------------------------------------
async def test_the_client_shares_the_actions_tokens(opened: Opened, gh: Any) -> None:
    connectors = opened.github()
    connector = connectors.by_name["github"]
    await connectors.act(
        "github.create_comment", {"owner": OWNER, "repo": REPO, "issue_number": 1, "body": "a"}
    )
    client = connector.client(INSTALLATION)
    answer = await client.rest.issues.async_create_comment(OWNER, REPO, 1, body="b")
    assert answer.parsed_data.body == "b"  # GitHub's wire format, as githubkit's models read it
    other_process = opened.github().by_name["github"].client(INSTALLATION)
    issue = await other_process.rest.issues.async_get(OWNER, REPO, 1)
    assert issue.parsed_data.comments == 2
    assert gh.exchanges(INSTALLATION) == 1
    calls = repo_calls(gh)
    assert len({c.header("authorization") for c in calls}) == 1
    assert calls[1].header("x-github-api-version") == LATEST_VERSION  # githubkit's typed API


async def test_the_client_asks_for_the_repositorys_installation(opened: Opened, gh: Any) -> None:
    client = opened.github().by_name["github"].client()
    await client.rest.issues.async_create_comment(OWNER, REPO, 1, body="b")
    assert len(gh.requests(path="/repos/*/installation")) == 1
    with pytest.raises(RequestError) as missing:  # not a repository's endpoint: which one?
        await client.rest.apps.async_list_repos_accessible_to_installation()
    error = action_error(missing.value)
    assert isinstance(error, ActionInputInvalid)
    assert "the event names none (installation.id)" in str(error)
    configured = app_config(opened.fakes, installation_id=INSTALLATION)
    pinned = opened.github(configured).by_name["github"].client()
    listed = await pinned.rest.apps.async_list_repos_accessible_to_installation()
    assert [r["full_name"] for r in listed.json()["repositories"]] == [FULL]


async def test_the_clients_errors_are_githubkits_and_map_to_the_actions(
    connectors: Connectors, gh: Any
) -> None:
    client = connectors.by_name["github"].client(INSTALLATION)
    with pytest.raises(RequestFailed) as missing:
        await client.rest.issues.async_get(OWNER, REPO, 404)
    assert missing.value.response.status_code == 404
    error = action_error(missing.value)
    assert isinstance(error, ActionFailed) and error.status == 404
    assert str(error) == f"GitHub answered 404 to GET /repos/{FULL}/issues/404: Not Found"
    gh.inject(429, retry_after=30, path=f"/repos/{FULL}/issues/*")
    started = time.monotonic()
    with pytest.raises(SecondaryRateLimitExceeded) as secondary:
        await client.rest.issues.async_create_comment(OWNER, REPO, 1, body="x")
    gh.inject(403, path=f"/repos/{FULL}/issues/*")
    with pytest.raises(PrimaryRateLimitExceeded) as primary:
        await client.rest.issues.async_create_comment(OWNER, REPO, 1, body="x")
    assert time.monotonic() - started < 10  # raised at once, not slept on
    limited = action_error(secondary.value)
    assert isinstance(limited, ActionUnavailable) and limited.retry_after == 30.0
    spent = action_error(primary.value)
    assert isinstance(spent, ActionUnavailable) and spent.retry_after is not None
    assert 3000 < spent.retry_after <= 3600  # X-RateLimit-Reset, an hour's window
    assert gh.repo(FULL).comments == []


async def test_a_ghes_client_and_its_errors_speak_of_api_paths(opened: Opened, gh: Any) -> None:
    config = app_config(opened.fakes).model_copy(update={"base_url": f"{gh.base_url}/api/v3/"})
    connectors = opened.github(config)
    client = connectors.by_name["github"].client(INSTALLATION)
    await client.rest.issues.async_create_comment(OWNER, REPO, 1, body="on GHES")
    [posted] = gh.requests(path="/api/v3/repos/*")
    assert posted.path == f"/api/v3/repos/{FULL}/issues/1/comments"
    with pytest.raises(ActionFailed, match=f"404 to GET /repos/{FULL}/issues/9: Not Found"):
        await connectors.act("github.request", {"method": "GET", "path": f"/repos/{FULL}/issues/9"})


async def test_a_token_connectors_client(opened: Opened, gh: Any) -> None:
    config = GithubConnector(kind="github", base_url=gh.base_url, token="ghp_" + "t" * 36)
    client = opened.github(config).by_name["github"].client(INSTALLATION)
    with pytest.raises(RequestFailed) as refused:
        await client.rest.issues.async_get(OWNER, REPO, 1)
    assert refused.value.response.status_code == 401
    [call] = gh.requests()
    assert call.header("authorization") == "Bearer ghp_" + "t" * 36


def test_an_app_client_is_async_only(connectors: Connectors) -> None:
    client = connectors.by_name["github"].client(INSTALLATION)
    with pytest.raises(RequestError) as sync:
        client.rest.issues.get(OWNER, REPO, 1)
    assert "use githubkit's async methods" in str(sync.value.exc)


# -- errors ----------------------------------------------------------------------------------------
async def test_rate_limits_and_server_errors_are_retried(connectors: Connectors, gh: Any) -> None:
    body = {"owner": OWNER, "repo": REPO, "issue_number": 1, "body": "x"}
    await connectors.act("github.create_comment", body)  # a token in hand: faults hit the call
    gh.inject(403, retry_after=30, path=f"/repos/{FULL}/issues/*")
    with pytest.raises(ActionUnavailable, match="secondary rate limit") as secondary:
        await connectors.act("github.create_comment", body)
    assert secondary.value.status == 403 and secondary.value.retry_after == 30.0
    gh.inject(429, retry_after=5, path=f"/repos/{FULL}/issues/*")
    with pytest.raises(ActionUnavailable) as too_many:
        await connectors.act("github.create_comment", body)
    assert too_many.value.status == 429 and too_many.value.retry_after == 5.0
    gh.inject(502, path=f"/repos/{FULL}/issues/*")
    with pytest.raises(ActionUnavailable, match="GitHub answered 502") as bad_gateway:
        await connectors.act("github.create_comment", body)
    assert bad_gateway.value.retryable
    gh.inject(503, path="/app/installations/*")  # the token exchange is retried like the rest
    gh.expire_tokens()
    with pytest.raises(ActionUnavailable, match="503 to POST /app/installations/2001"):
        await connectors.act("github.create_comment", body)
    await connectors.act("github.create_comment", body)
    assert len(gh.repo(FULL).comments) == 2


async def test_a_rate_limit_is_the_jobs_to_wait_for_not_the_process(
    connectors: Connectors, gh: Any
) -> None:
    body = {"owner": OWNER, "repo": REPO, "issue_number": 1, "body": "x"}
    await connectors.act("github.create_comment", body)
    comments = f"/repos/{FULL}/issues/*"
    started = time.monotonic()
    gh.inject(429, retry_after=30, path=comments)
    with pytest.raises(ActionUnavailable, match="secondary rate limit") as secondary:
        await connectors.act("github.create_comment", body)
    assert (secondary.value.status, secondary.value.retry_after) == (429, 30.0)
    gh.inject(403, path=comments)  # the primary limit: X-RateLimit-Remaining 0 until the reset
    with pytest.raises(ActionUnavailable, match="API rate limit exceeded for installation"):
        await connectors.act("github.create_comment", body)
    gh.inject(503, path=comments)
    with pytest.raises(ActionUnavailable, match="GitHub answered 503"):
        await connectors.act("github.create_comment", body)
    assert time.monotonic() - started < 10  # nothing slept: githubkit's auto_retry is off
    limited = repo_calls(gh)[1:]
    assert [r.status for r in limited] == [429, 403, 503]  # each sent once, none retried here


async def test_the_primary_limit_retries_after_its_reset(connectors: Connectors, gh: Any) -> None:
    body = {"owner": OWNER, "repo": REPO, "issue_number": 1, "body": "x"}
    await connectors.act("github.create_comment", body)
    gh.inject(403, path=f"/repos/{FULL}/issues/*")
    with pytest.raises(ActionUnavailable) as primary:
        await connectors.act("github.create_comment", body)
    assert primary.value.status == 403 and primary.value.retryable
    [_, call] = repo_calls(gh)
    assert call.header("authorization").startswith("Bearer ghs_")
    reset = float(
        httpx.get(
            f"{gh.base_url}/repos/{FULL}/issues/1",
            headers={"authorization": call.header("authorization")},
        ).headers["x-ratelimit-reset"]
    )
    assert primary.value.retry_after is not None
    assert abs(primary.value.retry_after - (reset - time.time())) < 5  # X-RateLimit-Reset


def test_github_rate_limits() -> None:
    primary = httpx.Response(403, headers={"x-ratelimit-remaining": "0"}, json={})
    secondary = httpx.Response(403, headers={"retry-after": "60"}, json={})
    forbidden = httpx.Response(403, headers={"x-ratelimit-remaining": "4999"}, json={})
    assert rate_limited(primary) and rate_limited(secondary) and not rate_limited(forbidden)
    assert rate_limited(httpx.Response(429, headers={"retry-after": "1"}))
    assert not rate_limited(httpx.Response(401, headers={"retry-after": "1"}))


R = {"owner": OWNER, "repo": REPO}
COMMENT = {**R, "issue_number": 1, "body": "x"}
STATUS = {**R, "sha": SHA, "state": "success", "context": "c"}
BAD_PATH = "must be an API path|has an encoded"
BAD_INPUT = [
    ("github.create_comment", {**COMMENT, "owner": "../x"}, "owner"),
    ("github.create_comment", {**COMMENT, "owner": "octo-org\n"}, "owner"),
    ("github.create_comment", {**COMMENT, "owner": "-octo"}, "owner"),
    ("github.create_comment", {**COMMENT, "repo": ".."}, "repo"),
    ("github.create_comment", {**COMMENT, "repo": "a/b"}, "repo"),
    ("github.create_comment", {**COMMENT, "repo": "hello-world\n"}, "repo"),
    ("github.create_comment", {**COMMENT, "issue_number": 0}, "issue_number"),
    ("github.create_comment", {**COMMENT, "installation_id": "2001"}, "installation_id"),
    ("github.create_comment", {**R, "issue_number": 1}, "body"),
    ("github.add_labels", {**R, "issue_number": 1, "labels": []}, "labels"),
    ("github.create_commit_status", {**STATUS, "sha": "xyz1234"}, "(?i)sha"),
    ("github.create_commit_status", {**STATUS, "sha": SHA + "\n"}, "(?i)sha"),
    ("github.create_commit_status", {**STATUS, "sha": "abc123"}, "(?i)sha"),
    ("github.create_commit_status", {**STATUS, "state": "done"}, "state"),
    ("github.create_commit_status", {**R, "sha": SHA, "state": "success"}, "context"),
    ("github.create_check_run", {**R, "name": "n", "head_sha": "abc"}, "head_sha"),
    ("github.create_deployment", {**R, "ref": "main"}, "environment"),
    ("github.create_deployment_status", {**R, "deployment_id": 1, "state": "ok"}, "state"),
    (
        "github.repository_dispatch",
        {**R, "event_type": "e", "client_payload": {str(i): i for i in range(11)}},
        "client_payload",
    ),
    ("github.request", {"method": "HEAD", "path": "/repos/o/r"}, "method"),
    ("github.request", {"method": "GET", "path": "repos/o/r"}, "path: .*does not match"),
    (
        "github.request",
        {"method": "GET", "path": "//evil.example.com/x", "installation_id": 1},
        BAD_PATH,
    ),
    (
        "github.request",
        {"method": "GET", "path": "/repos/o/r/../../user", "installation_id": 1},
        BAD_PATH,
    ),
    (
        "github.request",
        {"method": "GET", "path": "/repos/o/r/%2e%2e/x", "installation_id": 1},
        BAD_PATH,
    ),
    (
        "github.request",
        {"method": "GET", "path": "/repos/o/r#frag", "installation_id": 1},
        BAD_PATH,
    ),
    ("github.request", {"method": "GET", "path": "/repos/o/r\n", "installation_id": 1}, BAD_PATH),
    ("github.request", {"method": "GET", "path": "/repos/o/r", "extra": 1}, "extra"),
]


@pytest.mark.parametrize(("name", "data", "problem"), BAD_INPUT)
async def test_bad_input_is_refused_before_any_request(
    connectors: Connectors, gh: Any, name: str, data: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ActionInputInvalid, match=problem):
        await connectors.act(name, data)
    assert gh.requests() == []


def test_an_installation_token_refuses_a_synchronous_client_and_says_why() -> None:
    auth = InstallationToken(None, None, hint="")  # type: ignore[arg-type]
    flow = auth.sync_auth_flow(httpx.Request("GET", "https://api.github.com/"))
    with pytest.raises(RuntimeError, match=r"^a GitHub App's installation token is minted async"):
        next(flow)


def test_a_timeout_or_no_connection_is_an_unavailable_action_naming_the_route() -> None:
    request = httpx.Request("GET", "https://api.github.com/repos/o/r/issues")
    timeout = action_error(RequestTimeout(httpx.ReadTimeout("slow", request=request)))
    assert isinstance(timeout, ActionUnavailable)
    assert timeout.message == "GitHub did not answer GET /repos/o/r/issues in time"
    ghes = httpx.Request("GET", "https://ghe.example.com/api/v3/repos/o/r/issues")
    timeout = action_error(RequestTimeout(httpx.ReadTimeout("slow", request=ghes)), "/api/v3/")
    assert timeout is not None and timeout.message.endswith(" GET /repos/o/r/issues in time")
    outside = httpx.Request("GET", "https://ghe.example.com/login/oauth")  # not under the root
    timeout = action_error(RequestTimeout(httpx.ReadTimeout("slow", request=outside)), "/api/v3/")
    assert timeout is not None and timeout.message.endswith(" GET /login/oauth in time")
    refused = action_error(RequestError(httpx.ConnectError("refused", request=request)))
    assert isinstance(refused, ActionUnavailable)
    assert refused.message == "cannot reach GitHub: ConnectError"
