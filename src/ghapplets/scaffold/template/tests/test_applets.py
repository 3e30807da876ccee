"""Tests for this project's applets, with the Ghapplets pytest plugin.

Plain pytest runs them (no async plugin needed): ``ghapplets_invoke`` returns a coroutine, which
``asyncio.run`` drives. Run them with ``pytest tests``.
"""

import asyncio
from pathlib import Path

APPLETS = Path(__file__).parent.parent / "applets"


def test_hello_python_thanks_the_author(ghapplets_event, ghapplets_invoke, ghapplets_fakes):
    # ghapplets_fakes: local fakes of GitHub, Jira, ServiceNow and Splunk; connectors() gives
    # the settings that point the applet's connectors at them
    event = ghapplets_event("github", "issues.opened")
    issue, repo = event.data["issue"], event.data["repository"]
    github = ghapplets_fakes.github
    github.add_issue(repo["full_name"], issue["number"], title=issue["title"])
    connectors = ghapplets_fakes.connectors()
    run = asyncio.run(ghapplets_invoke(APPLETS / "hello-python", event, connectors=connectors))
    assert run.ok, run.outcome
    path = f"/repos/{repo['full_name']}/issues/{issue['number']}/comments"
    [posted] = github.requests(path, method="POST")
    assert posted.json()["body"].startswith(f"Thanks @{issue['user']['login']} for opening")
    assert f"/issues/{issue['number']}#issuecomment-" in run.result["comment"]


def test_hello_python_has_no_handler_for_pushes(ghapplets_event, ghapplets_invoke):
    # the gateway only routes issues.opened to it; any other event is a permanent NoHandler error
    event = ghapplets_event("github", "push")
    run = asyncio.run(ghapplets_invoke(APPLETS / "hello-python", event))
    assert not run.ok and not run.retryable
    assert run.error_type == "NoHandler"


def test_hello_shell_reports_the_type(ghapplets_event, ghapplets_invoke):
    event = ghapplets_event("github", "push")
    run = asyncio.run(ghapplets_invoke(APPLETS / "hello-shell", event))
    assert run.ok, run.outcome
    assert run.result["type"] == "com.github.push"
    assert run.result["bytes"] > 100
