"""Applet discovery and manifest validation with line-precise errors."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ghapplets.applets.loader import discover, load_manifest
from ghapplets.exceptions import ConfigError


def write(folder: Path, text: str, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "applet.yaml").write_text(text.lstrip("\n"))
    for name, content in files.items():
        path = (
            folder / name.replace("_", ".", 1) if name.endswith(("_sh", "_py")) else folder / name
        )
        path.write_text(content)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return folder / "applet.yaml"


EXEC = """
name: {name}
runtime: exec
command: [./run.sh, --flag]
on:
  - com.github.pull_request.closed
  - type: com.github.push
    when: '.data.ref == "refs/heads/main"'
secrets: [github-token]
"""


def problems(err: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return [str(p) for p in err.value.problems]


def test_discovers_subfolders_and_the_dir_itself(tmp_path: Path) -> None:
    write(tmp_path / "apps" / "b-exec", EXEC.format(name="b-exec"), run_sh="#!/bin/sh\n")
    write(tmp_path / "apps" / "a-http", "name: a-http\nruntime: http\nurl: http://fn.local/x\n")
    (tmp_path / "apps" / "not-an-applet").mkdir()
    (tmp_path / "apps" / "README.md").write_text("hi")
    write(tmp_path / "single", "name: single\nruntime: http\nurl: https://x.example\non: a.b\n")
    specs = discover([tmp_path / "apps", tmp_path / "single"])
    assert [s.name for s in specs] == ["a-http", "b-exec", "single"]
    b = specs[1]
    assert b.folder == (tmp_path / "apps" / "b-exec").resolve()
    assert b.command == ["./run.sh", "--flag"]
    assert [s.type for s in b.on] == ["com.github.pull_request.closed", "com.github.push"]
    assert b.on[1].when == '.data.ref == "refs/heads/main"'
    assert specs[2].on[0].type == "a.b"


def test_load_manifest_by_file_or_folder(tmp_path: Path) -> None:
    path = write(tmp_path / "x", "name: x\nruntime: http\nurl: http://h/\n")
    assert load_manifest(path).name == load_manifest(path.parent).name == "x"


def test_malformed_yaml_is_located(tmp_path: Path) -> None:
    path = write(tmp_path / "bad", "name: bad\nruntime: exec\ncommand: [./run.sh\non: x\n")
    with pytest.raises(ConfigError) as err:
        discover([tmp_path])
    [message] = problems(err)
    assert message.startswith(f"{path}:") and "invalid YAML" in message


def test_missing_command_for_exec_is_located_at_runtime(tmp_path: Path) -> None:
    path = write(tmp_path / "e", "name: e\ndescription: d\nruntime: exec\n")
    with pytest.raises(ConfigError) as err:
        load_manifest(path)
    assert problems(err) == [
        f"{path}:3:1: runtime: runtime 'exec' needs 'command': [program, args...]"
    ]


def test_wrong_types_are_located(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t",
        "name: t\nruntime: http\nurl: http://h/\ntimeout: soon\nretry:\n  max_attempts: many\n",
    )
    with pytest.raises(ConfigError) as err:
        load_manifest(path)
    found = problems(err)
    assert found[0].startswith(f"{path}:4:1: timeout: Input should be a valid number")
    assert found[1].startswith(f"{path}:6:3: retry.max_attempts: Input should be a valid integer")


def test_unknown_keys_are_rejected_with_a_suggestion(tmp_path: Path) -> None:
    path = write(
        tmp_path / "u", "name: u\nruntime: exec\ncomand: [x]\ncommand: [x]\nretry:\n  factr: 2\n"
    )
    with pytest.raises(ConfigError) as err:
        load_manifest(path)
    assert problems(err) == [
        f"{path}:3:1: comand: unknown key (did you mean 'command'?)",
        f"{path}:6:3: retry.factr: unknown key (did you mean 'factor'?)",
    ]


def test_duplicate_names_located_at_second_name(tmp_path: Path) -> None:
    first = write(tmp_path / "a", "runtime: http\nname: same\nurl: http://h/\n")
    second = write(tmp_path / "b", "runtime: http\nurl: http://h/\nname: same\n")
    with pytest.raises(ConfigError) as err:
        discover([tmp_path])
    assert problems(err) == [f"{second}:3:1: name: duplicate applet name 'same' (also in {first})"]


def test_all_problems_collected_and_missing_dir(tmp_path: Path) -> None:
    write(tmp_path / "a", "name: A!\nruntime: http\nurl: http://h/\n")
    write(tmp_path / "b", "name: b\nruntime: ftp\n")
    write(tmp_path / "c", "name: c\nruntime: http\nurl: http://h/\n")
    with pytest.raises(ConfigError) as err:
        discover([tmp_path, tmp_path / "missing"])
    found = problems(err)
    assert len(found) == 3
    assert f"{tmp_path / 'missing'}:1:1: applet directory not found" in found
    assert any(
        p.startswith(f"{tmp_path / 'a' / 'applet.yaml'}:1:1: name: String should match")
        for p in found
    )
    assert any(
        "b/applet.yaml:2:1: runtime: Input should be 'python', 'exec' or 'http'" in p for p in found
    )


def test_exec_program_checks(tmp_path: Path) -> None:
    missing = write(tmp_path / "m", "name: m\nruntime: exec\ncommand: [./run.sh]\n")
    folder = tmp_path / "n"
    noexec = write(folder, "name: n\nruntime: exec\ncommand:\n  - handler.js\n")
    (folder / "handler.js").write_text("console.log('{}')\n")
    write(tmp_path / "p", "name: p\nruntime: exec\ncommand: [node, handler.js]\n")
    with pytest.raises(ConfigError) as err:
        discover([tmp_path])
    assert problems(err) == [
        f"{missing}:3:11: command.0: './run.sh' not found in {(tmp_path / 'm').resolve()}",
        f"{noexec}:4:5: command.0: 'handler.js' is not executable: chmod +x it, or put its "
        "interpreter first (command: [python3, handler.js])",
    ]


def test_bad_when_and_secret_problems(tmp_path: Path) -> None:
    path = write(
        tmp_path / "w",
        """
