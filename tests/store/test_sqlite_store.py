"""The embedded store's own behaviour; what every backend does is in test_conformance.py."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ghapplets.store.database import Database
from ghapplets.store.sqlite import SqliteHistoryStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteHistoryStore]:
    db = Database(tmp_path / "s.db")
    db.open()
    yield SqliteHistoryStore(db)
    db.close()


async def test_prune_also_removes_settled_broker_messages(store: SqliteHistoryStore) -> None:
    # the embedded broker shares the file; retention removes its acked and dead messages too
    old, new = time.time() - 100 * 86400, time.time()
    rows = [("old-acked", old, 1), ("old-dead", old, 2), ("old-pending", old, 0), ("new", new, 1)]

    def insert(conn):  # type: ignore[no-untyped-def]
        for msg_id, at, state in rows:
            conn.exec_driver_sql(
                "INSERT INTO broker_messages (stream, msg_id, headers, data, created_at,"
                " available_at, delivered, state) VALUES ('events', ?, '{}', x'', ?, ?, 0, ?)",
                (msg_id, at, at, state),
            )

    await store.db.write(insert)
    await store.prune(time.time() - 30 * 86400)
    left = await store.db.read(
        lambda c: sorted(r[0] for r in c.exec_driver_sql("SELECT msg_id FROM broker_messages"))
    )
    assert left == ["new", "old-pending"]
