"""``backup --dir DIR [--keep N]``, what the CronJob and the systemd timer run: a real backup of
a real project's data folder into a timestamped archive, then the oldest archives beyond N
removed, and nothing else: not unrelated files, and nothing at all when the backup failed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ghapplets.backup.archive import Archive, private_output
from ghapplets.backup.rotation import ARCHIVE_NAME, STAGED_NAME, archive_name
from tests.cli.helpers import Result, cli

NAME = re.compile(r"ghapplets-\d{8}T\d{6}Z\.tgz")
# archives of earlier days, oldest first
OLD = [f"ghapplets-202601{day:02d}T020000Z.tgz" for day in range(1, 6)]
# files in the folder that are not archives of --dir, whatever they look like
UNRELATED = [
    "notes.txt",
    "ghapplets-20250101T020000Z.tgz.bak",
    "ghapplets-latest.tgz",
    "ghapplets-2025-01-01.tgz",
    "my-ghapplets-20250101T020000Z.tgz",
    ".ghapplets-20250101T020000Z.tgz.123.abcd.partial",
]


@pytest.fixture
def project(scaffolded: Path) -> Path:
    stored = cli("secrets", "set", "api-token", "--value", "rotation-value", "-p", scaffolded)
    assert stored.code == 0, stored
    return scaffolded


@pytest.fixture
def usual_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def local_time_not_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's local time 5:30 ahead of UTC (a POSIX TZ rule: no time zone data needed)."""
    monkeypatch.setenv("TZ", "IST-05:30")
    time.tzset()
    assert time.localtime().tm_gmtoff == 5 * 3600 + 1800
    yield
    monkeypatch.undo()
    time.tzset()


def backup_into(project: Path, folder: Path, *args: object) -> Result:
    return cli("backup", "--dir", folder, *args, "-p", project)


def fill(folder: Path) -> None:
    """Old archives (with content that is not a backup: pruning reads only names, and their
    times of change run against their names: the names decide), unrelated files, and a folder
    and a symbolic link that carry an archive's name."""
    folder.mkdir(mode=0o700)
    for name in OLD + UNRELATED:
        (folder / name).write_bytes(b"old")
    for age, name in enumerate(OLD):
        stamp = time.time() - 3600 * (age + 1)  # the oldest name was changed last
        os.utime(folder / name, (stamp, stamp))
    (folder / "ghapplets-20241231T020000Z.tgz").mkdir()
    (folder / "ghapplets-20241230T020000Z.tgz").symlink_to(folder / "notes.txt")


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_the_archive_is_named_by_the_utc_time_in_a_private_folder(
    project: Path, tmp_path: Path, usual_umask: None, local_time_not_utc: None
) -> None:
    folder = tmp_path / "backups" / "daily"  # neither exists yet
    before = datetime.now(UTC).replace(microsecond=0)
    result = backup_into(project, folder)
    after = datetime.now(UTC)
    assert result.code == 0, result
    (path,) = folder.iterdir()
    assert NAME.fullmatch(path.name) and ARCHIVE_NAME.fullmatch(path.name), path.name
    taken = datetime.strptime(path.name, "ghapplets-%Y%m%dT%H%M%SZ.tgz").replace(tzinfo=UTC)
    assert before <= taken <= after
    assert folder.stat().st_mode & 0o777 == 0o700
    assert path.stat().st_mode & 0o777 == 0o600
    assert str(path) in result.out and "secrets" in result.out
    manifest = Archive(path).manifest  # verified: a whole, real backup
    assert manifest.counts["secrets"] >= 2
    created = datetime.fromisoformat(manifest.created_at)
    assert abs(created - taken) < timedelta(seconds=5)
    assert cli("backup", "verify", path).code == 0


def test_an_existing_folder_keeps_its_mode(project: Path, tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o750)
    folder.chmod(0o750)  # e.g. a volume's root, group-readable for an fsGroup
    assert backup_into(project, folder).code == 0
    assert folder.stat().st_mode & 0o777 == 0o750


