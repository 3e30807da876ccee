"""Tests for this project's blueprints: ``ghapplets_blueprint`` runs one in this process on a
virtual clock, with mocked applets, actions and HTTP calls (or the vendor fakes, with
``connect(ghapplets_fakes.connectors())``). Run them with ``pytest tests``.

One class per blueprint, so a JUnit report names each case after its blueprint (classname
``tests.test_blueprints.TestTriageIssue``); the plugin adds ``namespace/name version`` of each
blueprint a test ran as its ``ghapplets.blueprint`` property.
"""

from pathlib import Path

BLUEPRINT = Path(__file__).parent.parent / "blueprints" / "triage-issue.yaml"


def issue_event(ghapplets_event, title):
    event = ghapplets_event("github", "issues.opened").to_dict()
    event["data"]["issue"]["title"] = title
    return event


class TestTriageIssue:
    def test_a_bug_report_gets_the_bug_label(self, ghapplets_blueprint, ghapplets_event):
        bp = ghapplets_blueprint
        bp.mock_action("github.add_labels", lambda data: [{"name": n} for n in data["labels"]])
        report = bp.run(BLUEPRINT, [issue_event(ghapplets_event, "Crash when saving")])
        assert report.status == "completed", report.error
        assert report.output == "bug"
        assert [t.name for t in report.tasks] == ["classify", "label"]
        [call] = bp.calls
        assert call.data["labels"] == ["bug"]

    def test_a_crash_after_classifying_labels_the_issue_once(
        self, ghapplets_blueprint, ghapplets_event
    ):
        bp = ghapplets_blueprint
        bp.mock_action("github.add_labels", [{"name": "triage"}])
        report = bp.run(BLUEPRINT, [issue_event(ghapplets_event, "Add dark mode")], crash_after=1)
        assert report.output == "triage"
        assert bp.count("action", "github.add_labels") == 1
