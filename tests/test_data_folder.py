"""The embedded data folder: created private."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ghapplets.backends import Backends
from ghapplets.broker.base import OutboundMessage
from ghapplets.config.models import ProjectConfig
from ghapplets.exceptions import SecretKeyError
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