def test_keep_removes_the_oldest_archives_and_nothing_else(project: Path, tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    fill(folder)
    before = names(folder)
    result = backup_into(project, folder, "--keep", 3)
    assert result.code == 0, result
    (new,) = names(folder) - before
    assert NAME.fullmatch(new)
    # the new one and the two newest old ones stay; the three oldest go, and are named
    assert names(folder) == before - set(OLD[:3]) | {new}
    assert "removed 3 archive(s)" in result.out
    for name in OLD[:3]:
        assert name in result.out
    for name in OLD[3:] + UNRELATED:
        assert name not in result.out
    assert (folder / "ghapplets-20241231T020000Z.tgz").is_dir()
    assert (folder / "ghapplets-20241230T020000Z.tgz").is_symlink()


def test_without_keep_every_archive_stays(project: Path, tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    fill(folder)
    before = names(folder)
    result = backup_into(project, folder)
    assert result.code == 0, result
    assert before < names(folder) and len(names(folder)) == len(before) + 1
    assert "removed" not in result.out


def test_keep_counts_the_new_archive_even_after_a_clock_was_set_back(
    project: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    future = folder / "ghapplets-29991231T235959Z.tgz"
    future.write_bytes(b"from a clock in the future")
    result = backup_into(project, folder, "--keep", 1)
    assert result.code == 0, result
    (path,) = folder.iterdir()
    assert path != future and Archive(path).manifest.counts["secrets"] >= 2


def test_a_failed_backup_writes_and_removes_nothing(project: Path, tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    fill(folder)
    before = names(folder)
    not_a_store = tmp_path / "data"
    not_a_store.mkdir()
    (not_a_store / "ghapplets.db").write_bytes(b"")  # a database file without the schema
    failed = backup_into(project, folder, "--keep", 1, "--data-dir", not_a_store)
    assert failed.code == 1, failed
    assert "no schema" in failed.err
    assert names(folder) == before  # no archive, no partial file, nothing pruned
    # no data folder at all: exit 4, and still nothing removed
    missing = backup_into(project, folder, "--keep", 1, "--data-dir", tmp_path / "none")
    assert missing.code == 4, missing
    assert names(folder) == before


def test_an_archive_of_the_same_second_is_not_overwritten(project: Path, tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    now = datetime.now(UTC)
    taken = {archive_name(now + timedelta(seconds=s)) for s in range(60)}
    for name in taken:
        (folder / name).write_bytes(b"earlier this second")
    result = backup_into(project, folder, "--keep", 1)
    assert result.code == 1, result
    assert "exists already" in result.err
    assert names(folder) == taken
    assert all(p.read_bytes() == b"earlier this second" for p in folder.iterdir())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("backup", "FILE", "--dir", "DIR"), "not both"),
        (("backup", "FILE", "--keep", "2"), "--keep prunes the archives of a --dir DIR"),
        (("backup", "--dir", "DIR", "--keep", "0"), "--keep"),
        (("backup", "--dir", "DIR", "--keep", "many"), "--keep"),
        (("backup",), "needs a FILE"),
        (("backup", "verify", "FILE", "--dir", "DIR"), "takes no --dir"),
        (("backup", "verify", "FILE", "--keep", "2"), "takes no --dir or --keep"),
        (("backup", "--dir", "A_FILE"), "is not a folder"),
    ],
)
def test_bad_usage_exits_2_and_writes_nothing(
    args: tuple[str, ...], message: str, project: Path, tmp_path: Path
) -> None:
    (tmp_path / "A_FILE").write_text("a file, not a folder")
    spots = {"FILE": tmp_path / "b.tgz", "DIR": tmp_path / "dir", "A_FILE": tmp_path / "A_FILE"}
    before = names(tmp_path)
    result = cli(*(spots.get(a, a) for a in args), "-p", project)
    assert result.code == 2, result
    assert message in result.err, result
    assert names(tmp_path) == before


KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from ghapplets.backup.archive import private_output
with private_output(Path(sys.argv[1])) as out:
    out.write(b"half an archive")
    out.flush()
    os.kill(os.getpid(), signal.SIGKILL)  # killed while writing: its staged file stays
"""


def test_what_killed_backups_left_is_removed_and_what_one_writes_now_stays(
    project: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "backups"
    fill(folder)
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, folder / "ghapplets-20260106T020000Z.tgz"],
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL
    (left,) = [n for n in names(folder) if STAGED_NAME.fullmatch(n)]
    with private_output(folder / "ghapplets-20260107T020000Z.tgz") as writing:
        writing.write(b"a backup on its way")
        (now,) = [n for n in names(folder) if STAGED_NAME.fullmatch(n) and n != left]
        result = backup_into(project, folder)  # without --keep: no archive goes
        assert result.code == 0, result
        assert left not in names(folder)
        assert f"removed 1 unfinished archive(s) of killed backups:\n  {left}" in result.out
        assert now in names(folder) and now not in result.out  # being written: it stays
    assert "ghapplets-20260107T020000Z.tgz" in names(folder)  # ... and lands
    assert set(OLD + UNRELATED) <= names(folder)  # nothing else was touched
