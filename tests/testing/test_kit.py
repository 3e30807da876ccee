"""The pytest plugin works as documented: event factories, invoke with HTTP recording, gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from ghapplets.connectors.config import ConnectorConfig
from ghapplets.exceptions import VerificationError
from ghapplets.sources import fixtures
from ghapplets.sources.common import to_inbound
from ghapplets.testing.events import fixture_event, signed_request
from ghapplets.testing.invoke import invoke
from tests.conftest import ProjectBuilder

pytest_plugins: list[str] = []  # the plugin is loaded through its entry point


@pytest.mark.parametrize("kind", fixtures.kinds())
def test_event_factory_covers_every_fixture_of_every_vendor(kind: str) -> None:
    for fx in fixtures.iter_fixtures(kind):
        event = fixture_event(kind, fx.event, variant=fx.variant)
        assert event.type == fx.expected_type
        assert event.source == f"/{kind}"
        assert event.id


def test_signed_request_verifies_only_with_its_own_source() -> None:
    source, signed = signed_request("github", "pull_request.opened")
    assert "x-hub-signature-256" in {k.lower() for k in signed.headers}
    other, _ = signed_request("github", "pull_request.opened")
    assert source.ingest(to_inbound(signed, source.name)).type == "com.github.pull_request.opened"
    with pytest.raises(VerificationError):
        other.ingest(to_inbound(signed, other.name))


async def test_invoke_records_outbound_http(
    project: ProjectBuilder, ghapplets_event, ghapplets_invoke
) -> None:
    folder = project.python_applet(
        "labeler",
        """
        from ghapplets import Applet, Context
        app = Applet("labeler")

        @app.on("com.github.issues.opened")
        async def label(ctx: Context) -> int:
            r = await ctx.http.post(
                "https://api.github.com/repos/o/r/issues/1/labels",
                json={"labels": ["triage"]},
                headers={"Authorization": "token " + ctx.secrets["gh-token"]},
            )
            return r.status_code
    """,
        "secrets: [gh-token]\n",
    )

    def github(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json=[{"name": "triage"}])

    run = await ghapplets_invoke(
        folder,
        ghapplets_event("github", "issues.opened"),
        secrets={"gh-token": "tok-123"},
        http=github,
    )
    assert run.ok and run.result == 201
    [call] = run.http_calls
    assert (call.method, call.status) == ("POST", 201)
    assert call.json() == {"labels": ["triage"]}
    assert call.headers["authorization"] == "token tok-123"

    offline = await ghapplets_invoke(
        folder, ghapplets_event("github", "issues.opened"), secrets={"gh-token": "x"}
    )
    assert offline.result == 200  # the default offline stub


async def test_gateway_fixture_runs_the_platform(
    project: ProjectBuilder, ghapplets_gateway, tmp_path: Path
) -> None:
    project.exec_applet(
        "echo",
        '#!/bin/sh\ncat >/dev/null\necho \'{"ok": true, "result": 1}\'\n',
        "on: [com.github.*]\n",
    )
    async with ghapplets_gateway(project.build()) as gw:
        response = await gw.send("github", "release.published", variant="ghes")
        assert response.status_code == 202
        [job] = await gw.wait_for_jobs(response.json()["id"], count=1)
        assert (job.status, job.result) == ("succeeded", 1)
        delivery = await gw.platform.backends.store.get_delivery(response.json()["id"])
        assert delivery.attributes["githubhost"] == "ghe.example.com"


ACTING = """
from ghapplets import Applet

app = Applet("acting")

@app.on("com.github.issues.opened")
async def act(ctx):
    await ctx.action("splunk.send_event", {"event": {"delivery": ctx.id}})
    comment = await ctx.action("github.create_comment", {
        "owner": "octo-org", "repo": "hello-world", "issue_number": 1, "body": "seen",
    })
    return comment["body"]
"""


@pytest.mark.parametrize(
    ("listed", "ok"), [("[github, splunk]", True), ("[splunk]", False), ("[]", False)]
)
async def test_invoke_runs_actions_on_the_fakes_within_the_manifest(
    tmp_path: Path, ghapplets_fakes: Any, listed: str, ok: bool
) -> None:
    folder = ProjectBuilder(tmp_path).python_applet("acting", ACTING, f"connectors: {listed}\n")
    event = fixture_event("github", "issues.opened")
    run = await invoke(folder, event, connectors=ghapplets_fakes.connectors())
    assert run.ok is ok, run.outcome
    github = ghapplets_fakes.github
    comments = github.requests("/repos/octo-org/hello-world/issues/1/comments", method="POST")
    if ok:
        assert run.result == "seen" and len(comments) == 1
        assert [e.event for e in ghapplets_fakes.splunk.events] == [{"delivery": event.id}]
        # the connector's installation (the fake's), not the fixture event's (4242)
        assert github.exchanges(2001) == 1
    else:
        assert run.error_type == "ConnectorNotAllowed" and comments == []


async def test_invoke_without_connectors_has_no_actions(tmp_path: Path) -> None:
    folder = ProjectBuilder(tmp_path).python_applet("acting", ACTING, "connectors: [splunk]\n")
    run = await invoke(folder, fixture_event("github", "issues.opened"))
    assert not run.ok and run.error_type == "ConnectorNotAllowed"


def test_the_fakes_connector_settings_validate_for_each_running_fake(ghapplets_fakes: Any) -> None:
    settings = ghapplets_fakes.connectors()
    assert set(settings) == {"github", "jira", "jira-dc", "servicenow", "splunk"}
    adapter: TypeAdapter[ConnectorConfig] = TypeAdapter(ConnectorConfig)
    for name, value in settings.items():
        config = adapter.validate_python(value)
        assert config.kind == name.removesuffix("-dc")
    assert settings["jira-dc"]["flavor"] == "datacenter" and "email" not in settings["jira-dc"]
    assert settings["github"]["base_url"] == ghapplets_fakes.github.base_url


READING = """
from ghapplets import Applet

app = Applet("reading")

@app.on("com.github.issues.opened")
async def read(ctx):
    issue = await ctx.jira.json("GET", "/rest/api/3/issue/PROJ-1")
    return issue["fields"]["summary"]
"""


async def test_invoke_gives_the_connectors_clients(tmp_path: Path, ghapplets_fakes: Any) -> None:
    ghapplets_fakes.jira.add_issue("PROJ", "Read me")
    folder = ProjectBuilder(tmp_path).python_applet("reading", READING, "connectors: [jira]\n")
    event = fixture_event("github", "issues.opened")
    run = await invoke(folder, event, connectors=ghapplets_fakes.connectors())
    assert run.ok, run.outcome
    assert run.result == "Read me"
