"""``ghapplets secrets``: values go in encrypted and come out only with ``--reveal``."""

from __future__ import annotations

import asyncio
import base64
import stat
from pathlib import Path

import pytest

from ghapplets.backends import open_backends
from ghapplets.config.models import ProjectConfig
from ghapplets.secrets.crypto import (
    Cipher,
    encode_key,
    generate_key,
    key_id,
    read_key_file,
    write_key_file,
)
from ghapplets.secrets.vault import SecretVault
from ghapplets.store.records import SecretRecord
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
    assert all(set(r) == {"name", "scope", "created_at", "updated_at", "key_id"} for r in rows)
    assert len({r["key_id"] for r in rows}) == 1
    for result in (listed, piped):
        assert VALUE not in result.out + result.err

    masked = secrets(tmp_path, "get", "api-token")
    assert masked.code == 0, masked
    assert VALUE not in masked.out and "********" in masked.out
    assert f"({len(VALUE)} characters)" in masked.out and "--reveal" in masked.out

    revealed = secrets(tmp_path, "get", "api-token", "--reveal")
    assert revealed.code == 0 and revealed.out == VALUE + "\n"
    assert secrets(tmp_path, "get", "jira", "--reveal").out == OTHER + "\n"

    # set again replaces the value, and keeps the scope unless one is given
    replaced = secrets(tmp_path, "set", "jira", input="replaced-value\n")
    assert replaced.code == 0 and "stored secret jira (applet:x)" in replaced.out, replaced
    assert secrets(tmp_path, "get", "jira", "--reveal").out == "replaced-value\n"
    scopes = {r["name"]: r["scope"] for r in secrets(tmp_path, "list", "--json").json_lines()}
    assert scopes == {"api-token": "global", "jira": "applet:x"}
    moved = secrets(tmp_path, "set", "jira", "--scope", "global", input="replaced-value\n")
    assert moved.code == 0 and "stored secret jira (global)" in moved.out, moved

    removed = secrets(tmp_path, "rm", "jira")
    assert removed.code == 0 and "removed secret jira" in removed.out
    gone = secrets(tmp_path, "get", "jira")
    assert gone.code == 4 and "no stored secret named 'jira'" in gone.err
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
    assert "secret 'api-token' is encrypted with key " in result.err
    assert "wrong GHAPPLETS_SECRET_KEY or secret.key?" in result.err
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


# -- rotate-key ------------------------------------------------------------------------------
def key_path(project: Path, name: str = "secret.key") -> Path:
    return project / ".ghapplets" / name


def key_ids(project: Path, env: dict[str, str] | None = None) -> set[str]:
    return {r["key_id"] for r in secrets(project, "list", "--json", env=env).json_lines()}


def test_rotate_key_re_encrypts_every_secret_and_replaces_the_key_file(tmp_path: Path) -> None:
    values = {f"token-{i}": f"{VALUE}-{i}" for i in range(3)}
    for name, value in values.items():
        assert secrets(tmp_path, "set", name, "--value", value).code == 0
    old_key = read_key_file(key_path(tmp_path))
    stored_before = db_bytes(tmp_path)

    result = secrets(tmp_path, "rotate-key")
    assert result.code == 0, result
    new_key = read_key_file(key_path(tmp_path))
    assert new_key != old_key
    assert read_key_file(key_path(tmp_path, "secret.key.old")) == old_key
    assert not key_path(tmp_path, "secret.key.new").exists()
    for name in ("secret.key", "secret.key.old"):
        assert stat.S_IMODE(key_path(tmp_path, name).stat().st_mode) == 0o600
    assert f"re-encrypted 3 secrets under key {key_id(new_key)} (was {key_id(old_key)})" in (
        result.out
    )
    old_file = key_path(tmp_path, "secret.key.old")
    assert f"To roll back: ghapplets secrets rotate-key --key-file {old_file}" in result.out
    for key in (new_key, old_key):  # the key itself is never printed
        assert encode_key(key) not in result.out + result.err
    assert key_ids(tmp_path) == {key_id(new_key)}
    for name, value in values.items():
        assert secrets(tmp_path, "get", name, "--reveal").out == value + "\n"
    stored_after = db_bytes(tmp_path)
    for value in values.values():
        assert value.encode() not in stored_after
    assert stored_after != stored_before

    # roll back: rotate again, to the previous key
    back = secrets(tmp_path, "rotate-key", "--key-file", old_file)
    assert back.code == 0, back
    assert read_key_file(key_path(tmp_path)) == old_key
    assert read_key_file(old_file) == new_key
    assert key_ids(tmp_path) == {key_id(old_key)}
    assert secrets(tmp_path, "get", "token-1", "--reveal").out == values["token-1"] + "\n"


def test_rotate_key_as_a_subprocess(tmp_path: Path) -> None:
    assert secrets(tmp_path, "set", "api-token", "--value", VALUE).code == 0
    result = ghapplets("secrets", "rotate-key", cwd=tmp_path)
    assert result.code == 0, result
    assert "re-encrypted 1 secret under key" in result.out
    again = ghapplets("secrets", "get", "api-token", "--reveal", cwd=tmp_path)
    assert again.out == VALUE + "\n"


