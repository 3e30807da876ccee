"""What ``ghapplets init`` scaffolds for CI: a GitHub Actions workflow that SchemaStore's
workflow schema accepts and whose steps pass in a fresh project, and tests whose JUnit report
names the applet or blueprint each case exercised."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from ghapplets import __version__
from tests.cli.helpers import clean_env, ghapplets

WORKFLOW = Path(".github/workflows/ghapplets.yml")
SCHEMA = Path(__file__).parent / "schemas" / "github-workflow.json"


def workflow(project: Path) -> dict[str, Any]:
    """The scaffolded workflow, read as YAML 1.2 (as GitHub does: ``on`` is a key, not True)."""
    data = YAML(typ="safe", pure=True).load((project / WORKFLOW).read_text())
    assert isinstance(data, dict)
    return data


def steps(project: Path) -> list[dict[str, Any]]:
    [job] = workflow(project)["jobs"].values()
    return list(job["steps"])


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_the_workflow_is_valid_for_github_actions(
    scaffolded: Path, validator: jsonschema.Draft7Validator
) -> None:
    document = workflow(scaffolded)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
    assert errors == []
    # and the schema does bite: a job without runs-on, a step both running and using
    broken = copy.deepcopy(document)
    [job] = broken["jobs"].values()
    del job["runs-on"]
    assert not validator.is_valid(broken)
    broken = copy.deepcopy(document)
    [job] = broken["jobs"].values()
    job["steps"][0]["run"] = "true"
    assert not validator.is_valid(broken)


def test_the_workflow_validates_tests_and_keeps_the_report(scaffolded: Path) -> None:
    found = steps(scaffolded)
    uses = [s["uses"].split("@")[0] for s in found if "uses" in s]
    assert uses == ["actions/checkout", "actions/setup-python", "actions/upload-artifact"]
    runs = [s["run"] for s in found if "run" in s]
    assert f'"ghapplets=={__version__}"' in runs[0]  # pinned to the version that scaffolded it
    assert "ghapplets validate --format github" in runs[1]
    assert "--junitxml=test-results/junit.xml" in runs[2]
    upload = found[-1]
    assert upload["if"] == "always()"  # the report of failed tests is kept too
    assert upload["with"]["path"] == "test-results/junit.xml"


def test_the_workflow_run_steps_pass_in_a_fresh_project(tmp_path: Path) -> None:
    """Every ``run:`` step of the workflow, in order, in a project just made by ``ghapplets
    init``, with this virtual environment's ``python`` and ``ghapplets`` first on PATH and
    bash as GitHub runs it (``bash --noprofile --norc -eo pipefail``).

    The install step is not run: it installs the released ``ghapplets`` from PyPI, and here the
    package under test is the one already installed in this environment (so the later steps
    test this code, offline). Its pin is checked instead (the test above). The ``uses:`` steps
    (checkout, setup-python, upload-artifact) are GitHub's own; that the report the upload
    step keeps exists is checked. No run step may hold a ``${{ }}`` expression, which only
    GitHub could expand."""
    project = tmp_path / "demo"
    assert ghapplets("init", project, cwd=tmp_path).code == 0
    bin_dir = str(Path(sys.executable).parent)
    env = clean_env(PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
    ran = []
    for step in steps(project):
        if "run" not in step or step.get("name", "").lower().startswith("install"):
            continue
        assert "${{" not in step["run"], step
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == 0, f"{step['name']}:\n{proc.stdout}\n{proc.stderr}"
        assert "::error" not in proc.stdout, proc.stdout
        ran.append(step["name"])
    assert ran == ["Validate the project", "Run the tests"]
    assert (project / "test-results" / "junit.xml").is_file()


def properties(case: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in case.iter("property")}


def test_the_junit_report_names_each_applet_and_blueprint(scaffolded: Path) -> None:
    report = scaffolded / "report.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider",
         f"--junitxml={report}"],
        cwd=scaffolded,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PytestWarning" not in proc.stdout  # no record_property warning under xunit2
    cases = {
        (c.get("classname"), c.get("name")): properties(c)
        for c in ET.parse(report).getroot().iter("testcase")
    }
    hello_python = {"ghapplets.applet": "hello-python"}
    triage = {"ghapplets.blueprint": "demo/triage-issue 0.1.0"}
    assert cases == {
        ("tests.test_applets.TestHelloPython", "test_thanks_the_author_of_a_new_issue"): {
            **hello_python,
            "ghapplets.event": "com.github.issues.opened",
        },
        ("tests.test_applets.TestHelloPython", "test_has_no_handler_for_pushes"): {
            **hello_python,
            "ghapplets.event": "com.github.push",
        },
        ("tests.test_applets.TestHelloShell", "test_reports_the_event_type"): {
            "ghapplets.applet": "hello-shell",
            "ghapplets.event": "com.github.push",
        },
        ("tests.test_blueprints.TestTriageIssue", "test_a_bug_report_gets_the_bug_label"): triage,
        (
            "tests.test_blueprints.TestTriageIssue",
            "test_a_crash_after_classifying_labels_the_issue_once",
        ): triage,
    }


def test_the_ci_page_shows_the_scaffolded_workflow(scaffolded: Path) -> None:
    """docs/ci.md's GitHub Actions example is the workflow ``init`` writes (comments aside)."""
    page = (Path(__file__).parents[2] / "docs" / "ci.md").read_text()
    section = page.split("## GitHub Actions", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert YAML(typ="safe", pure=True).load(block) == workflow(scaffolded)
    # the GitLab and Azure examples are YAML too, and run the same commands
    for other in page.split("```yaml\n")[2:]:
        text = other.split("```", 1)[0]
        assert YAML(typ="safe", pure=True).load(text)
        assert "--junitxml=test-results/junit.xml" in text and "ghapplets validate" in text
