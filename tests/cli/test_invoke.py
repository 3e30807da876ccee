"""``ghapplets invoke``: one applet, one event, no server; the exit status is the outcome."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ghapplets.testing.events import fixture_event
from tests.cli.helpers import clean_env, cli, ghapplets
from tests.conftest import ProjectBuilder

TOKEN = "invoke-token-51c9e2"


def add_exec_applet(project: Path, name: str, script: str, manifest: str = "") -> None:
    ProjectBuilder(project).exec_applet(name, script, "on: [com.github.*]\n" + manifest)


def test_invoke_a_python_applet_on_a_fixture(scaffolded: Path, ghapplets_fakes: Any) -> None:
    # the scaffold's applet comments through the project's GitHub connector: pointed at the
    # fake by environment overrides, with the fake App's key stored as the config says
    github = ghapplets_fakes.github
    github.add_issue("octo-org/hello-world", 1347, title="Found a bug")
    pem = ghapplets_fakes.private_keys[1001]
    assert cli("secrets", "set", "github-app-key", "-p", scaffolded, input=pem).code == 0
    env = clean_env(
        GHAPPLETS_CONNECTORS__GITHUB__BASE_URL=github.base_url,
        GHAPPLETS_CONNECTORS__GITHUB__APP_ID="1001",
        GHAPPLETS_CONNECTORS__GITHUB__INSTALLATION_ID="2001",
    )
    result = ghapplets(
        "invoke", "hello-python", "--fixture", "github:issues.opened", cwd=scaffolded, env=env
    )
    assert result.code == 0, result
    doc = json.loads(result.out)
    assert doc["ok"] is True
    assert "/octo-org/hello-world/issues/1347#issuecomment-" in doc["result"]["comment"]
    [posted] = github.requests("/repos/octo-org/hello-world/issues/1347/comments", method="POST")
    assert posted.json()["body"].startswith("Thanks @monalisa for opening #1347")


def test_invoke_without_the_connectors_secret_fails_its_action(scaffolded: Path) -> None:
    result = ghapplets(
        "invoke", "hello-python", "--fixture", "github:issues.opened", cwd=scaffolded
    )
    assert result.code == 1, result
    error = json.loads(result.out)["error"]
    assert error["type"] == "ConnectorUnusable"
    assert "no stored secret named 'github-app-key'" in error["message"]


def test_invoke_an_event_file(scaffolded: Path) -> None:
    event = fixture_event("github", "push")
    path = scaffolded / "event.json"
    path.write_bytes(event.to_json())
    result = cli("invoke", "hello-shell", path, "-p", scaffolded)
    assert result.code == 0, result
    assert json.loads(result.out)["result"]["type"] == "com.github.push"


def test_an_applet_that_exits_75_makes_invoke_exit_75(scaffolded: Path) -> None:
    add_exec_applet(
        scaffolded, "busy", "#!/bin/sh\ncat >/dev/null\necho 'try later' >&2\nexit 75\n"
    )
    result = ghapplets("invoke", "busy", "--fixture", "github:push", cwd=scaffolded)
    assert result.code == 75, result
    doc = json.loads(result.out)
    assert doc["ok"] is False and doc["error"]["retryable"] is True
    assert "try later" in result.err  # the applet's stderr is its log


def test_a_permanent_failure_exits_1(scaffolded: Path) -> None:
    add_exec_applet(scaffolded, "broken", "#!/bin/sh\ncat >/dev/null\nexit 3\n")
    result = cli("invoke", "broken", "--fixture", "github:push", "-p", scaffolded)
    assert result.code == 1, result
    assert json.loads(result.out)["error"]["retryable"] is False


def test_invoke_passes_declared_secrets_and_never_prints_them(scaffolded: Path) -> None:
    assert cli("secrets", "set", "tok", "--value", TOKEN, "-p", scaffolded).code == 0
    script = (
        "#!/bin/sh\ncat >/dev/null\n"
        'echo "using $GHAPPLETS_SECRET_TOK" >&2\n'
        'printf \'{"length": %s}\\n\' "${#GHAPPLETS_SECRET_TOK}"\n'
    )
    add_exec_applet(scaffolded, "secretive", script, "secrets: [tok]\n")
    result = ghapplets("invoke", "secretive", "--fixture", "github:push", cwd=scaffolded)
    assert result.code == 0, result
    assert json.loads(result.out)["result"] == {"length": len(TOKEN)}
    assert "using ***" in result.err
    assert TOKEN not in result.out + result.err


def test_a_declared_secret_that_is_not_stored_exits_4(scaffolded: Path) -> None:
    add_exec_applet(scaffolded, "needy", "#!/bin/sh\ncat\n", "secrets: [missing]\n")
    result = cli("invoke", "needy", "--fixture", "github:push", "-p", scaffolded)
    assert result.code == 4, result
    assert "'missing'" in result.err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a structured CloudEvent"),
        ("{}", "missing required attribute(s): id, source, type"),
        ("[1, 2]", "not a structured CloudEvent"),
        (None, "No such file or directory"),
    ],
)
def test_a_bad_event_file_exits_2(scaffolded: Path, content: str | None, message: str) -> None:
    path = scaffolded / "event.json"
    if content is not None:
        path.write_text(content)
    result = cli("invoke", "hello-python", path, "-p", scaffolded)
    assert result.code == 2, result
    assert str(path) in result.err and message in result.err
    assert result.out == ""


def test_a_bad_event_file_as_a_subprocess(scaffolded: Path) -> None:
    (scaffolded / "bad.json").write_text("{oops")
    result = ghapplets("invoke", "hello-python", "bad.json", cwd=scaffolded)
    assert result.code == 2, result
    assert "error: bad.json: not a structured CloudEvent" in result.err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("hello-python", "--fixture", "github"), 2, "--fixture takes KIND:EVENT"),
        (("hello-python", "--fixture", "gitbub:push"), 2, "unknown source kind 'gitbub'"),
        (("hello-python", "--fixture", "github:nope"), 2, "no github fixture 'nope'"),
        (("hello-python",), 2, "give an event file"),
        (("nope", "--fixture", "github:push"), 4, "no applet named 'nope'; known: hello-python"),
    ],
)
def test_invoke_usage_errors(scaffolded: Path, args: tuple[str, ...], code: int, message: str):
    result = cli("invoke", *args, "-p", scaffolded)
    assert result.code == code, result
    assert message in result.err


def test_invoke_with_a_broken_manifest_exits_3(scaffolded: Path) -> None:
    manifest = scaffolded / "applets/hello-shell/applet.yaml"
    manifest.write_text(manifest.read_text() + "bogus: 1\n")
    result = cli("invoke", "hello-python", "--fixture", "github:push", "-p", scaffolded)
    assert result.code == 3, result
    assert f"{manifest}:9:1: bogus: unknown key" in result.err
