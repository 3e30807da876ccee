"""The embedded store's own behaviour; what every backend does is in test_conformance.py."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Select

from ghapplets.store import sql
from ghapplets.store import sqlite as sqlite_store
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


async def test_settled_broker_messages_are_pruned_a_chunk_per_transaction(
    store: SqliteHistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "BROKER_PRUNE_CHUNK", 3)
    old, new = time.time() - 100 * 86400, time.time()
    # the oldest message is still pending (a long retry delay): it does not stop the rest
    rows = [("pending", old, 0)] + [(f"old{i}", old + i, 1 + i % 2) for i in range(10)]
    rows += [(f"new{i}", new, 1) for i in range(3)]

    def insert(conn):  # type: ignore[no-untyped-def]
        for msg_id, at, state in rows:
            conn.exec_driver_sql(
                "INSERT INTO broker_messages (stream, msg_id, headers, data, created_at,"
                " available_at, delivered, state) VALUES ('jobs', ?, '{}', x'', ?, ?, 0, ?)",
                (msg_id, at, at, state),
            )

    await store.db.write(insert)
    commits = store.db.commits
    await store.prune(time.time() - 30 * 86400)
    left = await store.db.read(
        lambda c: sorted(r[0] for r in c.exec_driver_sql("SELECT msg_id FROM broker_messages"))
    )
    assert left == ["new0", "new1", "new2", "pending"]
    # 11 old messages and the first new one, 3 a transaction: 4 broker transactions (plus
    # one per history chunk)
    assert store.db.commits - commits >= 4


def plan(store: SqliteHistoryStore, query: str, params: dict[str, object]) -> str:
    def explain(conn):  # type: ignore[no-untyped-def]
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + query, params).all()
        return " | ".join(str(r[-1]) for r in rows)

    return store.db.read_sync(explain)


async def test_retention_reads_only_the_rows_it_deletes_by_an_index(
    store: SqliteHistoryStore,
) -> None:
    """Each chunk is a range scan of (status, received_at): the old rows retention keeps
    (unfinished, or failed and younger than their retention) are never read again."""
    for query, statuses in (
        (sql.PRUNABLE_DELIVERIES, sql.PRUNABLE),
        (sql.PRUNABLE_FAILED, sql.PRUNABLE_FAILED_STATUS),
    ):
        params = {"older_than": 0.0, "limit": 256, **statuses}
        shown = plan(store, query, params)
        assert "USING INDEX ix_deliveries_status_received (status=? AND received_at<?)" in shown


def query_plan(store: SqliteHistoryStore, query: Select[Any]) -> str:
    """The plan of a Core query, with its parameters bound."""
    compiled = query.compile(
        dialect=store.db.engine.dialect, compile_kwargs={"render_postcompile": True}
    )
    args = tuple(compiled.params[name] for name in compiled.positiontup or ())

    def explain(conn):  # type: ignore[no-untyped-def]
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), args).all()
        return " | ".join(str(r[-1]) for r in rows)

    return store.db.read_sync(explain)


async def test_run_store_queries_are_index_searches(store: SqliteHistoryStore) -> None:
    """However many runs, steps and listeners are kept, each lookup reads only its rows."""
    finals = {"older_than": 0.0, "limit": 64, **sql.FINAL_STATUSES}
    # the final runs past the cutoff, a range per status: the rest of the runs are never read
    shown = plan(store, sql.PRUNABLE_RUNS, finals)
    assert "USING INDEX ix_blueprint_runs_status_finished (status=? AND finished_at<?)" in shown
    assert "TEMP B-TREE" not in shown  # no sort of every candidate: the first ones found
    shown = query_plan(store, sql.due_runs_query(0.0, 100))
    assert "USING INDEX ix_blueprint_runs_status_wake (status=? AND wake_at<?)" in shown
    assert "TEMP B-TREE" not in shown  # earliest first is the index's order
    # an event's type and the listeners of every type: two ranges of one index
    shown = query_plan(store, sql.listeners_query(["com.example.push", "com.example.tag"]))
    assert shown.count("USING INDEX ix_blueprint_listeners_type (event_type=?)") == 2, shown
    assert "SCAN" not in shown
    shown = query_plan(store, sql.listeners_query([]))
    assert "USING INDEX ix_blueprint_listeners_type (event_type=?)" in shown
    # a listener's next number and a run's next position: the last entry of an index
    shown = plan(store, sql.NEXT_INBOX_SEQ, {"run_id": "r", "key": "k"})
    assert "USING COVERING INDEX" in shown and "(run_id=? AND key=?)" in shown
    shown = plan(store, sql.NEXT_STEP_POSITION, {"run_id": "r"})
    assert "USING COVERING INDEX" in shown and "(run_id=?)" in shown
    for query in (sql.steps_query("r"), sql.inbox_query("r", "k", 0)):
        shown = query_plan(store, query)
        assert "SEARCH" in shown and "TEMP B-TREE" not in shown, shown
    for query in (sql.runs_query(None, None, None, 50), sql.outbox_query(100)):
        assert "TEMP B-TREE" not in query_plan(store, query)  # newest or oldest by an index
