"""``ghapplets validate --format text|json|github``: the same problems, for people, for scripts
and as GitHub Actions annotations; paths relative to the current folder (the repository root
in CI) in the machine formats; exit 3 with problems, 0 without, in every format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ghapplets.cli.problems import as_github, as_json, escape_data, escape_property
from ghapplets.config.located import Problem
from tests.cli.helpers import cli, ghapplets

BROKEN = "name: bad\nruntime: exec\ncommand: [./run]\ntimeout: soon\n"
FLOW = "document:\n  dsl: '1.0.0'\n  namespace: test\n  name: one\n  version: '0.1.0'\n"


@pytest.fixture
def broken(scaffolded: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The scaffold, the current folder, with applets/bad/applet.yaml's line 4 wrong."""
    folder = scaffolded / "applets" / "bad"
    folder.mkdir()
    (folder / "run").write_text("#!/bin/sh\ncat\n")
    (folder / "run").chmod(0o755)
    (folder / "applet.yaml").write_text(BROKEN)
    monkeypatch.chdir(scaffolded)
    return scaffolded


def test_escaping_follows_githubs_workflow_command_rules() -> None:
    assert escape_data("100% sure\r\nnext: a,b") == "100%25 sure%0D%0Anext: a,b"
    assert escape_property("a:b,c%d\ne") == "a%3Ab%2Cc%25d%0Ae"
    # a literal "%0A" in a message stays literal after the runner unescapes it once
    assert escape_data("%0A") == "%250A"


def test_a_github_annotation_names_file_line_col_and_key(tmp_path: Path) -> None:
    problem = Problem(str(tmp_path / "apps" / "x,y.yaml"), 7, 3, "on.0: when", "bad: 50%\nhere")
    assert as_github(problem, cwd=tmp_path) == (
        "::error file=apps/x%2Cy.yaml,line=7,col=3,title=on.0%3A when::bad: 50%25%0Ahere"
    )


def test_a_path_outside_the_current_folder_stays_absolute(tmp_path: Path) -> None:
    problem = Problem("/elsewhere/ghapplets.yaml", 1, 2, "", "m")
    assert as_json(problem, cwd=tmp_path)["file"] == "/elsewhere/ghapplets.yaml"
    # no key: no title
    expected = "::error file=/elsewhere/ghapplets.yaml,line=1,col=2::m"
    assert as_github(problem, cwd=tmp_path) == expected


def test_a_bare_message_is_an_annotation_without_a_place() -> None:
    assert as_github("no ghapplets.yaml in /x") == "::error::no ghapplets.yaml in /x"
    assert as_json("m") == {"file": None, "line": None, "column": None, "key": "", "message": "m"}


def test_github_format_prints_one_error_command_per_problem(broken: Path) -> None:
    (broken / "applets" / "worse").mkdir()
    (broken / "applets" / "worse" / "applet.yaml").write_text(
        "name: worse\nruntime: exec\ncommand: [./run]\nbogus: 1\n"
    )
    result = cli("validate", "--format", "github")
    assert result.code == 3, result
    assert sorted(result.out.splitlines()) == [
        "::error file=applets/bad/applet.yaml,line=4,col=1,title=timeout::"
        "Input should be a valid number, unable to parse string as a number",
        "::error file=applets/worse/applet.yaml,line=4,col=1,title=bogus::unknown key",
    ]
    assert result.err == ""


def test_text_format_is_todays_output(broken: Path) -> None:
    plain = cli("validate")
    text = cli("validate", "--format", "text")
    assert plain.code == text.code == 3
    assert plain.err == text.err
    assert text.err.startswith(f"{broken}/applets/bad/applet.yaml:4:1: timeout: Input should be")


def test_json_format_is_one_document_with_each_problem(broken: Path) -> None:
    result = cli("validate", "--format", "json")
    assert result.code == 3, result
    document = json.loads(result.out)
    assert document["valid"] is False
    assert document["problems"] == [
        {
            "file": "applets/bad/applet.yaml",
            "line": 4,
            "column": 1,
            "key": "timeout",
            "message": "Input should be a valid number, unable to parse string as a number",
        }
    ]
    # the config was read; the applets' problems stopped the rest
    assert document["checked"]["config"] == "ghapplets.yaml"
    assert document["checked"]["sources"] == 1
    assert document["checked"]["applets"] is None


