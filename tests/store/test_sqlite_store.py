"""The embedded store's own behaviour; what every backend does is in test_conformance.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Select

from ghapplets.store import sql
from ghapplets.store.database import Database
from ghapplets.store.sqlite import SqliteHistoryStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteHistoryStore]:
    db = Database(tmp_path / "s.db")
    db.open()
    yield SqliteHistoryStore(db)
    db.close()


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
