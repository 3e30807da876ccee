"""Actions from inside a job, through the real worker and the fakes: an exec applet runs
``ghapplets action`` and an HTTP applet calls the URL it is handed, both through the worker's
local action endpoint with a token valid only for that job (and no connector credential in the
applet's environment); a Python applet's GitHub actions act as the event's App installation."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from ghapplets.fakes.config import JiraConfig
from ghapplets.sources import fixtures
from ghapplets.store.records import AttemptOutcome, AttemptRecord, JobRecord, JobStatus
from ghapplets.testing.gateway import running_gateway
from tests.conftest import ProjectBuilder

JIRA_USER = JiraConfig().users[0]
JIRA_TOKEN = JIRA_USER.api_token or ""
BIN = str(Path(sys.executable).parent)  # where this environment's `ghapplets` is

EXEC_SCRIPT = """#!/bin/sh
env > env.txt
printf '%s\\n%s\\n' "$GHAPPLETS_ACTION_URL" "$GHAPPLETS_ACTION_TOKEN" > grant.txt
exec ghapplets action "$ACTION" --input "$INPUT"
"""


def jira_connector(url: str) -> str:
    return (
        f"connectors:\n  jira:\n    kind: jira\n    flavor: cloud\n    base_url: {url}\n"
        f"    email: {JIRA_USER.email}\n    token: ${{env:JIRA_TOKEN}}\n"
    )


def exec_project(
    root: Path, fakes: Any, action: str, data: Any, allowed: str, attempts: int = 1
) -> Path:
    builder = ProjectBuilder(root)
    manifest = (
        f"on: [com.github.issues.opened]\nconnectors: [{allowed}]\n"
        f"retry: {{max_attempts: {attempts}}}\nenv:\n"
        f"  PATH: {BIN}:/usr/bin:/bin\n  ACTION: {action}\n  INPUT: '{json.dumps(data)}'\n"
    )
    builder.exec_applet("commenter", EXEC_SCRIPT, manifest)
    builder.extra = jira_connector(fakes.jira.base_url) + (
        "  splunk:\n    kind: splunk\n    url: http://127.0.0.1:9\n    token: unused\n"
    )
    return builder.build()


@pytest.fixture
def jira_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIRA_TOKEN", JIRA_TOKEN)


async def comment_once(
    tmp_path: Path, fakes: Any, body: str, allowed: str = "jira"
) -> tuple[Path, JobRecord, AttemptRecord]:
    """One webhook through the platform, whose exec applet comments on PROJ-1 through
    ``ghapplets action``: the project, the finished job and its attempt."""
    fakes.jira.add_issue("PROJ", "Existing")
    data = {"issue": "PROJ-1", "body": body}
    root = exec_project(tmp_path / "p", fakes, "jira.add_comment", data, allowed)
    async with running_gateway(root, tmp_path / "data") as gw:
        await gw.send("github", "issues.opened", delivery_id="x-1")
        [job] = await gw.wait_for_jobs("x-1", count=1, timeout=30)
        [attempt] = await gw.platform.backends.store.list_attempts(job.id)
    return root, job, attempt


@pytest.mark.usefixtures("jira_env")
async def test_an_exec_applet_comments_through_the_worker(
    tmp_path: Path, ghapplets_fakes: Any
) -> None:
    jira = ghapplets_fakes.jira
    root, job, attempt = await comment_once(tmp_path, ghapplets_fakes, "from an exec applet")
    assert job.status == JobStatus.SUCCEEDED, attempt
    [comment] = jira.issue("PROJ-1").comments
    assert comment.body.render("2") == "from an exec applet"
    assert job.result["id"] == comment.id  # the output, printed
    folder = root / "applets" / "commenter"
    env = (folder / "env.txt").read_text()
    assert JIRA_TOKEN not in env and "JIRA_TOKEN" not in env  # no credential reaches the child
    url, token = (folder / "grant.txt").read_text().split()
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1/actions")
    assert token and token not in json.dumps(job.result)


@pytest.mark.usefixtures("jira_env")
async def test_the_endpoint_refuses_a_dead_jobs_token(tmp_path: Path, ghapplets_fakes: Any) -> None:
    jira = ghapplets_fakes.jira
    jira.add_issue("PROJ", "Existing")
    data = {"issue": "PROJ-1", "body": "once"}
    root = exec_project(tmp_path / "p", ghapplets_fakes, "jira.add_comment", data, "jira")
    async with running_gateway(root, tmp_path / "data") as gw:
        await gw.send("github", "issues.opened", delivery_id="x-2")
        await gw.wait_for_jobs("x-2", count=1, timeout=30)
        url, token = (root / "applets" / "commenter" / "grant.txt").read_text().split()
        async with httpx.AsyncClient(trust_env=False) as client:
            late = await client.post(
                f"{url}/jira.add_comment", json=data, headers={"authorization": f"Bearer {token}"}
            )
    assert late.status_code == 401
    assert len(jira.issue("PROJ-1").comments) == 1


@pytest.mark.usefixtures("jira_env")
async def test_an_exec_applet_cannot_use_a_connector_it_did_not_declare(
    tmp_path: Path, ghapplets_fakes: Any
) -> None:
    jira = ghapplets_fakes.jira
    _, job, attempt = await comment_once(tmp_path, ghapplets_fakes, "not allowed", "splunk")
    assert job.status == JobStatus.DEAD
    logs = "\n".join(attempt.logs or [])
    assert "ConnectorNotAllowed" in logs and "not in the applet's 'connectors:' list" in logs
    assert jira.issue("PROJ-1").comments == []
    assert jira.requests() == []


@pytest.mark.usefixtures("jira_env")
async def test_a_vendor_outage_makes_the_exec_applet_retryable(
    tmp_path: Path, ghapplets_fakes: Any
) -> None:
    ghapplets_fakes.jira.inject(503, times=100)
    _, _, attempt = await comment_once(tmp_path, ghapplets_fakes, "later")
    assert attempt.outcome == AttemptOutcome.RETRYABLE  # exit 75: the job is tried again
    assert "ActionUnavailable" in "\n".join(attempt.logs or [])


@pytest.mark.usefixtures("jira_env")
async def test_the_vendors_retry_after_reaches_the_exec_applets_job(
    tmp_path: Path, ghapplets_fakes: Any
) -> None:
    jira = ghapplets_fakes.jira
    jira.add_issue("PROJ", "Existing")
    jira.inject(429, retry_after=40, times=100)
    data = {"issue": "PROJ-1", "body": "later"}
    root = exec_project(tmp_path / "p", ghapplets_fakes, "jira.add_comment", data, "jira", 2)
    async with running_gateway(root, tmp_path / "data") as gw:
        await gw.send("github", "issues.opened", delivery_id="x-5")
        store = gw.platform.backends.store
        deadline = time.monotonic() + 30
        while True:
            jobs = await store.list_jobs(delivery_id="x-5")
            if jobs and jobs[0].status == JobStatus.RETRYING:
                break
            assert time.monotonic() < deadline, jobs
            await asyncio.sleep(0.05)
        [attempt] = await store.list_attempts(jobs[0].id)
    # `exec ghapplets action` printed the error object: Jira's delay, not the usual backoff
    assert attempt.error_type == "ActionUnavailable"
    assert jobs[0].next_attempt_at is not None
    assert jobs[0].next_attempt_at >= attempt.finished_at + 39


# -- an HTTP applet --------------------------------------------------------------------------


class _CallsBack(BaseHTTPRequestHandler):
    """An HTTP applet that runs the action it is told to on the URL and token it is handed."""

    seen: list[dict[str, str]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        type(self).seen.append(headers)
        url, token = headers["x-ghapplets-action-url"], headers["x-ghapplets-action-token"]
        answer = httpx.post(
            f"{url}/jira.add_comment",
            json={"issue": "PROJ-1", "body": "from an HTTP applet"},
            headers={"authorization": f"Bearer {token}"},
            trust_env=False,
            timeout=10,
        )
        body = json.dumps(answer.json()).encode()
        self.send_response(200 if answer.status_code == 200 else 500)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def calls_back() -> Iterator[str]:
    _CallsBack.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CallsBack)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.usefixtures("jira_env")
async def test_an_http_applet_is_handed_the_endpoint_and_a_token(
    tmp_path: Path, ghapplets_fakes: Any, calls_back: str
) -> None:
    jira = ghapplets_fakes.jira
    jira.add_issue("PROJ", "Existing")
    builder = ProjectBuilder(tmp_path / "p")
    folder = builder.root / "applets" / "remote"
    folder.mkdir(parents=True)
    (folder / "applet.yaml").write_text(
        f"name: remote\nruntime: http\nurl: {calls_back}\non: [com.github.issues.opened]\n"
        "connectors: [jira]\nretry: {max_attempts: 1}\n"
    )
    builder.extra = jira_connector(jira.base_url)
    root = builder.build()
    async with running_gateway(root, tmp_path / "data") as gw:
        await gw.send("github", "issues.opened", delivery_id="h-1")
        [job] = await gw.wait_for_jobs("h-1", count=1, timeout=30)
    assert job.status == JobStatus.SUCCEEDED
    [comment] = jira.issue("PROJ-1").comments
    assert comment.body.render("2") == "from an HTTP applet"
    [headers] = _CallsBack.seen
    assert JIRA_TOKEN not in json.dumps(headers)


# -- a Python applet: the event's installation -----------------------------------------------

GITHUB_HANDLER = """
from ghapplets import Applet

