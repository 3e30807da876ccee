"""``ghapplets validate``: exit 0 on a good project, exit 3 with ``file:LINE:COL:`` otherwise."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.cli.helpers import clean_env, cli, ghapplets

# (manifest, line, column, text in the message); each is applets/bad/applet.yaml
BAD_MANIFESTS = {
    "bad-yaml": (
        """\
        name: bad
        runtime: exec
        command: [./run]
        on:
          - com.github.*
         description: mis-indented
        timeout: 3
        """,
        6,
        2,
        "invalid YAML",
    ),
    "timeout-soon": (
        """\
        name: bad
        runtime: exec
        command: [./run]
        timeout: soon
        """,
        4,
        1,
        "timeout: Input should be a valid number",
    ),
    "exec-without-command": (
        """\
        # an exec applet needs a program to run
        name: bad
        runtime: exec
        on: [com.github.*]
        """,
        3,
        1,
        # the hint in brackets is plain text, not Rich markup that vanishes
        "runtime: runtime 'exec' needs 'command': [program, args...]",
    ),
    "unknown-key": (
        """\
        name: bad
        runtime: exec
        command: [./run]

        timout: 3
        """,
        5,
        1,
        "timout: unknown key (did you mean 'timeout'?)",
    ),
    "unknown-nested-key": (
        """\
        name: bad
        runtime: exec
        command: [./run]
        retry:
          max_attempts: 3
          backof: 2
        """,
        6,
        3,
        "retry.backof: unknown key",
    ),
    "not-executable": (
        """\
        name: bad
        runtime: exec
        command: [./not-executable]
        """,
        3,
        11,
        "(command: [python3, ./not-executable])",
    ),
}


@pytest.fixture
def bad_applet(scaffolded: Path) -> Path:
    folder = scaffolded / "applets" / "bad"
    folder.mkdir()
    (folder / "run").write_text("#!/bin/sh\ncat\n")
    (folder / "run").chmod(0o755)
    (folder / "not-executable").write_text("#!/bin/sh\n")
    return folder / "applet.yaml"


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_a_broken_manifest_is_a_located_error(scaffolded: Path, bad_applet: Path, case: str):
    text, line, col, message = BAD_MANIFESTS[case]
    bad_applet.write_text(textwrap.dedent(text))
    result = cli("validate", "-p", scaffolded)
    assert result.code == 3, result
    lines = result.err.splitlines()
    assert lines[0].startswith(f"{bad_applet}:{line}:{col}: "), result
    assert message in lines[0], result
    assert result.out == ""


def test_validate_reports_every_broken_manifest_at_once(scaffolded: Path) -> None:
    for name, body in {"one": "name: one\nruntime: exec\n", "two": "name: two\nbogus: 1\n"}.items():
        (scaffolded / "applets" / name).mkdir()
        (scaffolded / "applets" / name / "applet.yaml").write_text(body)
    result = cli("validate", "-p", scaffolded)
    assert result.code == 3, result
    assert "applets/one/applet.yaml:2:1: runtime: runtime 'exec' needs 'command'" in result.err
    assert "applets/two/applet.yaml:2:1: bogus: unknown key" in result.err


CONFIG_HEAD = "# my project\nproject: demo\napplets:\n  - applets\n"

# (ghapplets.yaml after CONFIG_HEAD's 4 lines, line, column, message)
BAD_CONFIGS = {
    "unknown-source-kind": (
        "sources:\n  gh:\n    kind: gitbub\n    secret: x\n",
        7,
        5,
        "sources.gh.kind: unknown source kind 'gitbub' (did you mean 'github'?)",
    ),
    "port-not-a-number": (
        'server: {host: 0.0.0.0, port: "x"}\n',
        5,
        25,
        "server.port: Input should be a valid integer",
    ),
    "port-block-style": (
        "server:\n  host: 0.0.0.0\n  port: x\n",
        7,
        3,
        "server.port: Input should be a valid integer",
    ),
    "unknown-source-key": (
        "sources:\n  github:\n    kind: github\n    secret: x\n    secrit: y\n",
        9,
        5,
        "sources.github.secrit: Extra inputs are not permitted",
    ),
    "duplicate-key": (
        "server:\n  port: 1\n  port: 2\n",
        7,
        3,
        "server: duplicate key 'port'",
    ),
    "bad-yaml": ("server:\n  port: [1, 2\n", 7, 1, "invalid YAML"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_a_broken_config_is_a_located_error(scaffolded: Path, case: str) -> None:
    tail, line, col, message = BAD_CONFIGS[case]
    config = scaffolded / "ghapplets.yaml"
    config.write_text(CONFIG_HEAD + tail)
    result = cli("validate", "-p", scaffolded)
    assert result.code == 3, result
    first = result.err.splitlines()[0]
    assert first.startswith(f"{config}:{line}:{col}: "), result
    assert message in first, result


def test_a_missing_applets_folder_is_located_at_its_list_item(scaffolded: Path) -> None:
    config = scaffolded / "ghapplets.yaml"
    config.write_text("project: demo\napplets:\n  - applets\n  - missing\n")
    result = cli("validate", "-p", scaffolded)
    assert result.code == 3, result
    assert result.err.strip() == f"{config}:4:5: applets.1: folder 'missing' does not exist"


def test_validate_outside_a_project_says_so(tmp_path: Path) -> None:
    result = cli("validate", "-p", tmp_path)
    assert result.code == 3, result
    assert "no ghapplets.yaml" in result.err and "ghapplets init" in result.err


def test_validate_as_a_subprocess_prints_the_location_and_no_traceback(
    scaffolded: Path, bad_applet: Path
) -> None:
    bad_applet.write_text("name: bad\nruntime: exec\ncommand: [./run]\ntimeout: soon\n")
    result = ghapplets("validate", cwd=scaffolded)
    assert result.code == 3, result
    assert f"{bad_applet}:4:1: timeout: " in result.err


def test_an_override_error_names_its_variable(scaffolded: Path) -> None:
    result = cli("validate", "-p", scaffolded, env={"GHAPPLETS_SERVER__PORT": "eighty"})
    assert result.code == 3, result
    assert "server.port: Input should be a valid integer" in result.err
    assert "(from GHAPPLETS_SERVER__PORT)" in result.err


def test_unrelated_ghapplets_variables_are_not_overrides(scaffolded: Path) -> None:
    # `send --secret` reads GHAPPLETS_SEND_SECRET; exec applets see GHAPPLETS_JOB_ID & co.
    env = clean_env(GHAPPLETS_SEND_SECRET="s", GHAPPLETS_JOB_ID="j", GHAPPLETS_SECRET_TOKEN="t")
    result = ghapplets("validate", cwd=scaffolded, env=env)
    assert result.code == 0, result


def test_validate_notes_the_old_name_of_storage_sync(scaffolded: Path) -> None:
    config = scaffolded / "ghapplets.yaml"
    config.write_text(config.read_text() + "storage:\n  synchronous: full\n")
    result = cli("validate", "-p", scaffolded)
    assert result.code == 0, result
    assert "note: storage.synchronous is deprecated: write 'storage.sync: full' instead" in (
        result.out
    )
    config.write_text(config.read_text().replace("synchronous: full", "sync: full"))
    result = cli("validate", "-p", scaffolded)
    assert result.code == 0 and "note:" not in result.out, result
    wrong = cli("validate", "-p", scaffolded, env={"GHAPPLETS_STORAGE__SYNC": "always"})
    assert wrong.code == 3 and "storage.sync" in wrong.err, wrong
