"""Backends chosen from the configuration, and what the platform does with them across replicas:
PostgreSQL storage, readiness, and retention run by one replica at a time (a lease)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import asyncpg
import pytest

from ghapplets.backends import DB_FILE, Backends, open_backends
from ghapplets.broker.base import OutboundMessage
from ghapplets.broker.sqlite import SqliteBroker
from ghapplets.config.loader import LoadedConfig
from ghapplets.config.models import ProjectConfig
from ghapplets.exceptions import StoreUnavailable
from ghapplets.platform import RETENTION_EVERY, Platform
from ghapplets.store.records import (
    AttemptOutcome,
    AttemptRecord,
    DeliveryRecord,
    DeliveryStatus,
    JobRecord,
    JobStatus,
    JobUpdate,
)
from ghapplets.store.sqlite import SqliteHistoryStore
from ghapplets.testing.gateway import running_gateway
from tests.conftest import LeaseClock, ProjectBuilder
from tests.servers import NatsServer


def pg_config(url: str) -> ProjectConfig:
    return ProjectConfig(storage={"backend": "postgresql", "url": url, "pool_size": 3})


def delivery(i: str, received: float | None = None) -> DeliveryRecord:
    return DeliveryRecord(
        "github", i, "com.github.push", None, "t", received or time.time(),
        DeliveryStatus.UNMATCHED, {}, {}, b"{}",
    )  # fmt: skip


async def test_postgresql_storage_round_trips_a_delivery_and_a_secret(
    pg_url: str, tmp_path: Path
) -> None:
    now = time.time()
    job = JobRecord("github:d1:a", "github", "d1", "a", JobStatus.QUEUED, now, now)
    async with open_backends(pg_config(pg_url), tmp_path) as b:
        assert type(b.store).__name__ == "PostgresHistoryStore"
        await b.store.record_dispatch([delivery("d1")], [job])
        await b.vault.set("tok", "s3cret-value")
        await b.store.ping()
    async with open_backends(pg_config(pg_url), tmp_path) as b:  # opened again, later
        assert (await b.store.get_delivery("d1")).id == "d1"
        assert [j.id for j in await b.store.list_jobs()] == ["github:d1:a"]
        assert await b.vault.get("tok") == "s3cret-value"
    conn = await asyncpg.connect(pg_url)  # and it is PostgreSQL that holds them
    try:
        assert await conn.fetchval("SELECT count(*) FROM deliveries") == 1
        assert await conn.fetchval("SELECT count(*) FROM secrets") == 1
    finally:
        await conn.close()


async def test_sqlite_storage_is_the_default(tmp_path: Path) -> None:
    async with open_backends(ProjectConfig(), tmp_path) as b:
        assert isinstance(b.store, SqliteHistoryStore)
        assert b.pg is None


async def test_a_store_that_cannot_open_leaves_nothing_open(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = Backends(pg_config(f"postgresql://postgres@127.0.0.1:{port}/none"), tmp_path)
    with pytest.raises(StoreUnavailable):
        await b.start()
    assert b.db is not None and not b.db.is_open


# -- replicas ------------------------------------------------------------------------------------
def replica(url: str, data_dir: Path) -> Platform:
    return Platform(LoadedConfig(pg_config(url), {}, data_dir / "ghapplets.yaml"), data_dir)


async def test_one_replica_at_a_time_runs_retention(
    pg_url: str, tmp_path: Path, lease_clock: LeaseClock
) -> None:
    replicas = [replica(pg_url, tmp_path / f"r{i}") for i in range(2)]
    for r in replicas:
        await r.backends.start()
    old = time.time() - 100 * 86400
    try:
        await replicas[0].backends.store.record_dispatch([delivery("old1", old)], [])
        rounds = await asyncio.gather(*(r.retention() for r in replicas))
        assert sorted(rounds, key=str) == [1, None]  # one pruned, the other stood by
        holder, other = (replicas[0], replicas[1]) if rounds[0] else (replicas[1], replicas[0])
        await other.backends.store.record_dispatch([delivery("old2", old)], [])
        lease_clock.now += RETENTION_EVERY  # the next round: the holder renews its lease
        assert await other.retention() is None
        assert await holder.retention() == 1

        await holder.stop()  # lets go of the lease: the other takes over at once
        await other.backends.store.record_dispatch([delivery("old3", old)], [])
        assert await other.retention() == 1

        successor = replica(pg_url, tmp_path / "r2")
        await successor.backends.start()
        try:
            assert await successor.retention() is None
            lease_clock.now += 3 * RETENTION_EVERY  # "other" died: its lease has run out
            assert await successor.retention() == 0
            assert await other.retention() is None
        finally:
            await successor.stop()
    finally:
        for r in replicas:
            await r.backends.close()


async def test_readiness_reports_the_store(pg_url: str, tmp_path: Path) -> None:
    platform = replica(pg_url, tmp_path)
    await platform.backends.start()
    try:
        assert await platform.ready() == {"broker": "ok", "store": "ok"}
        assert platform.backends.pg is not None
        await platform.backends.pg.close()  # the store is down, the broker is not
        checks = await platform.ready()
        assert checks["broker"] == "ok"
        assert checks["store"].startswith("unavailable")
        with pytest.raises(StoreUnavailable):
            await platform.backends.store.ping()
    finally:
        await platform.backends.close()


async def test_a_nats_broker_beside_the_embedded_store(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The combination docs/configuration.md offers for bursty single machines: JetStream
    carries the events and jobs, the history stays in the embedded SQLite file."""
    project.python_applet(
        "py",
        """
        from ghapplets import Applet
        app = Applet("py")

        @app.on("com.github.issues.opened")
        async def handle(ctx):
            return {"n": ctx.data["issue"]["number"]}
    """,
    )
    server = NatsServer(tmp_path / "nats").start()
    monkeypatch.setenv("GHAPPLETS_BROKER__BACKEND", "nats")
    monkeypatch.setenv("GHAPPLETS_BROKER__URL", server.url)
    try:
        async with running_gateway(project.build(), tmp_path / "data") as gw:
            assert type(gw.platform.backends.broker).__name__ == "NatsBroker"
            assert isinstance(gw.platform.backends.store, SqliteHistoryStore)
            response = await gw.send("github", "issues.opened", delivery_id="mixed-1")
            assert response.status_code == 202
            [job] = await gw.wait_for_jobs("mixed-1", count=1)
            assert job.status == "succeeded"
            assert (await gw.platform.backends.store.get_delivery("mixed-1")).jobs_total == 1
    finally:
        server.kill()
    assert (tmp_path / "data" / DB_FILE).exists()


