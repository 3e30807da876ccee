"""Tests for this project's applets, with the Ghapplets pytest plugin.

Plain pytest runs them (no async plugin needed): ``ghapplets_invoke`` returns a coroutine, which
``asyncio.run`` drives. Run them with ``pytest tests`` (add ``--junitxml=report.xml`` in CI).

One class per applet, so a JUnit report names each case after its applet (classname
``tests.test_applets.TestHelloPython``); the plugin adds the applet and event type each test
ran as its ``ghapplets.applet`` and ``ghapplets.event`` properties.
"""

import asyncio
from pathlib import Path

APPLETS = Path(__file__).parent.parent / "applets"


class TestHelloPython:
    def test_thanks_the_author_of_a_new_issue(
        self, ghapplets_event, ghapplets_invoke, ghapplets_fakes
    ):
        # ghapplets_fakes: local fakes of GitHub, Jira, ServiceNow and Splunk; connectors()
        # gives the settings that point the applet's connectors at them
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

    def test_has_no_handler_for_pushes(self, ghapplets_event, ghapplets_invoke):
        # the gateway only routes issues.opened to it; any other event is a permanent NoHandler
        event = ghapplets_event("github", "push")
        run = asyncio.run(ghapplets_invoke(APPLETS / "hello-python", event))
        assert not run.ok and not run.retryable
        assert run.error_type == "NoHandler"


class TestHelloShell:
    def test_reports_the_event_type(self, ghapplets_event, ghapplets_invoke):
        event = ghapplets_event("github", "push")
        run = asyncio.run(ghapplets_invoke(APPLETS / "hello-shell", event))
        assert run.ok, run.outcome
        assert run.result["type"] == "com.github.push"
        assert run.result["bytes"] > 100
