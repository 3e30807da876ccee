"""``ctx.github`` (a githubkit client), ``ctx.jira`` and ``ctx.client(name)`` in Python applets,
through the real worker and the fakes: the event's App installation and the actions' token
cache, the manifest's ``connectors:``, GitHub's errors and rate limits as job outcomes; and the
choice of a client among the project's connectors."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import pytest
from githubkit.exception import RequestError

from ghapplets.connectors.clients import AppletClients
from ghapplets.connectors.config import GithubConnector, SplunkConnector
from ghapplets.connectors.github import GitHub
from ghapplets.connectors.http import VendorClient
from ghapplets.connectors.registry import Connectors
from ghapplets.connectors.splunk import Splunk
from ghapplets.events import CloudEvent
from ghapplets.exceptions import ActionInputInvalid, ConnectorNotAllowed
from ghapplets.fakes.config import JiraConfig
from ghapplets.sdk import Context
from ghapplets.sources import fixtures
from ghapplets.store.records import AttemptOutcome, JobStatus
from ghapplets.testing.gateway import GatewayClient, running_gateway
from tests.conftest import ProjectBuilder

INSTALLATION = 2001
FULL = "octo-org/hello-world"
JIRA_USER = JiraConfig().users[0]


def github_connector(name: str, base_url: str) -> str:
    return (
        f"  {name}:\n    kind: github\n    base_url: {base_url}\n    app_id: 1001\n"
        "    private_key: ${env:GH_APP_KEY}\n"
    )


def project(root: Path, code: str, *, connectors: str, extra: str, attempts: int = 1) -> Path:
    builder = ProjectBuilder(root)
    builder.python_applet(
        "bot",
        code,
        f"on: [com.github.issues.opened]\nconnectors: [{connectors}]\n"
        f"retry: {{max_attempts: {attempts}, initial_delay: 0.1}}\n",
    )
    builder.extra = "connectors:\n" + extra
    return builder.build()


@pytest.fixture
def github(ghapplets_fakes: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The GitHub fake, with the issue of the ``issues.opened`` fixture."""
    monkeypatch.setenv("GH_APP_KEY", ghapplets_fakes.private_keys[1001])
    monkeypatch.setenv("JIRA_TOKEN", JIRA_USER.api_token or "")
    ghapplets_fakes.github.add_issue(FULL, 1347)
    return ghapplets_fakes.github


async def send_issue_opened(
    gw: GatewayClient, delivery: str, installation: int | None, **extra: Any
) -> None:
    payload = {**fixtures.load("github", "issues.opened").payload, **extra}
    payload.pop("installation", None)
    if installation is not None:
        payload["installation"] = {"id": installation}
    await gw.send("github", "issues.opened", payload=payload, delivery_id=delivery)


async def one_job(gw: GatewayClient, delivery: str) -> tuple[Any, Any]:
    [job] = await gw.wait_for_jobs(delivery, count=1, timeout=30)
    [attempt] = await gw.platform.backends.store.list_attempts(job.id)
    return job, attempt


async def job_in(gw: GatewayClient, delivery: str, status: JobStatus) -> Any:
    """The delivery's one job once it is in ``status`` (or as it is after 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        jobs = await gw.platform.backends.store.list_jobs(delivery_id=delivery)
        if (jobs and jobs[0].status == status) or time.monotonic() > deadline:
            [job] = jobs
            return job
        await asyncio.sleep(0.05)


# -- ctx.github ------------------------------------------------------------------------------------

BOTH = """
from ghapplets import Applet

app = Applet("bot")

@app.on("com.github.issues.opened")
async def thank(ctx):
    number = ctx.data["issue"]["number"]
    made = await ctx.action("github.create_comment", {
        "owner": "octo-org", "repo": "hello-world", "issue_number": number,
        "body": "by ctx.action",
    })
    answer = await ctx.github.rest.issues.async_create_comment(
        "octo-org", "hello-world", number, body="by ctx.github"
    )
    issue = await ctx.github.arequest("GET", f"/repos/octo-org/hello-world/issues/{number}")
    return {
        "action": made["id"],
        "client": answer.parsed_data.id,
        "comments": issue.json()["comments"],
        "same": ctx.github is ctx.github,
    }