async def test_retention_prunes_dead_letters_after_their_own_setting(tmp_path: Path) -> None:
    config = ProjectConfig(storage={"retention_days": 10, "dead_letter_retention_days": 60})
    platform = Platform(LoadedConfig(config, {}, tmp_path / "ghapplets.yaml"), tmp_path / "d")
    await platform.backends.start()
    store = platform.backends.store
    now = time.time()
    try:
        for i, days in (("d70", 70), ("d50", 50)):
            d = delivery(i, now - days * 86400)
            d.status = DeliveryStatus.DISPATCHED
            d.jobs_total = 1
            await store.record_dispatch(
                [d], [JobRecord(f"github:{i}:a", "github", i, "a", JobStatus.QUEUED, now, now)]
            )
            await store.job_finished(
                JobUpdate(
                    f"github:{i}:a",
                    JobStatus.DEAD,
                    AttemptRecord(f"github:{i}:a", 1, now, now, AttemptOutcome.PERMANENT, "E", "x"),
                )
            )
        await store.record_dispatch([delivery("u20", now - 20 * 86400)], [])
        assert await platform.retention() == 2  # d70 (a dead letter past 60 days) and u20
        assert [d.id for d in await store.list_deliveries()] == ["d50"]
        assert await store.dead_letter_count() == 1
    finally:
        await platform.backends.close()


def sqlite_synchronous(backends: Backends) -> int:
    assert backends.db is not None
    return int(backends.db.read_sync(lambda c: c.exec_driver_sql("PRAGMA synchronous").scalar()))


@pytest.mark.parametrize(
    ("storage", "pragma"),
    [
        ({}, 1),  # NORMAL
        ({"sync": "normal"}, 1),
        ({"sync": "full"}, 2),  # FULL
        ({"synchronous": "full"}, 2),  # the old name still works
        ({"sync": "full", "synchronous": "full"}, 2),
    ],
)
async def test_storage_sync_reaches_the_database(
    tmp_path: Path, storage: dict[str, str], pragma: int
) -> None:
    async with open_backends(ProjectConfig(storage=storage), tmp_path) as b:
        assert sqlite_synchronous(b) == pragma
        assert b.db is not None
        written = await b.db.write(lambda c: c.exec_driver_sql("PRAGMA synchronous").scalar())
        assert written == pragma  # the writer's own connection too


def test_the_old_name_of_storage_sync_is_noted_and_may_not_contradict(tmp_path: Path) -> None:
    assert ProjectConfig(storage={"sync": "full"}).deprecations() == []
    old = ProjectConfig(storage={"synchronous": "full"})
    assert old.storage.sync == "full"
    assert old.deprecations() == [
        "storage.synchronous is deprecated: write 'storage.sync: full' instead"
    ]
    with pytest.raises(ValueError, match=r"storage\.synchronous is the old name of storage\.sync"):
        ProjectConfig(storage={"sync": "normal", "synchronous": "full"})


@pytest.mark.parametrize("storage", ["sqlite", "postgresql"])
async def test_retention_prunes_the_embedded_brokers_settled_messages(
    storage: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Beside either store: the embedded broker keeps settled messages (the ids seen) only as
    long as the history, even when the history is in PostgreSQL."""
    settings: dict[str, object] = {"retention_days": 10}
    if storage == "postgresql":
        settings |= {"backend": "postgresql", "url": request.getfixturevalue("pg_url")}
    config = ProjectConfig(storage=settings)
    platform = Platform(LoadedConfig(config, {}, tmp_path / "ghapplets.yaml"), tmp_path / "d")
    await platform.backends.start()
    broker = platform.backends.broker
    assert isinstance(broker, SqliteBroker)
    try:
        old = time.time() - 20 * 86400
        await broker.publish(OutboundMessage("jobs", "new", {}, b"x"))

        def age(conn):  # type: ignore[no-untyped-def]
            for msg_id, state in (("old-acked", 1), ("old-pending", 0)):
                conn.exec_driver_sql(
                    "INSERT INTO broker_messages (stream, msg_id, headers, data, created_at,"
                    " available_at, delivered, state) VALUES ('jobs', ?, '{}', x'', ?, ?, 0, ?)",
                    (msg_id, old, old, state),
                )

        await broker.db.write(age)
        assert await platform.retention() == 0  # no delivery to prune
        left = await broker.db.read(
            lambda c: sorted(r[0] for r in c.exec_driver_sql("SELECT msg_id FROM broker_messages"))
        )
        assert left == ["new", "old-pending"]
    finally:
        await platform.backends.close()
