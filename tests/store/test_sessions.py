"""The dashboard's sessions in the store, on both backends: found by id until they expire, one
id kept once, ended by delete, pruned once expired, and an id that cannot be stored matches
nothing."""

from __future__ import annotations

import dataclasses
import re

import pytest

from ghapplets.exceptions import AlreadyExists
from ghapplets.store.base import Store
from ghapplets.store.records import Role, SessionRecord
from tests.store import test_admin_store

# the admin store's fixtures: each backend's store
stores = test_admin_store.stores
admin_store = test_admin_store.admin_store


def session(n: int, expires_at: float, role: Role = Role.OPERATOR) -> SessionRecord:
    return SessionRecord(
        id=f"{n:064x}",
        token_id=f"{n:016x}",
        name=f"ops-{n}",
        role=role,
        csrf="c" * 43,
        created_at=100.0,
        expires_at=expires_at,
    )


async def test_sessions_live_until_they_expire_and_end_when_deleted(admin_store: Store) -> None:
    await admin_store.create_session(session(1, 200.0))
    await admin_store.create_session(session(2, 300.0, Role.VIEWER))
    with pytest.raises(AlreadyExists, match=r"^a session of that id exists$"):
        await admin_store.create_session(session(1, 900.0))
    found = await admin_store.get_session(f"{1:064x}", 150.0)
    assert found == session(1, 200.0)
    assert await admin_store.get_session(f"{1:064x}", 200.0) is None  # expired at 200
    assert await admin_store.get_session(f"{3:064x}", 150.0) is None
    for odd in ("", "x" * 65, "a\x00b"):
        assert await admin_store.get_session(odd, 150.0) is None
        assert not await admin_store.delete_session(odd)
    assert await admin_store.prune_sessions(250.0) == 1
    assert await admin_store.get_session(f"{2:064x}", 250.0) is not None
    assert await admin_store.delete_session(f"{2:064x}")
    assert not await admin_store.delete_session(f"{2:064x}")
    assert await admin_store.get_session(f"{2:064x}", 250.0) is None


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("id", "a" * 65, "a session's id is 65 bytes of UTF-8, longer than the 64"),
        ("id", "", "a session's id must be a non-empty string"),
        ("token_id", "t" * 33, "a session's token id is 33 bytes of UTF-8, longer than the 32"),
        ("token_id", "a\x00b", "a session's token id has a NUL character"),
        ("name", "", "a session's name must be a non-empty string"),
        ("csrf", "c" * 65, "a session's CSRF token is 65 bytes of UTF-8, longer than the 64"),
        ("created_at", "noon", "a session's created_at must be a number"),
        ("expires_at", None, "a session's expires_at must be a number"),
        ("role", "root", "'root' is not a valid Role"),
    ],
)
async def test_a_session_that_cannot_be_stored_is_refused_by_name(
    admin_store: Store, field: str, value: object, error: str
) -> None:
    bad = dataclasses.replace(session(1, 200.0), **{field: value})
    with pytest.raises(ValueError, match=re.escape(error)):  # InvalidRecord is a ValueError
        await admin_store.create_session(bad)
    assert await admin_store.get_session(f"{1:064x}", 150.0) is None  # nothing was kept


async def test_the_longest_fields_a_session_may_have_are_kept(admin_store: Store) -> None:
    longest = dataclasses.replace(
        session(1, 200.0), id="a" * 64, token_id="t" * 32, csrf="c" * 64, name="n" * 300
    )
    await admin_store.create_session(longest)
    found = await admin_store.get_session("a" * 64, 150.0)
    assert found is not None and found.csrf == "c" * 64 and found.token_id == "t" * 32
    assert len(found.name) < 300  # a long name is cut to what the audit's actor may hold