app = Applet("thanks")

@app.on("com.github.issues.opened")
async def thank(ctx):
    return await ctx.action("github.create_comment", {
        "owner": "octo-org", "repo": "hello-world",
        "issue_number": ctx.data["issue"]["number"], "body": "Thanks!",
    })
"""


@pytest.mark.parametrize(("installation", "succeeds"), [(2001, True), (4242, False)])
async def test_a_github_action_acts_as_the_events_installation(
    tmp_path: Path,
    ghapplets_fakes: Any,
    monkeypatch: pytest.MonkeyPatch,
    installation: int,
    succeeds: bool,
) -> None:
    github = ghapplets_fakes.github
    github.add_issue("octo-org/hello-world", 1347)
    monkeypatch.setenv("GH_APP_KEY", ghapplets_fakes.private_keys[1001])
    builder = ProjectBuilder(tmp_path / "p")
    builder.python_applet(
        "thanks",
        GITHUB_HANDLER,
        "on: [com.github.issues.opened]\nconnectors: [github]\nretry: {max_attempts: 1}\n",
    )
    builder.extra = (
        f"connectors:\n  github:\n    kind: github\n    base_url: {github.base_url}\n"
        "    app_id: 1001\n    private_key: ${env:GH_APP_KEY}\n"
    )
    root = builder.build()
    payload = fixtures.load("github", "issues.opened").payload
    payload = {**payload, "installation": {"id": installation}}
    async with running_gateway(root, tmp_path / "data") as gw:
        await gw.send("github", "issues.opened", payload=payload, delivery_id="g-1")
        [job] = await gw.wait_for_jobs("g-1", count=1, timeout=30)
    # the installation came from the event: GitHub was never asked which one the repo has
    assert github.requests("/repos/*/installation") == []
    assert (job.status == JobStatus.SUCCEEDED) is succeeds
    if succeeds:
        assert github.exchanges(2001) == 1
        [posted] = github.requests("/repos/octo-org/hello-world/issues/1347/comments")
        assert posted.json() == {"body": "Thanks!"}
    else:  # 4242 is not an installation of this App: GitHub's 404, permanent
        assert github.exchanges(2001) == 0


@pytest.mark.usefixtures("jira_env")
async def test_an_exec_applet_with_no_connectors_is_handed_no_endpoint(
    tmp_path: Path, ghapplets_fakes: Any
) -> None:
    """Connectors configured for the project, none declared by the applet: its process gets
    neither the endpoint's URL nor a token (a token that may do nothing is still a token)."""
    root, job, _ = await comment_once(tmp_path, ghapplets_fakes, "no grant", "")
    grant = (root / "applets" / "commenter" / "grant.txt").read_text()
    assert grant.split() == []
    assert job.status == JobStatus.DEAD  # `ghapplets action` has no endpoint to call
    assert ghapplets_fakes.jira.requests() == []