def test_rotate_key_with_the_key_in_the_environment(tmp_path: Path) -> None:
    env = {"GHAPPLETS_SECRET_KEY": generate_key()}
    assert secrets(tmp_path, "set", "api-token", "--value", VALUE, env=env).code == 0

    refused = secrets(tmp_path, "rotate-key", env=env)
    assert refused.code == 2, refused
    assert "the key is in GHAPPLETS_SECRET_KEY" in refused.err
    assert "--new-key-file PATH" in refused.err

    new_file = tmp_path / "new.key"
    done = secrets(tmp_path, "rotate-key", "--new-key-file", new_file, env=env)
    assert done.code == 0, done
    new_key = read_key_file(new_file)
    assert stat.S_IMODE(new_file.stat().st_mode) == 0o600
    assert encode_key(new_key) not in done.out + done.err
    assert f"now set GHAPPLETS_SECRET_KEY to the key in {new_file}" in done.out
    assert not key_path(tmp_path).exists()  # no key file appears: the key lives in the env
    stale = secrets(tmp_path, "get", "api-token", "--reveal", env=env)
    assert stale.code == 3 and f"encrypted with key {key_id(new_key)}" in stale.err, stale
    fresh = {"GHAPPLETS_SECRET_KEY": encode_key(new_key)}
    assert secrets(tmp_path, "get", "api-token", "--reveal", env=fresh).out == VALUE + "\n"

    taken = secrets(tmp_path, "rotate-key", "--new-key-file", new_file, env=fresh)
    assert taken.code == 2 and "exists: name a new file" in taken.err, taken
    assert read_key_file(new_file) == new_key
    file_mode = secrets(tmp_path, "rotate-key", "--new-key-file", tmp_path / "x.key")
    assert file_mode.code == 2 and "--new-key-file is for a key in" in file_mode.err


async def _rotate_without_installing(project: Path, key: bytes) -> None:
    """What a rotate-key killed after its commit leaves: rows under the new key, the new key
    in secret.key.new, secret.key still the old one."""
    data = project / ".ghapplets"
    write_key_file(data / "secret.key.new", key)
    async with open_backends(ProjectConfig(), data) as b:
        await b.vault.rotate(key)


def test_an_interrupted_rotation_reads_and_is_finished_by_running_it_again(
    tmp_path: Path,
) -> None:
    assert secrets(tmp_path, "set", "api-token", "--value", VALUE).code == 0
    old_key = read_key_file(key_path(tmp_path))
    key = base64.urlsafe_b64decode(generate_key())
    asyncio.run(_rotate_without_installing(tmp_path, key))
    assert secrets(tmp_path, "get", "api-token", "--reveal").out == VALUE + "\n"

    given = secrets(tmp_path, "rotate-key", "--key-file", key_path(tmp_path))
    assert given.code == 2 and "interrupted rotation" in given.err, given
    result = secrets(tmp_path, "rotate-key")
    assert result.code == 0, result
    assert "finishing the rotation" in result.out
    assert read_key_file(key_path(tmp_path)) == key
    assert read_key_file(key_path(tmp_path, "secret.key.old")) == old_key
    assert not key_path(tmp_path, "secret.key.new").exists()
    assert secrets(tmp_path, "get", "api-token", "--reveal").out == VALUE + "\n"


async def _store_under_an_unknown_key(project: Path) -> None:
    async with open_backends(ProjectConfig(), project / ".ghapplets") as b:
        stranger = Cipher(base64.urlsafe_b64decode(generate_key()))
        blob = stranger.encrypt("lost", "global", b"lost-value")
        await b.secret_store.put_secret(SecretRecord("lost", "global", blob, 1.0, 1.0))
        assert isinstance(b.vault, SecretVault)


def test_a_failed_rotation_changes_nothing(tmp_path: Path) -> None:
    assert secrets(tmp_path, "set", "api-token", "--value", VALUE).code == 0
    asyncio.run(_store_under_an_unknown_key(tmp_path))
    key_before = read_key_file(key_path(tmp_path))
    rows_before = secrets(tmp_path, "list", "--json").json_lines()
    result = secrets(tmp_path, "rotate-key")
    assert result.code == 3, result
    assert "secret 'lost' does not decrypt" in result.err
    assert "the secrets were not changed" in result.err
    assert read_key_file(key_path(tmp_path)) == key_before
    assert sorted(p.name for p in (tmp_path / ".ghapplets").glob("secret.key*")) == ["secret.key"]
    assert secrets(tmp_path, "list", "--json").json_lines() == rows_before
    assert secrets(tmp_path, "get", "api-token", "--reveal").out == VALUE + "\n"


def test_rotate_key_needs_a_key(tmp_path: Path) -> None:
    result = secrets(tmp_path, "rotate-key")
    assert result.code == 4 and "no key to rotate" in result.err, result
