"""The embedded data folder: created private, tightened, held by one server at a time."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ghapplets import datadir
from ghapplets.backends import Backends
from ghapplets.broker.base import OutboundMessage
from ghapplets.config.models import ProjectConfig
from ghapplets.datadir import LOCK_FD_ENV, LOCK_FILE, hold, read_holder, tighten
from ghapplets.exceptions import DataFolderBusy, SecretKeyError
from ghapplets.secrets.crypto import KEY_ENV, load_or_create_key
from tests.cli.helpers import cli


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def held() -> Iterator[list[int]]:
    """Descriptors a test took; closed after it (closing lets go of the lock)."""
    fds: list[int] = []
    yield fds
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


# -- private files -------------------------------------------------------------------------------
async def test_everything_the_embedded_backends_create_is_owner_only_whatever_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    data = tmp_path / "deep" / "data"
    with umask(0):
        backends = Backends(ProjectConfig(), data, consume=True)
        await backends.start()
        try:
            await backends.broker.publish(OutboundMessage("events", "m-1", {}, b"{}"))
            await backends.vault.set("token", "value")
            created = sorted(p.name for p in data.iterdir())
            assert {"ghapplets.db", "ghapplets.db-wal", "ghapplets.db-shm", "secret.key"} <= set(
                created
            )
            assert mode(data) == 0o700
            for name in created:
                assert mode(data / name) == 0o600, name
        finally:
            await backends.close()


def test_tighten_makes_an_old_open_folder_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    for name in ("ghapplets.db", "ghapplets.db-wal", "ghapplets.db.write.lock"):
        (data / name).write_bytes(b"")
        (data / name).chmod(0o644)
    (data / "unrelated.txt").write_text("x")
    (data / "unrelated.txt").chmod(0o644)
    changed = tighten(data)
    assert sorted(p.name for p in changed) == sorted(
        ["data", "ghapplets.db", "ghapplets.db-wal", "ghapplets.db.write.lock"]
    )
    assert mode(data) == 0o700
    assert mode(data / "ghapplets.db") == mode(data / "ghapplets.db-wal") == 0o600
    assert mode(data / "unrelated.txt") == 0o644  # not ours to change
    assert tighten(data) == []


def test_a_key_file_others_can_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    key = load_or_create_key(tmp_path)
    path = tmp_path / "secret.key"
    path.chmod(0o644)
    with pytest.raises(SecretKeyError) as exc:
        load_or_create_key(tmp_path)
    message = str(exc.value)
    assert str(path) in message and "mode 0644" in message
    assert f"chmod 600 {path}" in message
    assert mode(path) == 0o644  # refused, not changed behind the owner's back
    for loose in (0o640, 0o604, 0o620, 0o660):
        path.chmod(loose)
        with pytest.raises(SecretKeyError, match="accessible by other users"):
            load_or_create_key(tmp_path)
    for private in (0o600, 0o400):
        path.chmod(private)
        assert load_or_create_key(tmp_path) == key


def test_a_loose_key_file_stops_commands_with_a_clear_error(tmp_path: Path) -> None:
    assert cli("secrets", "set", "x", "--value", "v", "-p", tmp_path).code == 0
    key = tmp_path / ".ghapplets" / "secret.key"
    key.chmod(0o644)
    result = cli("secrets", "get", "x", "-p", tmp_path)
    assert result.code == 3, result
    assert "accessible by other users" in result.err
    assert f"chmod 600 {key}" in result.err.replace("\n", "")


# -- one server --------------------------------------------------------------------------------
def test_the_lock_names_its_holder_and_a_second_holder_is_refused(
    tmp_path: Path, held: list[int]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)  # as older versions made it: the server makes it private
    held.append(hold(data))
    assert mode(data) == 0o700 and mode(data / LOCK_FILE) == 0o600
    holder = read_holder(data / LOCK_FILE)
    assert holder.pid == os.getpid() and holder.command.startswith("ghapplets")
    with pytest.raises(DataFolderBusy) as exc:  # another open file description: refused
        hold(data)
    assert exc.value.pid == os.getpid()
    assert f"the data folder {data} is in use by another Ghapplets process (PID {os.getpid()}" in (
        str(exc.value)
    )


def test_a_child_adopts_only_the_holders_own_descriptor(
    tmp_path: Path, held: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    fd = hold(data)
    held.append(fd)
    monkeypatch.setenv(LOCK_FD_ENV, str(fd))
    assert hold(data) == fd  # what serve's children do with the descriptor they inherit
    other = os.open(data / LOCK_FILE, os.O_RDONLY)  # the same file, not the holder's lock
    held.append(other)
    for value in (str(other), "999", "not-a-number"):
        monkeypatch.setenv(LOCK_FD_ENV, value)
        with pytest.raises(DataFolderBusy, match=f"PID {os.getpid()}"):
            hold(data)
    elsewhere = os.open(tmp_path / "elsewhere.lock", os.O_RDWR | os.O_CREAT, 0o600)
    held.append(elsewhere)
    monkeypatch.setenv(LOCK_FD_ENV, str(elsewhere))  # a descriptor of another file
    with pytest.raises(DataFolderBusy):
        hold(data)


def test_after_a_holder_died_its_exiting_children_are_waited_for(
    tmp_path: Path, held: list[int]
) -> None:
    data = tmp_path / "data"
    fd = hold(data)
    # a "child" keeps the locked description a little longer than its dead parent
    child = subprocess.Popen(["sleep", "1"], pass_fds=(fd,))
    os.close(fd)
    ended = subprocess.Popen(["true"])  # its PID names a process that no longer runs
    ended.wait()
    dead_pid = ended.pid
    (data / LOCK_FILE).write_text(f"{dead_pid}\nghapplets serve\n")
    try:
        with pytest.raises(DataFolderBusy, match=f"PID {dead_pid}"):
            hold(data, grace=0)
        started = time.monotonic()
        held.append(hold(data, grace=10))
        assert time.monotonic() - started > 0.3  # it waited for the child
        assert read_holder(data / LOCK_FILE).pid == os.getpid()
    finally:
        child.wait()


def test_the_lock_file_is_created_private(tmp_path: Path, held: list[int]) -> None:
    with umask(0):
        held.append(datadir.hold(tmp_path / "d"))
    assert mode(tmp_path / "d") == 0o700 and mode(tmp_path / "d" / LOCK_FILE) == 0o600
