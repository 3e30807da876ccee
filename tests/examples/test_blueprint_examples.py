"""The example blueprints of examples/blueprints, run offline against the vendor fakes: their
actions go through the real connectors to the fakes, their events are what the vendors send."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from ghapplets.fakes.config import FakesConfig, JiraConfig, JiraProject
from ghapplets.fakes.runner import serve_fakes
from ghapplets.testing.blueprints import BlueprintHarness
from ghapplets.testing.events import fixture_event

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "blueprints"


@pytest.fixture(scope="module")
def security_fakes() -> Iterator[Any]:
    """Fakes whose Jira has the security team's project (the session's have only PROJ)."""
    config = FakesConfig(jira=JiraConfig(projects=[JiraProject(key="SEC", name="Security")]))
    with serve_fakes(config) as fakes:
        yield fakes


def event_of(kind: str, name: str, **changes: Any) -> dict[str, Any]:
    """A fixture event as the gateway makes it, its data changed where ``changes`` say
    (``pull_request__merged=True`` sets ``data.pull_request.merged``)."""
    event = fixture_event(kind, name).to_dict()
    for path, value in changes.items():
        target = event["data"]
        *parents, last = path.split("__")
        for part in parents:
            target = target[part]
        target[last] = value
    return event


@pytest.fixture
def harness(tmp_path: Path, ghapplets_fakes: Any) -> BlueprintHarness:
    bp = BlueprintHarness(tmp_path)
    # one connector of each kind, so actions need not name theirs
    bp.connect({k: v for k, v in ghapplets_fakes.connectors().items() if k != "jira-dc"})
    return bp


def merged_pr() -> dict[str, Any]:
    return event_of(
        "github",
        "pull_request.closed",
        pull_request__merged=True,
        pull_request__merge_commit_sha="9f8e7d6c5b4a39281706f5e4d3c2b1a098765432",
    )


def approve_when_waiting(bp: BlueprintHarness, fakes: Any, decision: str) -> None:
    """When the run waits, the change manager decides, and ServiceNow sends its webhook."""
    sent: list[bool] = []
    servicenow = fakes.servicenow

    def decide() -> bool:
        changes = servicenow.records("change_request")
        if sent or not changes:
            return False
        record, diff = servicenow.approve(changes[-1]["sys_id"], decision)
        hook = servicenow.record_webhook("change_request", record, diff)
        bp.event({"type": "com.servicenow.change_request.updated", "data": orjson.loads(hook.body)})
        sent.append(True)
        return True

    bp.when_waiting(decide)


async def test_change_management_approved_deploys_and_records(
    harness: BlueprintHarness, ghapplets_fakes: Any
) -> None:
    approve_when_waiting(harness, ghapplets_fakes, "approved")
    report = await harness.arun(EXAMPLES / "change-management.yaml", [merged_pr()])
    assert report.status == "completed", report.error
    change = ghapplets_fakes.servicenow.records("change_request")[-1]
    assert report.output == {"change": change["number"], "outcome": "deployed"}
    repo = next(iter(ghapplets_fakes.github.repos.values()))
    assert [d["environment"] for d in repo.deployments] == ["production"]
    assert [s["state"] for s in repo.deployment_statuses] == ["success"]
    events = ghapplets_fakes.splunk.events_for(sourcetype="ghapplets:change")
    assert [e.event["outcome"] for e in events] == ["deployed"]
    assert [t.name for t in report.tasks if t.status == "completed"][-1] == "record"


async def test_change_management_rejected_does_not_deploy(
    harness: BlueprintHarness, ghapplets_fakes: Any
) -> None:
    approve_when_waiting(harness, ghapplets_fakes, "rejected")
    report = await harness.arun(EXAMPLES / "change-management.yaml", [merged_pr()])
    assert report.output["outcome"] == "rejected"
    assert all(not r.deployments for r in ghapplets_fakes.github.repos.values())
    assert [t.status for t in report.tasks if t.name == "deploy"] == ["skipped"]


async def test_change_management_expires_after_three_days(
    harness: BlueprintHarness, ghapplets_fakes: Any
) -> None:
    start = harness.clock.now()
    report = await harness.arun(EXAMPLES / "change-management.yaml", [merged_pr()])
    assert report.output["outcome"] == "expired"
    assert harness.clock.now() - start == 3 * 86400
    events = ghapplets_fakes.splunk.events_for(sourcetype="ghapplets:change")
    assert [e.event["outcome"] for e in events] == ["expired"]


async def test_change_management_resumes_after_a_crash_without_a_second_change(
    harness: BlueprintHarness, ghapplets_fakes: Any
) -> None:
    approve_when_waiting(harness, ghapplets_fakes, "approved")
    report = await harness.arun(EXAMPLES / "change-management.yaml", [merged_pr()], crash_after=2)
    assert report.output["outcome"] == "deployed"
    assert len(ghapplets_fakes.servicenow.records("change_request")) == 1
    assert harness.count("action", "servicenow.create_change_request") == 1


async def test_jira_pr_linking_comments_both_ways(
    harness: BlueprintHarness, ghapplets_fakes: Any
) -> None:
    issue = await _create_issue(harness, "PROJ")
    opened = event_of(
        "github", "pull_request.opened", pull_request__title=f"{issue} fix the login page"
    )
    pr, repo_json = opened["data"]["pull_request"], opened["data"]["repository"]
    ghapplets_fakes.github.add_issue(repo_json["full_name"], pr["number"], title=pr["title"])
    report = await harness.arun(EXAMPLES / "jira-pr-linking.yaml", [opened])
    assert report.status == "completed", report.error
    assert report.output == [issue]
    jira = ghapplets_fakes.jira.snapshot()["issues"][issue]
    assert jira["status"] == "In Progress"
    assert len(jira["comments"]) == 1
    repo = next(iter(ghapplets_fakes.github.repos.values()))
    assert [c["body"] for c in repo.comments] == [f"Linked Jira issues: {issue}"]


async def _create_issue(harness: BlueprintHarness, project: str) -> str:
    report = await harness.arun(
        f"""
document: {{dsl: '1.0.0', namespace: test, name: seed, version: '0.1.0'}}
do:
  - create:
      call: jira.create_issue
      with:
        project: {project}
        issue_type: Task
        summary: Fix the login page
"""
    )
    assert report.status == "completed", report.error
    return str(report.output["key"])


async def test_security_alert_opens_a_ticket_and_announces_it(
    tmp_path: Path, security_fakes: Any
) -> None:
    harness = BlueprintHarness(tmp_path)
    harness.connect({k: v for k, v in security_fakes.connectors().items() if k != "jira-dc"})
    alert = fixture_event("splunk", "alert").to_dict()
    report = await harness.arun(EXAMPLES / "security-alert-to-jira.yaml", [alert])
    assert report.status == "completed", report.error
    assert report.output["severity"] == "High"  # 57 matching events
    issue = security_fakes.jira.snapshot()["issues"][report.output["issue"]]
    assert issue["summary"] == "[High] Failed logins spike on web-01"
    assert issue["issuetype"] == "Bug"
    emitted = [t for t in report.tasks if t.name == "announce"]
    assert emitted and emitted[0].status == "completed"
