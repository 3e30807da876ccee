"""The dashboard's sessions in the store, on both backends: found by id until they expire, one
id kept once, ended by delete, pruned once expired, and an id that cannot be stored matches
nothing."""

from __future__ import annotations

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
    with pytest.raises(AlreadyExists):
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
