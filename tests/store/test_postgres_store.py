"""The PostgreSQL store's own behaviour: migrations, group commit, connection loss and recovery.

What every backend does is in test_conformance.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from ghapplets.exceptions import StoreUnavailable
from ghapplets.store import sql
from ghapplets.store.postgres import (
    _DIALECT,
    PostgresDatabase,
    PostgresHistoryStore,
    PostgresSecretStore,
    numbered,
)
from ghapplets.store.records import DeliveryRecord, DeliveryStatus, SecretRecord
from tests.servers import FORCE_EMBEDDED_PG, PostgresServer, start_embedded_postgres
from tests.store.schema_check import schema_differences


def delivery(i: str) -> DeliveryRecord:
    return DeliveryRecord(
        "github", i, "com.github.push", None, "t", time.time(), DeliveryStatus.UNMATCHED, {}, {},
        b"{}",
    )  # fmt: skip


async def differences(url: str) -> list[str]:
    engine = create_async_engine(
        "postgresql+asyncpg://", async_creator=lambda: asyncpg.connect(url), poolclass=NullPool
    )
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(schema_differences)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def opened(url: str, pool_size: int = 4) -> AsyncIterator[PostgresDatabase]:
    db = PostgresDatabase(url, pool_size)
    await db.open()
    try:
        yield db
    finally:
        await db.close()


def test_the_test_server_is_the_one_asked_for(pg_server: PostgresServer) -> None:
    # GHAPPLETS_TEST_EMBEDDED_PG=1 runs the whole suite on a private embedded server
    if os.environ.get(FORCE_EMBEDDED_PG) == "1":
        assert pg_server.embedded is not None
        assert pg_server.admin_url.endswith(f":{pg_server.embedded.port}/postgres")
    else:
        assert pg_server.embedded is None or ":5432/" not in pg_server.admin_url


# -- migrations ----------------------------------------------------------------------------------
async def test_migrations_create_the_schema(pg_empty_url: str) -> None:
    async with opened(pg_empty_url):
        pass
    assert await differences(pg_empty_url) == []
    async with opened(pg_empty_url):  # opening again is a no-op migration
        pass


MIGRATE_AT = """
import asyncio, sys, time
from ghapplets.store.postgres import PostgresDatabase

async def main(url: str, at: float) -> None:
    await asyncio.sleep(at - time.time())  # all together
    db = PostgresDatabase(url, 1)
    await db.open()
    await db.close()

asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""


async def test_replicas_starting_together_migrate_once(pg_empty_url: str) -> None:
    at = time.time() + 3  # once every process has imported what it needs
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", MIGRATE_AT, pg_empty_url, str(at), stderr=PIPE
        )
        for _ in range(3)
    ]
    async with asyncio.timeout(120):
        errors = [(await p.communicate())[1].decode() for p in procs]
    results = [(p.returncode, e) for p, e in zip(procs, errors, strict=True)]
    assert [code for code, _ in results] == [0, 0, 0], results
    assert await differences(pg_empty_url) == []


async def test_tasks_of_one_process_opening_together_migrate_once(pg_empty_url: str) -> None:
    # Alembic keeps its context in a module global: the lock also keeps two in one process apart
    dbs = [PostgresDatabase(pg_empty_url, 2) for _ in range(3)]
    try:
        async with asyncio.timeout(60):
            await asyncio.gather(*(db.open() for db in dbs))
    finally:
        await asyncio.gather(*(db.close() for db in dbs))
    assert await differences(pg_empty_url) == []


# -- group commit --------------------------------------------------------------------------------
async def test_writes_of_one_loop_turn_share_one_transaction(pg_url: str) -> None:
    async with opened(pg_url) as db:
        store = PostgresHistoryStore(db)
        before = db.commits
        await asyncio.gather(*(store.record_dispatch([delivery(f"d{i}")], []) for i in range(50)))
        assert db.commits == before + 1
        assert len(await store.list_deliveries(limit=100)) == 50


