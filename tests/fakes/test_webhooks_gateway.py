"""The webhooks the fakes send verify through the real gateway: a Jira transition (Cloud and
Data Center), a ServiceNow approval (bearer and HMAC), GitHub deliveries and redeliveries;
a fake signing with another secret is refused, so the verification is real."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from ghapplets.exceptions import NotFound
from ghapplets.fakes.config import (
    FakeName,
    FakesConfig,
    GitHubAppConfig,
    GitHubConfig,
    JiraConfig,
    JiraFlavor,
    ServiceNowConfig,
    ServiceNowWebhook,
    WebhookTarget,
)
from ghapplets.fakes.runner import serve_fakes
from ghapplets.platform import Platform
from ghapplets.store.records import DeliveryRecord
from tests.conftest import ProjectBuilder
from tests.fakes.conftest import INSTALLATION, app_headers, served_gateway

JIRA_SECRET = "jira-webhook-secret"
SN_SECRET = "servicenow-webhook-secret"
GH_SECRET = "github-webhook-secret"


def gateway_project(project: ProjectBuilder) -> Path:
    project.source("jira", f"kind: jira\nsecret: {JIRA_SECRET}")
    project.source("jira-dc", f"kind: jira\nsecret: {JIRA_SECRET}")
    project.source("servicenow", f"kind: servicenow\nsecret: {SN_SECRET}")
    project.source(
        "servicenow-hmac",
        f"kind: servicenow\nauth: hmac\nheader: X-Signature\nprefix: 'sha256='\n"
        f"encoding: base64\nsecret: {SN_SECRET}",
    )
    project.source("github", f"kind: github\nsecret: {GH_SECRET}")
    return project.build()


async def eventually(
    get: Callable[[], Awaitable[DeliveryRecord]], timeout: float = 10.0
) -> DeliveryRecord:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await get()
        except NotFound:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


def stored(platform: Platform, delivery_id: str, source: str) -> Callable[[], Awaitable[Any]]:
    return lambda: platform.backends.store.get_delivery(delivery_id, source)


async def test_a_jira_transition_webhook_verifies(project: ProjectBuilder, tmp_path: Path) -> None:
    async with served_gateway(gateway_project(project), tmp_path / "data") as (url, platform):
        config = FakesConfig(
            jira=JiraConfig(webhook=WebhookTarget(url=f"{url}/hooks/jira", secret=JIRA_SECRET)),
            jira_dc=JiraConfig(
                flavor=JiraFlavor.DATACENTER,
                webhook=WebhookTarget(url=f"{url}/hooks/jira-dc", secret=JIRA_SECRET),
            ),
        )
        with serve_fakes(config, only=[FakeName.JIRA, FakeName.JIRA_DC]) as fakes:
            fakes.jira.add_issue("PROJ", "Checkout fails", issuetype="Bug")
            sent = await fakes.jira.send_transition("PROJ-1", "Done")
            assert sent.outcome.status_code == 202, sent.outcome
            delivery_id = sent.webhook.headers["X-Atlassian-Webhook-Identifier"]
            assert sent.outcome.body.decode().find(delivery_id) >= 0
            record = await eventually(stored(platform, delivery_id, "jira"))
            assert record.type == "com.atlassian.jira.issue_updated"
            assert record.subject == "PROJ-1"
            assert record.attributes.get("jiraurl") == fakes.jira.base_url

            fakes.jira_dc.add_issue("PROJ", "On prem")
            dc = await fakes.jira_dc.send_transition("PROJ-1", "In Progress")
            assert dc.outcome.status_code == 202, dc.outcome
            assert "X-Atlassian-Webhook-Identifier" not in dc.webhook.headers
            body_id = (await _answer(dc.outcome.body))["id"]
            assert body_id.startswith("sha256:")
            dc_record = await eventually(stored(platform, body_id, "jira-dc"))
            assert dc_record.type == "com.atlassian.jira.issue_updated"
            assert fakes.jira.sent[0].event == "jira:issue_updated"


async def _answer(body: bytes) -> dict[str, Any]:
    return dict(orjson.loads(body))


async def test_jira_sends_configured_events_after_rest_changes(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    async with served_gateway(gateway_project(project), tmp_path / "data") as (url, platform):
        target = WebhookTarget(
            url=f"{url}/hooks/jira",
            secret=JIRA_SECRET,
            events=["jira:issue_created", "jira:issue_updated", "comment_created"],
        )
        with serve_fakes(FakesConfig(jira=JiraConfig(webhook=target)), only=[FakeName.JIRA]) as f:
            async with httpx.AsyncClient(
                base_url=f.jira.base_url or "", auth=("dev@example.com", "jira-api-token")
            ) as jira:
                created = await jira.post(
                    "/rest/api/2/issue",
                    json={"fields": {"project": {"key": "PROJ"}, "summary": "s",
                                     "issuetype": {"name": "Task"}}},
                )  # fmt: skip
                assert created.status_code == 201
                await jira.post("/rest/api/2/issue/PROJ-1/comment", json={"body": "hello"})
                moved = await jira.post(
                    "/rest/api/2/issue/PROJ-1/transitions", json={"transition": {"id": "21"}}
                )
                assert moved.status_code == 204
            deadline = time.monotonic() + 10
            while len(f.jira.sent) < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            events = {s.event: s for s in f.jira.sent}
            assert set(events) == {"jira:issue_created", "comment_created", "jira:issue_updated"}
            for sent in events.values():
                assert sent.outcome.status_code == 202, sent.outcome
            delivery = events["jira:issue_updated"].webhook.headers[
                "X-Atlassian-Webhook-Identifier"
            ]
            record = await eventually(stored(platform, delivery, "jira"))
            assert record.type == "com.atlassian.jira.issue_updated"


async def test_a_webhook_signed_with_another_secret_is_refused(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    async with served_gateway(gateway_project(project), tmp_path / "data") as (url, _):
        config = FakesConfig(
            jira=JiraConfig(webhook=WebhookTarget(url=f"{url}/hooks/jira", secret="not-it")),
            servicenow=ServiceNowConfig(
                webhook=ServiceNowWebhook(url=f"{url}/hooks/servicenow", secret="not-it")
            ),
        )
        with serve_fakes(config, only=[FakeName.JIRA, FakeName.SERVICENOW]) as fakes:
            fakes.jira.add_issue("PROJ", "x")
            assert (await fakes.jira.send_transition("PROJ-1", "Done")).outcome.status_code == 401
            fakes.servicenow.insert("change_request", {"short_description": "x"})
            sent = await fakes.servicenow.send_approval("CHG0000001")
            assert sent.outcome.status_code == 401


async def test_a_servicenow_approval_webhook_verifies(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    async with served_gateway(gateway_project(project), tmp_path / "data") as (url, platform):
        config = FakesConfig(
            servicenow=ServiceNowConfig(
                webhook=ServiceNowWebhook(url=f"{url}/hooks/servicenow", secret=SN_SECRET)
            )
        )
        with serve_fakes(config, only=[FakeName.SERVICENOW]) as fakes:
            change = fakes.servicenow.insert("change_request", {"short_description": "Deploy"})
            sent = await fakes.servicenow.send_approval(change["number"])
            assert sent.outcome.status_code == 202, sent.outcome
            request_id = sent.webhook.headers["X-Request-Id"]
            record = await eventually(stored(platform, request_id, "servicenow"))
            assert record.type == "com.servicenow.change_request.updated"
            assert record.subject == change["number"]

            fakes.servicenow.config.webhook = ServiceNowWebhook(
                url=f"{url}/hooks/servicenow-hmac",
                secret=SN_SECRET,
                auth="hmac",
                header="X-Signature",
                prefix="sha256=",
                encoding="base64",
            )
            fakes.servicenow.insert("change_request", {"short_description": "Second"})
            async with httpx.AsyncClient() as control:  # the gateway is served by this loop
                via_control = await control.post(
                    f"{fakes.servicenow.base_url}/_fakes/approve",
                    json={"change": "CHG0000002", "decision": "rejected"},
                )
            assert via_control.json() == {"status_code": 202, "error": None}
            hmac_sent = fakes.servicenow.sent[-1]
            assert hmac_sent.webhook.headers["X-Signature"].startswith("sha256=")
            request_id = hmac_sent.webhook.headers["X-Request-Id"]
            hmac_record = await eventually(stored(platform, request_id, "servicenow-hmac"))
            assert hmac_record.subject == "CHG0000002"


async def test_github_deliveries_and_redelivery_reach_the_gateway(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    async with served_gateway(gateway_project(project), tmp_path / "data") as (url, platform):
        app = GitHubAppConfig(webhook_secret=GH_SECRET)
        config = FakesConfig(github=GitHubConfig(apps=[app], webhook_url=f"{url}/hooks/github"))
        with serve_fakes(config, only=[FakeName.GITHUB]) as fakes:
            payload = {
                "action": "opened",
                "issue": {"number": 1, "title": "t"},
                "repository": {"id": 1296269, "full_name": "octo-org/hello-world"},
            }
            ok = await fakes.github.send_webhook("issues", payload, installation_id=INSTALLATION)
            assert (ok.status_code, ok.status) == (202, "OK")
            record = await eventually(stored(platform, ok.guid, "github"))
            assert record.type == "com.github.issues.opened"
            assert record.subject == "octo-org/hello-world#1"
            assert ok.repository_id == 1296269

            # the gateway was down for this one: GitHub lists it as failed, catch-up redelivers
            down = await fakes.github.send_webhook(
                "issues", {**payload, "action": "closed"}, url="http://127.0.0.1:9/hooks/github"
            )
            assert (down.status_code, down.status) == (0, "failed to connect to host")
            async with httpx.AsyncClient(base_url=fakes.github.base_url or "") as gh:
                failed = await gh.get(
                    "/app/hook/deliveries",
                    params={"status": "failure"},
                    headers=app_headers(fakes),
                )
                assert [d["guid"] for d in failed.json()] == [down.guid]
                again = await gh.post(
                    f"/app/hook/deliveries/{down.id}/attempts", headers=app_headers(fakes)
                )
                assert again.status_code == 202
            redelivered = await eventually(stored(platform, down.guid, "github"))
            assert redelivered.type == "com.github.issues.closed"
            deadline = time.monotonic() + 5
            while fakes.github.redeliveries[0].new_delivery_id is None:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            newest = fakes.github.deliveries[-1]
            assert (newest.guid, newest.redelivery, newest.status) == (down.guid, True, "OK")
