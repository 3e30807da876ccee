"""``ghapplets secrets``: values go in encrypted and come out only with ``--reveal``."""

from __future__ import annotations

from pathlib import Path

import pytest

from ghapplets.secrets.crypto import generate_key
from tests.cli.helpers import Result, clean_env, cli, ghapplets

VALUE = "s3cr3t-Value_with spaces & symbols!"
OTHER = "another-value-7c1f0e"


def secrets(project: Path, *args: object, env: dict[str, str] | None = None, **kw: str) -> Result:
    return cli("secrets", *args, "-p", project, env=env, **kw)


def db_bytes(project: Path) -> bytes:
    files = sorted((project / ".ghapplets").glob("ghapplets.db*"))
    assert files, "no database files"
    return b"".join(f.read_bytes() for f in files)


def test_set_list_get_reveal_rm(tmp_path: Path) -> None:
    # from standard input (a real pipe, in a subprocess); the trailing newline is not kept
    piped = ghapplets("secrets", "set", "api-token", cwd=tmp_path, input=VALUE + "\n")
    assert piped.code == 0, piped
    assert "stored secret api-token (global)" in piped.out
    # from --value, with a scope
    assert secrets(tmp_path, "set", "jira", "--value", OTHER, "--scope", "applet:x").code == 0

    listed = secrets(tmp_path, "list")
    assert listed.code == 0 and "api-token" in listed.out and "applet:x" in listed.out
    rows = secrets(tmp_path, "list", "--json").json_lines()
    assert [(r["name"], r["scope"]) for r in rows] == [
        ("api-token", "global"),
        ("jira", "applet:x"),
    ]
    assert all(set(r) == {"name", "scope", "created_at", "updated_at"} for r in rows)
    for result in (listed, piped):
        assert VALUE not in result.out + result.err

    masked = secrets(tmp_path, "get", "api-token")
    assert masked.code == 0, masked
    assert VALUE not in masked.out and "********" in masked.out
    assert f"({len(VALUE)} characters)" in masked.out and "--reveal" in masked.out

    revealed = secrets(tmp_path, "get", "api-token", "--reveal")
    assert revealed.code == 0 and revealed.out == VALUE + "\n"
    assert secrets(tmp_path, "get", "jira", "--reveal").out == OTHER + "\n"

    # set again replaces the value
    assert secrets(tmp_path, "set", "jira", input="replaced-value\n").code == 0
    assert secrets(tmp_path, "get", "jira", "--reveal").out == "replaced-value\n"

    removed = secrets(tmp_path, "rm", "jira")
    assert removed.code == 0 and "removed secret jira" in removed.out
    gone = secrets(tmp_path, "get", "jira")
    assert gone.code == 4 and "no secret named 'jira'" in gone.err
    assert [r["name"] for r in secrets(tmp_path, "list", "--json").json_lines()] == ["api-token"]


def test_rm_unknown_exits_4(tmp_path: Path) -> None:
    assert secrets(tmp_path, "set", "seed", "--value", VALUE).code == 0
    result = secrets(tmp_path, "rm", "nope")
    assert result.code == 4 and "no secret named 'nope'" in result.err


def test_values_are_not_stored_in_plain_text(tmp_path: Path) -> None:
    for i in range(3):
        assert secrets(tmp_path, "set", f"token-{i}", "--value", f"{VALUE}-{i}").code == 0
    assert secrets(tmp_path, "set", "token-0", "--value", f"{OTHER}").code == 0  # overwrite
    assert secrets(tmp_path, "rm", "token-1").code == 0
    stored = db_bytes(tmp_path)
    assert b"token-2" in stored  # the names are there, so we read the right files
    for plain in (VALUE, OTHER, f"{VALUE}-0", f"{VALUE}-2", "s3cr3t-Value"):
        assert plain.encode() not in stored
        assert plain.encode("utf-16-le") not in stored


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("set", "bad name", "--value", "x"), "invalid secret name 'bad name'"),
        (("set", "ok", "--value", ""), "a secret value cannot be empty"),
        (("set", "key", "--value", "v"), "secret name 'key' is reserved: exec applets would"),
        (("set", "KEY", "--value", "v"), "as GHAPPLETS_SECRET_KEY, the variable that holds"),
        (("set", "ok", "--value", "v", "--scope", "team-a"), "invalid scope 'team-a'"),
        (("set", "ok", "--value", "v", "--scope", "applet:"), "use global, applet:<name> or"),
    ],
)
def test_set_rejects_bad_input_with_exit_2(tmp_path: Path, args: tuple[str, ...], message: str):
    result = secrets(tmp_path, *args)
    assert result.code == 2, result
    assert message in result.err


def test_an_empty_stdin_is_not_a_value(tmp_path: Path) -> None:
    result = secrets(tmp_path, "set", "x", input="\n")
    assert result.code == 2 and "cannot be empty" in result.err


def test_a_wrong_key_is_a_clear_error(tmp_path: Path) -> None:
    assert secrets(tmp_path, "set", "api-token", "--value", VALUE).code == 0
    env = clean_env(GHAPPLETS_SECRET_KEY=generate_key())
    result = ghapplets("secrets", "get", "api-token", "--reveal", cwd=tmp_path, env=env)
    assert result.code == 3, result
    assert "secret 'api-token' does not decrypt with this key" in result.err
    assert "GHAPPLETS_SECRET_KEY" in result.err
    assert VALUE not in result.out + result.err


@pytest.mark.parametrize(
    "command", [("get", "x"), ("set", "x", "--value", "v"), ("list",), ("rm", "x")]
)
@pytest.mark.parametrize("key", ["not base64 at all!", "c2hvcnQ="])
def test_a_malformed_key_variable_exits_3(tmp_path: Path, command: tuple[str, ...], key: str):
    assert secrets(tmp_path, "set", "x", "--value", VALUE).code == 0
    result = secrets(tmp_path, *command, env={"GHAPPLETS_SECRET_KEY": key})
    assert result.code == 3, result
    assert "GHAPPLETS_SECRET_KEY" in result.err


def test_a_malformed_key_as_a_subprocess_has_no_traceback(tmp_path: Path) -> None:
    assert secrets(tmp_path, "set", "x", "--value", VALUE).code == 0
    result = ghapplets("secrets", "list", cwd=tmp_path, env=clean_env(GHAPPLETS_SECRET_KEY="abc"))
    assert result.code == 3, result
    assert result.err == "error: GHAPPLETS_SECRET_KEY is not URL-safe base64\n"


def test_reading_where_there_is_no_data_is_a_clear_error_and_creates_nothing(
    tmp_path: Path,
) -> None:
    for command in (("get", "x"), ("list",), ("rm", "x")):
        result = secrets(tmp_path, *command)
        assert result.code == 4 and "no Ghapplets data" in result.err, result
    assert not (tmp_path / ".ghapplets").exists()


def test_a_corrupt_key_file_is_a_clear_error(tmp_path: Path) -> None:
    assert secrets(tmp_path, "set", "x", "--value", VALUE).code == 0
    (tmp_path / ".ghapplets" / "secret.key").write_text("short\n")
    result = secrets(tmp_path, "get", "x")
    assert result.code == 3, result
    assert "secret.key" in result.err
