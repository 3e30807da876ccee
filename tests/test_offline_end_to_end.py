"""Offline, end to end: ``ghapplets serve`` with connectors to the four vendor fakes. One signed
GitHub ``issues.opened`` makes a Python applet comment on the issue, open a Jira issue, a
ServiceNow change request and a Splunk event, and an exec applet comment on a Jira issue through
``ghapplets action``; each fake receives the request it should, with the right credentials, and
no credential shows in the server's output."""

from __future__ import annotations

import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from ghapplets.fakes.config import JiraConfig, ServiceNowUser
from tests.cli.helpers import cli, serving
from tests.conftest import ProjectBuilder

pytestmark = pytest.mark.slow
BIN = str(Path(sys.executable).parent)
JIRA_USER = JiraConfig().users[0]

TRIAGE = """
from ghapplets import Applet

app = Applet("triage")

@app.on("com.github.issues.opened")
async def triage(ctx):
    issue, repo = ctx.data["issue"], ctx.data["repository"]
    ticket = await ctx.action("jira.create_issue", {
        "project": "PROJ", "issue_type": "Task", "summary": issue["title"],
        "description": f"From {repo['full_name']}#{issue['number']}",
    })
    change = await ctx.action("servicenow.create_change_request", {
        "fields": {"short_description": f"Fix {ticket['key']}"},
    })
    await ctx.action("github.create_comment", {
        "owner": repo["owner"]["login"], "repo": repo["name"], "issue_number": issue["number"],
        "body": f"Tracked as {ticket['key']}, change {change['number']}",
    })
    await ctx.action("splunk.send_event", {
        "event": {"delivery": ctx.id, "jira": ticket["key"], "change": change["number"]},
        "sourcetype": "ghapplets:triage",
    })
    return {"jira": ticket["key"], "change": change["number"]}
"""

NOTE = """#!/bin/sh
exec ghapplets action jira.add_comment --input '{"issue": "PROJ-1", "body": "seen by exec"}'
"""


def project(root: Path, fakes: Any) -> Path:
    settings = fakes.connectors()
    github = {**settings["github"], "private_key": "${secret:github-app-key}"}
    jira = {**settings["jira"], "token": "${env:JIRA_TOKEN}"}
    connectors = {
        "github": github,
        "jira": jira,
        "servicenow": settings["servicenow"],
        "splunk": settings["splunk"],
    }
    builder = ProjectBuilder(root)
    builder.python_applet(
        "triage",
        TRIAGE,
        "connectors: [github, jira, servicenow, splunk]\nretry: {max_attempts: 1}\n",
    )
    builder.exec_applet(
        "note",
        NOTE,
        f"on: [com.github.issues.opened]\nconnectors: [jira]\nretry: {{max_attempts: 1}}\n"
        f"env:\n  PATH: {BIN}:/usr/bin:/bin\n",
    )
    builder.extra = yaml.safe_dump({"connectors": connectors}, sort_keys=False)
    return builder.build()


def wait_for_jobs(root: Path, count: int, timeout: float = 90) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        listed = cli("jobs", "--project", root, "--json")
        jobs = [json.loads(line) for line in listed.out.splitlines() if line.strip()]
        if len(jobs) == count and all(j["status"] in ("succeeded", "dead") for j in jobs):
            return jobs
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs not finished: {jobs}")
        time.sleep(0.2)


def test_one_webhook_acts_on_all_four_tools(tmp_path: Path, ghapplets_fakes: Any) -> None:
    gh, jira = ghapplets_fakes.github, ghapplets_fakes.jira
    sn, splunk = ghapplets_fakes.servicenow, ghapplets_fakes.splunk
    gh.add_issue("octo-org/hello-world", 1347, title="Found a bug")
    jira.add_issue("PROJ", "Existing")  # PROJ-1, for the exec applet
    root = project(tmp_path / "p", ghapplets_fakes)
    pem = ghapplets_fakes.private_keys[1001]
    assert cli("secrets", "set", "github-app-key", "-p", root, input=pem).code == 0
    env = {"JIRA_TOKEN": JIRA_USER.api_token or ""}
    with serving(root, env=env, timeout=90) as server:
        sent = cli("send", "issues.opened", "--project", root, "--url", server.url)
        assert sent.code == 0, sent
        jobs = wait_for_jobs(root, 2)
        output = server.log_text()
    assert {j["applet"]: j["status"] for j in jobs} == {"triage": "succeeded", "note": "succeeded"}

    # Jira: the issue the Python applet opened (basic auth, ADF description) and the exec
    # applet's comment on PROJ-1 (through the worker: the same credentials)
    created = jira.issue("PROJ-2")
    assert created.summary == "Found a bug"
    [comment] = jira.issue("PROJ-1").comments
    assert comment.body.render("2") == "seen by exec"
    basic = base64.b64encode(f"{JIRA_USER.email}:{JIRA_USER.api_token}".encode()).decode()
    assert {r.header("authorization") for r in jira.requests()} == {f"Basic {basic}"}

    # ServiceNow: one change request
    [change] = sn.records("change_request")
    assert change["short_description"] == "Fix PROJ-2"

    # GitHub: the comment, as the App's installation (one token minted)
    [posted] = gh.requests("/repos/octo-org/hello-world/issues/1347/comments", method="POST")
    assert posted.json() == {"body": f"Tracked as PROJ-2, change {change['number']}"}
    assert (posted.header("authorization") or "").startswith(("token ghs_", "Bearer ghs_"))
    assert gh.exchanges(2001) == 1

    # Splunk: the event, with the HEC token
    [event] = splunk.events
    assert event.event["jira"] == "PROJ-2" and event.sourcetype == "ghapplets:triage"

    # no credential in anything the server printed
    for secret in (pem.splitlines()[1], JIRA_USER.api_token, ServiceNowUser().password):
        assert secret and secret not in output
    token = (posted.header("authorization") or "").split()[-1]
    assert token not in output