name: w
runtime: http
url: http://h/
headers:
  Authorization: Bearer ${secrets.token}
secrets: [a-b, a_b]
on:
  - type: a.b
    when: '.data | ['
""",
    )
    with pytest.raises(ConfigError) as err:
        load_manifest(path)
    found = problems(err)
    assert found[0].startswith(f"{path}:9:5: on.0.when: invalid jq: jq: error: syntax error")
    assert found[1] == f"{path}:6:16: secrets.1: 'a_b' and 'a-b' both map to GHAPPLETS_SECRET_A_B"
    assert (
        found[2] == f"{path}:5:3: headers.Authorization: uses secret 'token', which is not "
        "in 'secrets:'"
    )


@pytest.mark.parametrize("name", ["key", "KEY", "Key"])
def test_a_secret_named_like_the_key_variable_is_refused(tmp_path: Path, name: str) -> None:
    """It would reach an exec applet as GHAPPLETS_SECRET_KEY, the platform's own variable."""
    path = write(
        tmp_path / "k",
        f"""
name: k
runtime: exec
command: [./run.sh]
on: [a.b]
secrets: [ok-token, {name}]
""",
        run_sh="#!/bin/sh\n",
    )
    with pytest.raises(ConfigError) as err:
        load_manifest(path)
    assert problems(err) == [
        f"{path}:5:21: secrets.1: secret name {name!r} is reserved: exec applets would get it "
        "as GHAPPLETS_SECRET_KEY, the variable that holds the secrets key; choose another name"
    ]


def test_not_a_mapping_and_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path / "l", "- just\n- a list\n")
    with pytest.raises(ConfigError, match=r"1:1: expected a mapping"):
        load_manifest(path)
    empty = write(tmp_path / "e", "")
    with pytest.raises(ConfigError, match="name: Field required"):
        load_manifest(empty)


def test_hidden_and_cache_folders_are_skipped(tmp_path: Path) -> None:
    write(tmp_path / ".git", "name: hidden\nruntime: http\nurl: http://h/\n")
    write(tmp_path / "__pycache__", "name: cache\nruntime: http\nurl: http://h/\n")
    write(tmp_path / "real", "name: real\nruntime: http\nurl: http://h/\n")
    assert [s.name for s in discover([tmp_path])] == ["real"]


def test_python_applet_without_import(tmp_path: Path) -> None:
    folder = tmp_path / "py"
    write(folder, "name: py\nruntime: python\nentry: handler.py\n")
    (folder / "handler.py").write_text("raise RuntimeError('must not be imported')\n")
    [spec] = discover([tmp_path], import_python=False)
    assert spec.on == []
    with pytest.raises(ConfigError, match="RuntimeError: must not be imported"):
        discover([tmp_path])


def test_missing_python_entry_file(tmp_path: Path) -> None:
    path = write(tmp_path / "py", "name: py\nruntime: python\nentry: nope.py\n")
    with pytest.raises(ConfigError) as err:
        load_manifest(path)
    [message] = problems(err)
    assert message.startswith(f"{path}:3:1: entry: 'entry' file") and "not found" in message
