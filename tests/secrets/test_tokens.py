"""The connectors' token cache on a real store: a token read back is redacted from the logs, and
a store that cannot serve is a miss and a warning, never an error."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ghapplets.logging import redact
from ghapplets.secrets.crypto import Keyring, generate_key
from ghapplets.secrets.tokens import TokenCache
from ghapplets.store.database import Database
from ghapplets.store.sqlite import SqliteSecretStore


@contextmanager
def token_cache(folder: Path) -> Iterator[tuple[TokenCache, Database]]:
    """A token cache on a fresh embedded store in ``folder``, and that store's database."""
    database = Database(folder / "store.db")
    database.open()
    keys = Keyring(base64.urlsafe_b64decode(generate_key()))
    try:
        yield TokenCache(SqliteSecretStore(database), lambda: keys), database
    finally:
        database.close()


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[tuple[TokenCache, Database]]:
    with token_cache(tmp_path) as found:
        yield found


async def test_a_token_read_from_the_cache_is_redacted_from_the_logs(
    opened: tuple[TokenCache, Database],
) -> None:
    cache, _ = opened
    token = f"ghs_{secrets.token_hex(16)}"  # as another process minted and stored it
    await cache.put("github:app:1", token, 99.0)
    assert redact(f"using {token}") == f"using {token}"  # storing it did not register it
    assert await cache.get("github:app:1") == (token, 99.0)
    assert redact(f"using {token}") == "using ***"


async def test_a_store_that_cannot_serve_is_a_miss_and_a_warning(
    opened: tuple[TokenCache, Database],
) -> None:
    cache, database = opened
    database.close()
    with capture_logs() as logs:
        assert await cache.get("github:app:1") is None
        await cache.put("github:app:1", "token", 99.0)  # no error: the token still serves
    assert logs == [
        {
            "event": "the token cache cannot be read",
            "key": "github:app:1",
            "error": "the database is closed",
            "log_level": "warning",
        },
        {
            "event": "the token cache cannot be written",
            "key": "github:app:1",
            "error": "the database is closed",
            "log_level": "warning",
        },
    ]