"""


async def test_ctx_github_comments_as_the_events_installation(tmp_path: Path, github: Any) -> None:
    extra = github_connector("github", github.base_url)
    root = project(tmp_path / "p", BOTH, connectors="github", extra=extra)
    async with running_gateway(root, tmp_path / "data") as gw:
        await send_issue_opened(gw, "c-1", INSTALLATION)
        job, attempt = await one_job(gw, "c-1")
    assert job.status == JobStatus.SUCCEEDED, attempt
    by_action, by_client = github.repo(FULL).comments
    assert job.result == {
        "action": by_action["id"],
        "client": by_client["id"],
        "comments": 2,
        "same": True,
    }
    assert (by_action["body"], by_client["body"]) == ("by ctx.action", "by ctx.github")
    # one token for the installation, shared by ctx.action and ctx.github
    assert github.exchanges(INSTALLATION) == 1
    assert github.requests("/repos/*/installation") == []  # the event named the installation
    calls = github.requests("/repos/octo-org/hello-world/issues/1347*")
    assert len(calls) == 3
    assert len({c.header("authorization") for c in calls}) == 1
    assert calls[0].header("authorization").startswith("Bearer ghs_")
    assert calls[1].json() == {"body": "by ctx.github"}
    assert calls[1].header("user-agent") == "ghapplets"


async def test_ctx_github_needs_the_connector_in_the_manifest(
    tmp_path: Path, github: Any, ghapplets_fakes: Any
) -> None:
    extra = github_connector("github", github.base_url) + (
        f"  jira:\n    kind: jira\n    base_url: {ghapplets_fakes.jira.base_url}\n"
        f"    email: {JIRA_USER.email}\n    token: ${{env:JIRA_TOKEN}}\n"
    )
    root = project(tmp_path / "p", ERRORS, connectors="jira", extra=extra)
    async with running_gateway(root, tmp_path / "data") as gw:
        await send_issue_opened(gw, "c-2", INSTALLATION)
        job, attempt = await one_job(gw, "c-2")
    assert job.status == JobStatus.DEAD
    assert attempt.error_type == "ConnectorNotAllowed"
    assert attempt.error_message == (
        "no github connector is in the applet's 'connectors:' list (the project has: github)"
    )
    assert github.requests() == []


ERRORS = """
from githubkit.exception import RequestFailed
from ghapplets import Applet

app = Applet("bot")

@app.on("com.github.issues.opened")
async def comment(ctx):
    try:
        await ctx.github.rest.issues.async_get("octo-org", "hello-world", 999)
    except RequestFailed as exc:  # githubkit's own exception: the handler decides
        ctx.log.info("no such issue", status=exc.response.status_code)
    await ctx.github.rest.issues.async_create_comment(  # the installation cannot see it
        "octo-org", ctx.data.get("repo", "hello-world"), 1347, body="maybe"
    )