async def test_a_failing_write_does_not_fail_its_batch(pg_url: str) -> None:
    async with opened(pg_url) as db:

        def good(i: int):  # type: ignore[no-untyped-def]
            async def fn(conn) -> int:  # type: ignore[no-untyped-def]
                await conn.execute(
                    "INSERT INTO secrets VALUES ($1, 'global', '\\x00', 0, 0)", f"s{i}"
                )
                return i

            return fn

        async def bad(conn) -> None:  # type: ignore[no-untyped-def]
            await conn.execute("INSERT INTO no_such_table VALUES (1)")

        before = db.commits
        results = await asyncio.gather(
            *(db.write(good(i)) for i in range(20)), db.write(bad), return_exceptions=True
        )
        assert results[:20] == list(range(20))
        assert isinstance(results[20], asyncpg.UndefinedTableError)  # a bug stays visible
        assert db.commits == before + 20  # the batch failed; each good write alone
        assert len(await PostgresSecretStore(db).list_secrets()) == 20


# -- connection loss -----------------------------------------------------------------------------
class TcpProxy:
    """Forwards 127.0.0.1:<port> to a server; ``cut`` drops every connection, ``stop`` also
    refuses new ones (the server looks down), ``start`` serves again on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        for w in self._writers:
            w.transport.abort()
        self._writers.clear()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        await self._server.wait_closed()


def _host_port(url: str) -> tuple[str, int]:
    hostport = url.split("@", 1)[1].split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    return host, int(port)


def _via(url: str, proxy: TcpProxy) -> str:
    host, port = _host_port(url)
    return url.replace(f"@{host}:{port}/", f"@127.0.0.1:{proxy.port}/")


async def test_work_that_lost_its_connection_runs_again_on_a_fresh_one(pg_url: str) -> None:
    async with opened(pg_url) as db:
        calls: list[str] = []

        async def fn(conn) -> int:  # type: ignore[no-untyped-def]
            calls.append("call")
            if len(calls) == 1:  # the server dropped this pooled connection, unnoticed
                conn.terminate()
            return int(await conn.fetchval("SELECT 7"))

        assert await db.write(fn) == 7
        assert len(calls) == 2
        calls.clear()
        assert await db.read(fn) == 7
        assert len(calls) == 2


async def test_when_the_server_goes_down_while_a_failed_batch_is_retried_the_rest_fail_at_once(
    pg_url: str,
) -> None:
    """A batch failed on a bad write, so each write runs alone; the server goes away during
    the first: the writes after it fail with that same StoreUnavailable, none of them trying
    to connect (nor left waiting)."""
    proxy = TcpProxy(*_host_port(pg_url))
    await proxy.start()
    async with opened(_via(pg_url, proxy)) as db:
        tries: list[str] = []

        async def bad(conn) -> None:  # type: ignore[no-untyped-def]
            tries.append("bad")
            if len(tries) == 2:  # run alone, after the batch failed: the server goes away
                await proxy.stop()
            await conn.execute("INSERT INTO no_such_table VALUES (1)")

        async def good(conn) -> int:  # type: ignore[no-untyped-def]
            tries.append("good")
            return int(await conn.fetchval("SELECT 1"))

        results = await asyncio.wait_for(
            asyncio.gather(
                db.write(bad), *(db.write(good) for _ in range(3)), return_exceptions=True
            ),
            10,
        )
        assert isinstance(results[0], StoreUnavailable), results
        assert all(r is results[0] for r in results[1:]), results  # the one outage, not tried
        assert tries.count("bad") == 2  # in the batch, then alone (the lost connection: once)


@pytest.mark.parametrize(
    ("statements", "cause"),
    [
        # class 57, operator intervention: a cancelled statement (a statement timeout, an admin)
        (["SET LOCAL statement_timeout = 1", "SELECT pg_sleep(1)"], "canceling statement"),
        # 25006: a read-only transaction, as on a standby that a failover has not promoted yet
        (["SET TRANSACTION READ ONLY", "CREATE TEMP TABLE t (x int)"], "read-only transaction"),
    ],
)
async def test_errors_that_mean_not_now_are_store_unavailable(
    pg_url: str, statements: list[str], cause: str
) -> None:
    async with opened(pg_url) as db:

        async def fn(conn) -> None:  # type: ignore[no-untyped-def]
            for statement in statements:
                await conn.execute(statement)

        with pytest.raises(StoreUnavailable, match=cause) as caught:
            await db.write(fn)
        assert isinstance(caught.value.__cause__, asyncpg.PostgresError)
        assert await db.write(lambda conn: conn.fetchval("SELECT 1")) == 1  # and then works


async def test_an_unreachable_server_is_store_unavailable() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = PostgresDatabase(f"postgresql://postgres@127.0.0.1:{port}/ghapplets", 2)
    with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}/ghapplets"):
        await db.open()
    with pytest.raises(StoreUnavailable):
        await PostgresHistoryStore(db).ping()


async def test_connection_loss_is_store_unavailable_and_the_pool_recovers(pg_url: str) -> None:
    proxy = TcpProxy(*_host_port(pg_url))
    await proxy.start()
    async with opened(_via(pg_url, proxy)) as db:
        store, secrets = PostgresHistoryStore(db), PostgresSecretStore(db)
        await store.record_dispatch([delivery("before")], [])
        await store.ping()

        proxy.cut()  # the server dropped every connection (a restart): they are replaced
        await store.record_dispatch([delivery("after-cut")], [])
        assert len(await store.list_deliveries()) == 2

        await proxy.stop()  # the server is gone: no driver errors, StoreUnavailable
        with pytest.raises(StoreUnavailable):
            await store.ping()
        with pytest.raises(StoreUnavailable):
            await store.record_dispatch([delivery("lost")], [])
        with pytest.raises(StoreUnavailable):
            await store.list_deliveries()
        with pytest.raises(StoreUnavailable):
            await secrets.put_secret(SecretRecord("tok", "global", b"x", 1.0, 1.0))
        results = await asyncio.gather(
            *(store.job_started(f"j{i}", 1, time.time()) for i in range(10)),
            return_exceptions=True,
        )
        assert all(isinstance(r, StoreUnavailable) for r in results)

        await proxy.start()  # back: the very next call works
        await store.record_dispatch([delivery("back")], [])
        ids = sorted(d.id for d in await store.list_deliveries())
        assert ids == ["after-cut", "back", "before"]
        await store.ping()
    await proxy.stop()


async def test_a_restarted_server_is_used_again() -> None:
    server = await asyncio.to_thread(start_embedded_postgres)  # a server this test may stop
    try:
        async with opened(server.url) as db:
            store = PostgresHistoryStore(db)
            await store.record_dispatch([delivery("before")], [])
            await asyncio.to_thread(server.stop)
            with pytest.raises(StoreUnavailable):
                await store.list_deliveries()
            await asyncio.to_thread(server.start)
            await store.record_dispatch([delivery("after")], [])
            assert sorted(d.id for d in await store.list_deliveries()) == ["after", "before"]
    finally:
        await asyncio.to_thread(server.cleanup)


# -- the run store's queries ---------------------------------------------------------------------
async def test_run_store_lookups_use_their_indexes(pg_url: str) -> None:
    """With sequential scans priced out (the tables are empty here), each lookup can be an
    index search: listeners by event type (and NULL), due timers, prunable runs."""

    async def plan(
        conn: asyncpg.Connection, query: Select | str, params: dict | None = None
    ) -> str:
        if isinstance(query, str):
            statement, names = numbered(query)
            args = [(params or {})[n] for n in names]
        else:
            compiled = query.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
            statement = compiled.string
            args = [compiled.params[n] for n in compiled.positiontup or ()]
        return " / ".join(r[0].strip() for r in await conn.fetch("EXPLAIN " + statement, *args))

    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("SET enable_seqscan = off")
        shown = await plan(conn, sql.listeners_query(["com.example.push", "com.example.tag"]))
        assert shown.count("Index Scan on ix_blueprint_listeners_type") == 2, shown
        assert "(event_type IS NULL)" in shown
        shown = await plan(conn, sql.due_runs_query(0.0, 100))
        assert "Index Scan using ix_blueprint_runs_status_wake" in shown, shown
        assert "Sort" not in shown
        finals = {"older_than": 0.0, "limit": 64, **sql.FINAL_STATUSES}
        shown = await plan(conn, sql.PRUNABLE_RUNS, finals)
        assert "Index Scan using ix_blueprint_runs_status_finished" in shown, shown
        assert "finished_at <" in shown
    finally:
        await conn.close()
