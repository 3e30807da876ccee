"""Snapshot, load and requeue on real stores (SQLite and PostgreSQL): every record comes back
exactly; the jobs that were queued, running or retrying and the runs that were pending or
running are queued again (attempts kept), the rest are not; the embedded broker remembers the
accepted event ids; a later format's manifest is refused and an older one upgraded."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from ghapplets.backup import archive as archive_mod
from ghapplets.backup.archive import Archive, ArchiveWriter, Manifest, decode_row, encode_row
from ghapplets.backup.restore import Loaded, load_postgres, load_sqlite, requeue
from ghapplets.backup.snapshot import snapshot_postgres, snapshot_sqlite
from ghapplets.backup.tables import EXCLUDED, tables
from ghapplets.broker.sqlite import SqliteBroker
from ghapplets.dispatch import messages as m
from ghapplets.exceptions import BackupInvalid
from ghapplets.store.base import Store
from ghapplets.store.database import Database
from ghapplets.store.records import JobStatus, RunStatus, SecretRecord
from ghapplets.store.schema import broker_messages, metadata
from tests.servers.postgres import PostgresServer
from tests.store.test_conformance import (
    BACKENDS,
    Stores,
    dead,
    delivery,
    job,
    open_postgres,
    open_sqlite,
    retrying,
    succeeded,
)
from tests.store.test_runs import run


def test_every_table_is_backed_up_but_the_queue_the_leases_and_the_sessions() -> None:
    names = {t.name for t in tables()}
    assert set(EXCLUDED) == {"broker_messages", "leases", "admin_sessions"}
    assert names | set(EXCLUDED) == set(metadata.tables)
    assert not names & set(EXCLUDED)


@pytest.mark.parametrize(
    "value",
    [0.1, 1e-300, 1.7976931348623157e308, -0.0, 2**62, "é\u0000\U0001f600", None, b"\x00\xff"],
)
def test_values_round_trip_exactly(value: Any) -> None:
    binary = ["v"] if isinstance(value, bytes) else []
    back = decode_row(encode_row({"v": value}, binary), binary)["v"]
    assert back == value and type(back) is type(value)


@pytest.fixture(params=BACKENDS)
async def source(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, Stores, str]]:
    """A store of each kind, and where it is (a file, or a database's URL)."""
    if request.param == "sqlite":
        where = str(tmp_path / "source.db")
        opened = await open_sqlite(Path(where))
    else:
        where = request.getfixturevalue("pg_url")
        opened = await open_postgres(where)
    yield request.param, opened, where
    await opened.close()


async def fill(stores: Stores) -> None:
    store = stores.history
    await store.record_dispatch(
        [delivery("d1", 2), delivery("d2", 1), delivery("d3", 0), delivery("d4", 1)],
        [job("d1", "a"), job("d1", "b"), job("d2", "a"), job("d4", "a")],
    )
    await store.job_finished(succeeded("github:d1:a", 1, {"ok": 1.5}))
    await store.job_finished(retrying("github:d1:b", 1))
    await store.job_finished(dead("github:d4:a", 1))
    assert isinstance(store, Store)
    now = time.time()
    for rid, status in [
        ("r-pending", RunStatus.PENDING),
        ("r-running", RunStatus.RUNNING),
        ("r-waiting", RunStatus.WAITING),
        ("r-done", RunStatus.COMPLETED),
    ]:
        wake = now + 3600 if status == RunStatus.WAITING else None
        await store.create_run(run(rid, status=status, wake_at=wake))
    await stores.secrets.put_secret(SecretRecord("s", "global", b"\x01cipher\x00", now, now, "k1"))


async def take(kind: str, where: str, path: Path) -> Archive:
    writer = ArchiveWriter()
    if kind == "sqlite":
        manifest = snapshot_sqlite(Path(where), writer)
    else:
        manifest = await snapshot_postgres(where, writer)
    manifest.storage = manifest.broker = kind
    with path.open("wb") as out:
        writer.write(manifest, out)
    writer.close()
    return Archive(path)


async def view(store: Store) -> dict[str, Any]:
    return {
        "deliveries": sorted(await store.list_deliveries(limit=100), key=lambda d: d.id),
        "jobs": sorted(await store.list_jobs(limit=100), key=lambda j: j.id),
        "attempts": await store.list_attempts("github:d1:b"),
        "dead": await store.dead_letter_count(),
        "runs": sorted(await store.list_runs(limit=100), key=lambda r: r.id),
    }


async def test_a_store_comes_back_whole_and_its_unfinished_work_is_queued(
    source: tuple[str, Stores, str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    kind, stores, where = source
    await fill(stores)
    archive = await take(kind, where, tmp_path / "b.tgz")
    assert isinstance(stores.history, Store)
    want = await view(stores.history)
    secret = await stores.secrets.get_secret("s")

    if kind == "sqlite":  # into the other backend, and back: a backup is neutral
        pg: PostgresServer = request.getfixturevalue("pg_server")
        url = pg.url(pg.create_database(migrated=False))
        loaded = await load_postgres(url, archive, force=False)
        target = await open_postgres(url)
    else:
        path = tmp_path / "target.db"
        loaded = load_sqlite(path, archive, force=False, embedded_broker=True)
        target = await open_sqlite(path)
    try:
        assert isinstance(target.history, Store)
        assert await view(target.history) == want
        assert await target.secrets.get_secret("s") == secret
        assert sorted(loaded.jobs) == ["github:d1:b", "github:d2:a"]
        assert sorted(loaded.runs) == ["r-pending", "r-running"]
        assert loaded.counts["deliveries"] == 4 and loaded.counts["blueprint_runs"] == 4
        await _requeued(target.history, loaded, tmp_path)
    finally:
        await target.close()


async def _requeued(store: Store, loaded: Loaded, tmp_path: Path) -> None:
    db = Database(tmp_path / "queue.db")
    broker = SqliteBroker(db, consume=False)
    await broker.start()
    try:
        await requeue(store, broker, loaded)
    finally:
        await broker.close()
        db.close()
    rows = _messages(tmp_path / "queue.db", m.JOBS)
    jobs = {h[m.H_JOB_ID]: h.get(m.H_ATTEMPT_OFFSET) for h in rows if m.H_JOB_ID in h}
    assert jobs == {"github:d1:b": "1", "github:d2:a": None}  # attempts go on from where
    assert sorted(h[m.H_RUN] for h in rows if m.H_RUN in h) == ["r-pending", "r-running"]
    assert (await store.get_job("github:d1:b")).status == JobStatus.QUEUED
    assert (await store.get_job("github:d1:a")).status == JobStatus.SUCCEEDED


def _messages(path: Path, stream: str) -> list[dict[str, str]]:
    db = Database(path)
    b = broker_messages.c
    query = select(b.headers).where(b.stream == stream)
    try:
        return [orjson.loads(h) for (h,) in db.read_sync(lambda c: list(c.execute(query)))]
    finally:
        db.engine.dispose()


async def test_the_embedded_broker_remembers_the_accepted_ids(tmp_path: Path) -> None:
    stores = await open_sqlite(tmp_path / "source.db")
    try:
        await fill(stores)
    finally:
        await stores.close()
    archive = await take("sqlite", str(tmp_path / "source.db"), tmp_path / "b.tgz")
    path = tmp_path / "target.db"
    loaded = load_sqlite(path, archive, force=False, embedded_broker=True)
    assert loaded.dedup == 4
    db = Database(path)
    broker = SqliteBroker(db, consume=False)
    await broker.start()
    try:
        seen = await broker.publish(m.OutboundMessage(m.EVENTS, "github:d1", {}, b"{}"))
        new = await broker.publish(m.OutboundMessage(m.EVENTS, "github:d9", {}, b"{}"))
    finally:
        await broker.close()
        db.close()
    assert seen.duplicate and not new.duplicate


def test_an_older_format_is_upgraded_and_a_newer_one_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old = Manifest(schema="0008", storage="sqlite", broker="sqlite", ghapplets="0.1.0")
    raw = orjson.loads(old.to_json())
    with pytest.raises(BackupInvalid, match="newer Ghapplets"):
        Manifest.from_json(orjson.dumps({**raw, "format": 2}))
    # a later reader: format 2 adds a field, and reads format 1 through an upgrade
    monkeypatch.setattr(archive_mod, "FORMAT", 2)
    monkeypatch.setitem(archive_mod.UPGRADES, 1, lambda doc: {**doc, "format": 2})
    assert Manifest.from_json(old.to_json()).format == 2