"""


async def test_a_github_refusal_through_ctx_github_dead_letters_the_job(
    tmp_path: Path, github: Any
) -> None:
    github.add_repo("octo-org/elsewhere")  # not in the installation's repositories
    extra = github_connector("github", github.base_url)
    root = project(tmp_path / "p", ERRORS, connectors="github", extra=extra)
    async with running_gateway(root, tmp_path / "data") as gw:
        await send_issue_opened(gw, "c-3", INSTALLATION, repo="elsewhere")
        job, attempt = await one_job(gw, "c-3")
    assert job.status == JobStatus.DEAD
    assert attempt.outcome == AttemptOutcome.PERMANENT
    assert attempt.error_type == "ActionFailed"
    assert attempt.error_message == (
        "GitHub answered 404 to POST /repos/octo-org/elsewhere/issues/1347/comments: Not Found"
    )
    assert any("no such issue" in line and "status=404" in line for line in attempt.logs)
    assert github.repo("octo-org/elsewhere").comments == []


async def test_a_rate_limit_through_ctx_github_retries_the_job_after_retry_after(
    tmp_path: Path, github: Any
) -> None:
    github.inject(429, retry_after=30, path=f"/repos/{FULL}/issues/1347/comments")
    root = project(
        tmp_path / "p",
        ERRORS,
        connectors="github",
        extra=github_connector("github", github.base_url),
        attempts=2,
    )
    async with running_gateway(root, tmp_path / "data") as gw:
        await send_issue_opened(gw, "c-4", INSTALLATION)
        job = await job_in(gw, "c-4", JobStatus.RETRYING)
        [attempt] = await gw.platform.backends.store.list_attempts(job.id)
    assert job.status == JobStatus.RETRYING, attempt
    assert (attempt.outcome, attempt.error_type) == (AttemptOutcome.RETRYABLE, "ActionUnavailable")
    assert "You have exceeded a secondary rate limit" in (attempt.error_message or "")
    assert attempt.finished_at - attempt.started_at < 10  # nothing slept in the process
    assert job.next_attempt_at is not None
    assert job.next_attempt_at >= attempt.finished_at + 29.9  # the worker waits Retry-After
    assert len(github.requests(f"/repos/{FULL}/issues/1347/comments")) == 1


TWO = """
from ghapplets import Applet
from ghapplets.exceptions import ActionInputInvalid, ConnectorNotAllowed

app = Applet("bot")

@app.on("com.github.issues.opened")
async def comment(ctx):
    try:
        ctx.github
    except ConnectorNotAllowed as exc:
        ambiguous = str(exc)
    answer = await ctx.client("ghes").rest.issues.async_create_comment(
        "octo-org", "hello-world", 1347, body="on GHES"
    )
    return {"ambiguous": ambiguous, "url": answer.parsed_data.url}
"""


async def test_two_github_connectors_are_told_apart_by_name(tmp_path: Path, github: Any) -> None:
    extra = github_connector("github", github.base_url) + github_connector(
        "ghes", f"{github.base_url}/api/v3"
    )
    root = project(tmp_path / "p", TWO, connectors="github, ghes", extra=extra)
    async with running_gateway(root, tmp_path / "data") as gw:
        await send_issue_opened(gw, "c-5", INSTALLATION)
        job, attempt = await one_job(gw, "c-5")
    assert job.status == JobStatus.SUCCEEDED, attempt
    assert job.result["ambiguous"] == (
        "ctx.github is ambiguous: the applet may use 2 github connectors (ghes, github); "
        "pick one with ctx.client('NAME')"
    )
    assert job.result["url"].startswith(f"{github.base_url}/api/v3/repos/{FULL}/issues/")
    [call] = github.requests("/api/v3/repos/*")
    assert call.header("authorization").startswith("Bearer ghs_")
    assert github.exchanges(INSTALLATION) == 1  # minted by the GHES connector, for its own use


# -- ctx.jira --------------------------------------------------------------------------------------

JIRA = """
from ghapplets import Applet

app = Applet("bot")

@app.on("com.github.issues.opened")
async def read(ctx):
    issue = await ctx.jira.json("GET", "/rest/api/3/issue/PROJ-1")
    return issue["fields"]["summary"]
