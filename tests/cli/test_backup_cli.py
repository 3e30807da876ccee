"""``backup``, ``backup verify`` and ``restore`` on the embedded store, in-process: the archive's
members and mode, the key only when asked, damaged archives refused before anything is
written, a non-empty target refused without ``--force``, and no restore beside a server."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from ghapplets.backup.archive import Archive
from ghapplets.backup.tables import DEDUP_MEMBER, EVENTS_MEMBER, KEY_MEMBER, member_of, tables
from ghapplets.datadir import hold
from ghapplets.secrets.crypto import KEY_FILE, decode_key, key_id, write_key_file
from tests.cli.helpers import GHAPPLETS, Result, clean_env, cli
from tests.servers.postgres import PostgresServer

VALUE = "backup-secret-value-6d1e"


@pytest.fixture
def project(scaffolded: Path) -> Path:
    stored = cli("secrets", "set", "api-token", "--value", VALUE, "-p", scaffolded)
    assert stored.code == 0, stored
    return scaffolded


@pytest.fixture
def private_umask() -> Iterator[None]:
    old = os.umask(0o022)  # what most shells have: files readable by everyone unless chmod'd
    try:
        yield
    finally:
        os.umask(old)


def backup(project: Path, path: Path, *args: str) -> Result:
    result = cli("backup", path, *args, "-p", project)
    assert result.code == 0, result
    return result


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}  # type: ignore[union-attr]


def test_the_archive_is_private_and_holds_every_table_with_secrets_encrypted(
    project: Path, tmp_path: Path, private_umask: None
) -> None:
    path = tmp_path / "b.tgz"
    result = backup(project, path)
    assert "secrets" in result.out
    assert (path.stat().st_mode & 0o777) == 0o600
    got = members(path)
    names = list(got)
    assert names[0] == "manifest.json"
    assert set(names[1:]) == {member_of(t) for t in tables()} | {DEDUP_MEMBER, EVENTS_MEMBER}
    assert KEY_MEMBER not in got
    manifest = orjson.loads(got["manifest.json"])
    assert manifest["format"] == 1 and manifest["key"] is False
    assert manifest["storage"] == "sqlite" and manifest["schema"] == "0010"
    secrets = [orjson.loads(line) for line in got[member_of_name("secrets")].splitlines()]
    assert {s["name"] for s in secrets} >= {"api-token", "github-webhook"}
    assert manifest["counts"]["secrets"] == len(secrets)
    # the value is nowhere in clear; the key is not there either
    whole = b"".join(got.values())
    key = (project / ".ghapplets" / KEY_FILE).read_text().strip().encode()
    assert VALUE.encode() not in whole and key not in whole
    assert "leases" not in manifest["counts"] and "broker_messages" not in manifest["counts"]


def member_of_name(table: str) -> str:
    (t,) = [t for t in tables() if t.name == table]
    return member_of(t)


def test_include_key_puts_the_key_in_and_warns(project: Path, tmp_path: Path) -> None:
    path = tmp_path / "k.tgz"
    result = backup(project, path, "--include-key")
    assert "warning" in result.err and "secrets key" in result.err
    got = members(path)
    key = (project / ".ghapplets" / KEY_FILE).read_text().strip()
    assert got[KEY_MEMBER].decode().strip() == key
    assert orjson.loads(got["manifest.json"])["key"] is True
    plain = backup(project, tmp_path / "p.tgz")
    assert "warning" not in plain.err


def test_backup_to_standard_output(project: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [*GHAPPLETS, "backup", "-", "-p", project], capture_output=True, env=clean_env()
    )
    assert proc.returncode == 0, proc.stderr
    assert b"backed up" in proc.stderr  # the report goes to stderr: stdout is the archive
    path = tmp_path / "piped.tgz"
    path.write_bytes(proc.stdout)
    assert Archive(path).manifest.counts["secrets"] >= 2


def test_restore_into_an_empty_folder_brings_the_secrets_back(
    project: Path, tmp_path: Path
) -> None:
    path = tmp_path / "b.tgz"
    backup(project, path, "--include-key")
    target = tmp_path / "restored"
    restored = cli("restore", path, "-p", project, "--data-dir", target)
    assert restored.code == 0, restored
    assert "secrets" in restored.out and "queued again" in restored.out
    assert (target / KEY_FILE).stat().st_mode & 0o777 == 0o600
    got = cli("secrets", "get", "api-token", "--reveal", "-p", project, "--data-dir", target)
    assert got.code == 0, got
    assert got.out.strip() == VALUE

    again = cli("restore", path, "-p", project, "--data-dir", target)
    assert again.code == 1 and "not empty" in again.err, again
    forced = cli("restore", path, "--force", "-p", project, "--data-dir", target)
    assert forced.code == 0, forced


def test_restore_without_the_key_warns_when_there_is_none(project: Path, tmp_path: Path) -> None:
    path = tmp_path / "b.tgz"
    backup(project, path)
    target = tmp_path / "restored"
    restored = cli("restore", path, "-p", project, "--data-dir", target)
    assert restored.code == 0, restored
    assert "no key" in restored.err
    assert not (target / KEY_FILE).exists()


def test_restore_warns_when_the_key_here_is_not_the_one_of_the_secrets(
    project: Path, tmp_path: Path
) -> None:
    path = tmp_path / "b.tgz"
    backup(project, path)
    source_key = (project / ".ghapplets" / KEY_FILE).read_text().strip()
    target = tmp_path / "restored"
    target.mkdir(mode=0o700)
    write_key_file(target / KEY_FILE, os.urandom(32))  # another machine's key
    restored = cli("restore", path, "-p", project, "--data-dir", target)
    assert restored.code == 0, restored
    wanted = key_id(decode_key(source_key, "the source key"))
    assert f"encrypted with the key {wanted}" in restored.err, restored.err
    # with the source's key, nothing to say
    right = tmp_path / "right"
    right.mkdir(mode=0o700)
    write_key_file(right / KEY_FILE, decode_key(source_key, "the source key"))
    fine = cli("restore", path, "-p", project, "--data-dir", right)
    assert fine.code == 0 and "warning" not in fine.err, fine
    got = cli("secrets", "get", "api-token", "--reveal", "-p", project, "--data-dir", right)
    assert got.out.strip() == VALUE


def test_restore_refuses_a_folder_a_server_holds(project: Path, tmp_path: Path) -> None:
    path = tmp_path / "b.tgz"
    backup(project, path)
    target = tmp_path / "served"
    fd = hold(target)
    try:
        refused = cli("restore", path, "-p", project, "--data-dir", target)
    finally:
        os.close(fd)
    assert refused.code == 1, refused
    assert "in use by" in refused.err and str(os.getpid()) in refused.err
    assert not (target / "ghapplets.db").exists()


# -- damaged archives ----------------------------------------------------------------------------
def _rewrite(path: Path, change: Callable[[dict[str, bytes]], dict[str, bytes]]) -> None:
    got = change(members(path))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in got.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())


def _flip_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


def _truncate(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) * 2 // 3])


def _change_member(path: Path) -> None:
    def change(got: dict[str, bytes]) -> dict[str, bytes]:
        name = member_of_name("secrets")
        got[name] = got[name].replace(b'"global"', b'"gl0bal"')
        return got

    _rewrite(path, change)


def _drop_member(path: Path) -> None:
    _rewrite(path, lambda got: {k: v for k, v in got.items() if k != member_of_name("jobs")})


def _newer_format(path: Path) -> None:
    def change(got: dict[str, bytes]) -> dict[str, bytes]:
        manifest = orjson.loads(got["manifest.json"])
        manifest["format"] = 2
        got["manifest.json"] = orjson.dumps(manifest)
        return got

    _rewrite(path, change)


def _wrong_count(path: Path) -> None:
    def change(got: dict[str, bytes]) -> dict[str, bytes]:
        manifest = orjson.loads(got["manifest.json"])
        manifest["counts"]["secrets"] += 1
        got["manifest.json"] = orjson.dumps(manifest)
        return got

    _rewrite(path, change)


def _not_gzip(path: Path) -> None:
    path.write_bytes(gzip.compress(b"not a tar at all"))


DAMAGE = {
    "flipped byte": (_flip_byte, ""),
    "truncated": (_truncate, "not a whole backup archive"),
    "changed member": (_change_member, "is damaged: its sha256"),
    "missing member": (_drop_member, "missing member(s) tables/jobs.jsonl"),
    "newer format": (_newer_format, "format 2, made by a newer Ghapplets"),
    "wrong count": (_wrong_count, "counts"),
    "not an archive": (_not_gzip, ""),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_archive_is_refused_and_nothing_is_written(
    case: str, project: Path, tmp_path: Path
) -> None:
    path = tmp_path / "b.tgz"
    backup(project, path, "--include-key")
    damage, message = DAMAGE[case]
    damage(path)
    verified = cli("backup", "verify", path)
    assert verified.code == 2, verified
    assert message in verified.err and "error:" in verified.err, verified
    target = tmp_path / "target"
    restored = cli("restore", path, "-p", project, "--data-dir", target)
    assert restored.code == 2, restored
    assert not target.exists()


def test_verify_reports_the_counts(project: Path, tmp_path: Path) -> None:
    path = tmp_path / "b.tgz"
    backup(project, path)
    verified = cli("backup", "verify", path)
    assert verified.code == 0, verified
    assert "format 1" in verified.out and "without the secrets key" in verified.out
    counts = Archive(path).manifest.counts
    assert f"secrets                {counts['secrets']}" in verified.out


def test_bad_usage(project: Path, tmp_path: Path) -> None:
    assert cli("backup", "verify").code == 2
    assert cli("backup", tmp_path / "a", tmp_path / "b", "-p", project).code == 2
    missing = cli("backup", tmp_path / "no" / "such" / "b.tgz", "-p", project)
    assert missing.code == 2 and "no folder" in missing.err
    empty = cli("backup", tmp_path / "b.tgz", "-p", project, "--data-dir", tmp_path / "none")
    assert empty.code == 4, empty


def test_a_backup_piped_into_restore_from_standard_input(project: Path, tmp_path: Path) -> None:
    """``backup - | restore -``: the stream is spooled privately, checked whole, restored."""
    target = tmp_path / "piped"
    env = clean_env()
    produced = subprocess.Popen(
        [*GHAPPLETS, "backup", "-", "--include-key", "-p", project],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    restored = subprocess.run(
        [*GHAPPLETS, "restore", "-", "-p", project, "--data-dir", target],
        stdin=produced.stdout, capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert produced.wait(timeout=60) == 0
    assert restored.returncode == 0, restored.stderr
    assert "restored '-'" in restored.stdout or "restored -" in restored.stdout, restored.stdout
    got = cli("secrets", "get", "api-token", "--reveal", "-p", project, "--data-dir", target)
    assert got.out.strip() == VALUE


def test_a_damaged_stream_on_standard_input_is_refused_and_nothing_is_written(
    project: Path, tmp_path: Path
) -> None:
    path = tmp_path / "b.tgz"
    backup(project, path)
    data = path.read_bytes()
    target = tmp_path / "untouched"
    for damaged in (data[: len(data) // 2], b"not an archive at all"):
        restored = subprocess.run(
            [*GHAPPLETS, "restore", "-", "-p", project, "--data-dir", target],
            input=damaged, capture_output=True, env=clean_env(),
        )  # fmt: skip
        assert restored.returncode == 2, restored.stderr
        assert b"Traceback" not in restored.stderr and restored.stderr.strip()
        assert not target.exists() or not any(target.iterdir())


@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_archive_leaves_a_postgresql_target_as_it_was(
    case: str, project: Path, tmp_path: Path, pg_server: PostgresServer
) -> None:
    """Refused before anything is written: the database is still empty, so the archive as it
    was restores into it afterwards without --force."""
    path, whole = tmp_path / "b.tgz", tmp_path / "whole.tgz"
    backup(project, path)
    whole.write_bytes(path.read_bytes())
    DAMAGE[case][0](path)
    name = pg_server.create_database(migrated=False)
    try:
        env = {
            "GHAPPLETS_STORAGE__BACKEND": "postgresql",
            "GHAPPLETS_STORAGE__URL": pg_server.url(name),
        }
        refused = cli("restore", path, "-p", project, env=env)
        assert refused.code == 2, refused
        restored = cli("restore", whole, "-p", project, env=env)
        assert restored.code == 0, restored
    finally:
        pg_server.drop_database(name, wait=False)
