"""``ghapplets run FILE`` and ``ghapplets validate FILE``: a blueprint run here, its JSON report,
its exit status, its inputs and events, and a project's applets."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from tests.cli.helpers import cli, ghapplets

HEADER = "document: {dsl: '1.0.0', namespace: test, name: cli, version: '0.1.0'}\n"


def write(tmp_path: Path, body: str, name: str = "flow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + textwrap.dedent(body))
    return path


def test_run_json_reports_status_output_and_every_task(tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        """
        do:
          - double:
              set:
                n: ${ .n * 2 }
          - describe:
              run:
                shell:
                  command: echo "n is $1"
                  arguments: ['${ .n | tostring }']
        """,
    )
    result = cli("run", flow, "--input", '{"n": 21}', "--json")
    assert result.code == 0, result
    report = json.loads(result.out)
    assert report["status"] == "completed"
    assert report["output"] == "n is 42"
    assert report["error"] is None
    assert [(t["name"], t["reference"], t["status"]) for t in report["tasks"]] == [
        ("double", "/do/0/double", "completed"),
        ("describe", "/do/1/describe", "completed"),
    ]
    assert report["tasks"][0]["output"] == {"n": 42}


def test_run_input_from_a_file(tmp_path: Path) -> None:
    flow = write(tmp_path, "do:\n  - echo:\n      set: ${ .greeting }\n")
    (tmp_path / "input.json").write_text('{"greeting": "hello"}')
    result = cli("run", flow, "--input", f"@{tmp_path / 'input.json'}", "--json")
    assert json.loads(result.out)["output"] == "hello"


def test_a_faulted_run_exits_1_with_the_error_object(tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        """
        do:
          - fail:
              raise:
                error:
                  type: https://example.com/nope
                  status: 422
                  title: Refused
        """,
    )
    result = cli("run", flow, "--json")
    assert result.code == 1
    report = json.loads(result.out)
    assert report["status"] == "faulted"
    assert report["error"] == {
        "type": "https://example.com/nope",
        "status": 422,
        "title": "Refused",
        "instance": "/do/0/fail",
    }
    assert report["tasks"][0]["status"] == "faulted"


def test_run_prints_each_task_as_it_runs(tmp_path: Path) -> None:
    flow = write(tmp_path, "do:\n  - one:\n      set: '${ 1 }'\n  - two:\n      set: '${ 2 }'\n")
    result = ghapplets("run", flow, cwd=tmp_path)
    assert result.code == 0, result
    assert "/do/0/one" in result.err and "/do/1/two" in result.err
    assert result.err.index("/do/0/one") < result.err.index("/do/1/two")
    assert "completed" in result.out


def test_a_run_waiting_for_events_that_cannot_come_is_cancelled(tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        """
        do:
          - approval:
              listen:
                to:
                  one:
                    with:
                      type: com.example.approved
        """,
    )
    result = cli("run", flow, "--json")
    assert result.code == 1
    report = json.loads(result.out)
    assert report["status"] == "cancelled"
    assert "--event" in report["error"]["detail"]
    event = json.dumps(
        {"type": "com.example.approved", "id": "1", "source": "/x", "data": {"ok": 1}}
    )
    result = cli("run", flow, "--event", event, "--json")
    assert result.code == 0, result
    assert json.loads(result.out)["output"] == [{"ok": 1}]


def test_an_invalid_blueprint_exits_3_with_its_line(tmp_path: Path) -> None:
    flow = write(tmp_path, "do:\n  - one:\n      set: '${ 1 }'\n      then: nowhere\n")
    result = cli("run", flow, "--json")
    assert result.code == 3
    assert f"{flow}:5:" in result.err
    assert "nowhere" in result.err
    assert cli("validate", flow).code == 3


def test_validate_one_file(tmp_path: Path) -> None:
    flow = write(tmp_path, "do:\n  - one:\n      set: '${ 1 }'\n")
    result = cli("validate", flow)
    assert result.code == 0, result
    assert "test/cli 0.1.0: 1 task(s)" in result.out


def test_bad_input_json_is_a_usage_error(tmp_path: Path) -> None:
    flow = write(tmp_path, "do:\n  - one:\n      set: '${ 1 }'\n")
    result = cli("run", flow, "--input", "{nope")
    assert result.code == 2
    assert "--input" in result.err


def test_run_in_a_project_calls_its_applets(scaffolded: Path) -> None:
    flow = write(
        scaffolded / "blueprints",
        """
        do:
          - inspect:
              call: hello-shell
              with:
                greeting: hi
        """,
        name="inspect.yaml",
    )
    result = cli("run", flow, "--json", "-p", scaffolded)
    assert result.code == 0, result
    report = json.loads(result.out)
    assert report["output"]["type"] == "ghapplets.blueprint.call"
    assert report["output"]["bytes"] > 0