"""


async def test_ctx_jira_is_the_connectors_authenticated_client(
    tmp_path: Path, github: Any, ghapplets_fakes: Any
) -> None:
    jira = ghapplets_fakes.jira
    jira.add_issue("PROJ", "Existing")
    extra = (
        f"  jira:\n    kind: jira\n    base_url: {jira.base_url}\n"
        f"    email: {JIRA_USER.email}\n    token: ${{env:JIRA_TOKEN}}\n"
    )
    root = project(tmp_path / "p", JIRA, connectors="jira", extra=extra)
    async with running_gateway(root, tmp_path / "data") as gw:
        await send_issue_opened(gw, "j-1", INSTALLATION)
        job, attempt = await one_job(gw, "j-1")
    assert job.status == JobStatus.SUCCEEDED, attempt
    assert job.result == "Existing"
    [request] = jira.requests("/rest/api/3/issue/PROJ-1")
    assert request.header("authorization").startswith("Basic ")


# -- choosing a client, without a worker -----------------------------------------------------------


def splunk(name: str) -> Splunk:
    return Splunk(name, SplunkConnector(kind="splunk", url="http://127.0.0.1:9", token="t"))


@pytest.fixture
async def two_splunks() -> Any:
    connectors = Connectors({"hec": splunk("hec"), "audit": splunk("audit")})
    yield connectors
    await connectors.aclose()


def context(clients: AppletClients | None) -> Context:
    return Context(event=CloudEvent(id="e-1", type="t", source="s", data={}), clients=clients)


async def test_ctx_clients_follow_the_manifest(two_splunks: Connectors) -> None:
    one = context(AppletClients(two_splunks, allowed=["audit"], installation=None))
    assert isinstance(one.splunk, VendorClient) and one.splunk is one.client("audit")
    with pytest.raises(ConnectorNotAllowed, match="'hec' is not in the applet's 'connectors:'"):
        one.client("hec")
    with pytest.raises(
        ConnectorNotAllowed, match=r"no connector named 'nope' \(it has: audit, hec"
    ):
        one.client("nope")
    with pytest.raises(ConnectorNotAllowed, match="the project has no jira connector"):
        one.jira  # noqa: B018
    both = context(AppletClients(two_splunks, allowed=None, installation=None))
    with pytest.raises(ConnectorNotAllowed, match=r"ctx.splunk is ambiguous: .* \(audit, hec\)"):
        both.splunk  # noqa: B018
    none = context(AppletClients(two_splunks, allowed=[], installation=None))
    with pytest.raises(ConnectorNotAllowed, match=r"no splunk connector .* has: audit, hec\)"):
        none.splunk  # noqa: B018
    with pytest.raises(ConnectorNotAllowed, match="no connectors are available to this run"):
        context(None).github  # noqa: B018


async def test_a_vendor_client_stays_on_the_vendors_api(two_splunks: Connectors) -> None:
    client = context(AppletClients(two_splunks, allowed=["hec"], installation=None)).splunk
    for path in ("https://evil.example.com/x", "//evil.example.com/x", "/a/../b", "/a/%2e%2e/b"):
        with pytest.raises(ActionInputInvalid, match=r"^ctx\.splunk: path .*(API path|encoded)"):
            await client.request("GET", path)  # refused before any request: nothing listens


@pytest.mark.parametrize(("pinned", "acting_as"), [(None, 4242), (INSTALLATION, INSTALLATION)])
async def test_the_connectors_installation_wins_over_the_events(
    github: Any, ghapplets_fakes: Any, pinned: int | None, acting_as: int
) -> None:
    config = GithubConnector(
        kind="github",
        base_url=github.base_url,
        app_id=1001,
        private_key=ghapplets_fakes.private_keys[1001],
        installation_id=pinned,
    )
    connectors = Connectors({"github": GitHub("github", config, clock=ghapplets_fakes.clock.now)})
    try:
        ctx = context(AppletClients(connectors, allowed=["github"], installation=4242))
        with contextlib.suppress(RequestError):  # 4242 is no installation of the App
            await ctx.github.rest.issues.async_get("octo-org", "hello-world", 1347)
    finally:
        await connectors.aclose()
    [exchange] = github.requests("/app/installations/*/access_tokens")
    assert exchange.path == f"/app/installations/{acting_as}/access_tokens"