def test_json_format_of_a_valid_project_says_what_was_checked(
    scaffolded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(scaffolded)
    result = cli("validate", "--format", "json")
    assert result.code == 0, result
    document = json.loads(result.out)
    assert document == {
        "valid": True,
        "checked": {
            "config": "ghapplets.yaml",
            "file": None,
            "sources": 1,
            "applets": [
                {"name": "hello-python", "runtime": "python", "folder": "applets/hello-python"},
                {"name": "hello-shell", "runtime": "exec", "folder": "applets/hello-shell"},
            ],
            "blueprints": [
                {
                    "namespace": "demo",
                    "name": "triage-issue",
                    "version": "0.1.0",
                    "file": "blueprints/triage-issue.yaml",
                    "tasks": 2,
                }
            ],
        },
        "notes": [],
        "problems": [],
    }


def test_github_format_of_a_valid_project_prints_no_command(scaffolded: Path) -> None:
    result = cli("validate", "-p", scaffolded, "--format", "github")
    assert result.code == 0, result
    assert "::" not in result.out
    assert "1 source(s), 2 applet(s), 1 blueprint(s)" in result.out


def test_a_deprecated_key_is_a_warning_annotation(
    scaffolded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = scaffolded / "ghapplets.yaml"
    config.write_text(config.read_text() + "storage:\n  synchronous: full\n")
    monkeypatch.chdir(scaffolded)
    result = cli("validate", "--format", "github")
    assert result.code == 0, result
    assert result.out.splitlines()[0] == (
        "::warning file=ghapplets.yaml::storage.synchronous is deprecated: "
        "write 'storage.sync: full' instead"
    )
    notes = json.loads(cli("validate", "--format", "json").out)["notes"]
    assert notes == ["storage.synchronous is deprecated: write 'storage.sync: full' instead"]


def test_a_missing_config_is_a_problem_in_every_format(tmp_path: Path) -> None:
    github = cli("validate", "-p", tmp_path, "--format", "github")
    assert github.code == 3, github
    assert github.out.strip() == (
        f"::error::no ghapplets.yaml in {tmp_path} (run 'ghapplets init' to create a project)"
    )
    document = json.loads(cli("validate", "-p", tmp_path, "--format", "json").out)
    assert document["valid"] is False and document["checked"]["config"] is None
    assert document["problems"][0]["file"] is None


def test_one_blueprint_file_in_each_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bad = FLOW + "do:\n  - one:\n      set: {a: 1}\n      then: nowhere\n"
    (tmp_path / "flow.yaml").write_text(bad)
    github = cli("validate", "flow.yaml", "--format", "github")
    assert github.code == 3, github
    [line] = github.out.splitlines()
    assert line.startswith("::error file=flow.yaml,line=9,col=") and "nowhere" in line, line
    document = json.loads(cli("validate", "flow.yaml", "--format", "json").out)
    assert document["checked"]["file"] == "flow.yaml"
    assert [(p["file"], p["line"]) for p in document["problems"]] == [("flow.yaml", 9)]
    (tmp_path / "flow.yaml").write_text(FLOW + "do:\n  - one:\n      set: {a: 1}\n")
    good = json.loads(cli("validate", "flow.yaml", "--format", "json").out)
    assert good["valid"] is True
    assert good["checked"]["blueprints"][0]["file"] == "flow.yaml"


def test_an_unknown_format_is_a_usage_error(scaffolded: Path) -> None:
    result = cli("validate", "-p", scaffolded, "--format", "xml")
    assert result.code == 2, result


def test_github_format_as_a_subprocess_in_the_repository_root(scaffolded: Path) -> None:
    (scaffolded / "applets" / "hello-shell" / "applet.yaml").write_text("name: s\ntimeout: x\n")
    result = ghapplets("validate", "--format", "github", cwd=scaffolded)
    assert result.code == 3, result
    assert "::error file=applets/hello-shell/applet.yaml,line=2,col=1,title=timeout::" in (
        result.out
    )
