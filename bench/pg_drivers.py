"""Which PostgreSQL driver for the store: asyncpg or psycopg 3, raw or through SQLAlchemy.

    pip install 'psycopg[binary,pool]'             # psycopg is measured, not a dependency
    python bench/pg_drivers.py                      # local server, 3 s a figure, 3 rounds
    python bench/pg_drivers.py --seconds 10 --url postgresql://postgres@db:5432/postgres

Measures the store's three hot write paths, each as its own transaction, with the same SQL:

- ``record_dispatch``: 256 deliveries (8 KB bodies) and 256 jobs inserted with
  ``ON CONFLICT DO NOTHING`` in one transaction (one dispatcher batch);
- ``job_started``: one guarded ``UPDATE`` of a job;
- ``job_finished``: read the job, upsert the attempt, update the job, recompute the delivery's
  counters (four statements in one transaction).

Each path runs on one connection (``x1``: latency-bound, the driver's own cost shows) and from
``--tasks`` concurrent tasks on a pool of ``--pool`` connections (``x32``: throughput).
Columns: ``asyncpg`` and ``psycopg`` (3, async, with ``psycopg_pool``) raw; the same with the
batch inserted by one ``unnest()`` statement instead of ``executemany``; both drivers through
SQLAlchemy's async engine (``+ SA``: Core statements, as a store would write them); and
``store``, Ghapplets' own PostgreSQL store (asyncpg, group commit: concurrent calls share a
transaction, so ``x32`` shows what batching adds). Each figure is the median of ``--rounds``
interleaved rounds, each on emptied tables; operations per second.

It creates a scratch database ``ghapplets_bench_<random>`` next to the one in ``--url`` (the
user must be allowed to) and drops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import psycopg
import psycopg_pool
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ghapplets.store import schema as t
from ghapplets.store.postgres import PostgresDatabase, PostgresHistoryStore
from ghapplets.store.records import (
    AttemptOutcome,
    AttemptRecord,
    DeliveryRecord,
    DeliveryStatus,
    JobRecord,
    JobStatus,
    JobUpdate,
)

BATCH = 256
BODY = b"x" * 8192
SUCCEEDED, DEAD, RUNNING = "succeeded", "dead", "running"

# -- the SQL, once, in the driver's placeholder style ($n for asyncpg, %s for psycopg) ---------
INSERT_DELIVERY = (
    "INSERT INTO deliveries (source, id, type, subject, time, received_at, status, jobs_total,"
    " jobs_succeeded, jobs_dead, attributes, headers, body)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, 0, $9, $10, $11) ON CONFLICT DO NOTHING"
)
INSERT_JOB = (
    "INSERT INTO jobs (id, source, delivery_id, applet, status, attempts, created_at, updated_at)"
    " VALUES ($1, $2, $3, $4, $5, 0, $6, $7) ON CONFLICT DO NOTHING"
)
# one statement for the whole batch: columns as arrays, rows rebuilt by unnest()
INSERT_DELIVERIES_UNNEST = (
    "INSERT INTO deliveries (source, id, type, subject, time, received_at, status, jobs_total,"
    " jobs_succeeded, jobs_dead, attributes, headers, body)"
    " SELECT s, i, ty, su, ti, r, st, n, 0, 0, a, h, b FROM unnest($1::text[], $2::text[],"
    " $3::text[], $4::text[], $5::text[], $6::float8[], $7::text[], $8::int[], $9::text[],"
    " $10::text[], $11::bytea[]) AS u(s, i, ty, su, ti, r, st, n, a, h, b)"
    " ON CONFLICT DO NOTHING"
)
INSERT_JOBS_UNNEST = (
    "INSERT INTO jobs (id, source, delivery_id, applet, status, attempts, created_at, updated_at)"
    " SELECT i, s, d, a, st, 0, c, u FROM unnest($1::text[], $2::text[], $3::text[],"
    " $4::text[], $5::text[], $6::float8[], $7::float8[]) AS x(i, s, d, a, st, c, u)"
    " ON CONFLICT DO NOTHING"
)
JOB_STARTED = (
    "UPDATE jobs SET status = $1, attempts = $2, updated_at = $3"
    " WHERE id = $4 AND status != $5 AND attempts < $2"
)
SELECT_JOB = "SELECT source, delivery_id, applet, status FROM jobs WHERE id = $1 FOR UPDATE"
UPSERT_ATTEMPT = (
    "INSERT INTO attempts (job_id, number, started_at, finished_at, outcome, error_type,"
    " error_message, logs) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    " ON CONFLICT (job_id, number) DO UPDATE SET finished_at = excluded.finished_at,"
    " outcome = excluded.outcome"
)
FINISH_JOB = (
    "UPDATE jobs SET status = $1, attempts = $2, updated_at = $3, next_attempt_at = $4,"
    " result = $5, error_type = $6, error_message = $7 WHERE id = $8"
)
REFRESH = (
    "UPDATE deliveries SET (jobs_total, jobs_succeeded, jobs_dead) = (SELECT count(*),"
    " count(*) FILTER (WHERE status = $3), count(*) FILTER (WHERE status = $4)"
    " FROM jobs WHERE source = $1 AND delivery_id = $2) WHERE source = $1 AND id = $2"
)


def psycopg_sql(sql: str) -> str:
    """``$n`` placeholders as psycopg's ``%(pn)s`` (named, so a repeated ``$n`` works)."""
    for n in range(11, 0, -1):
        sql = sql.replace(f"${n}", f"%(p{n})s")
    return sql


def named(row: tuple[Any, ...]) -> dict[str, Any]:
    return {f"p{i}": v for i, v in enumerate(row, 1)}


class Workload:
    """Fresh ids for each operation, so every insert really inserts."""

    def __init__(self) -> None:
        self.n = 0
        self.started: list[str] = []  # job ids ready for job_started / job_finished

    def dispatch_rows(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        self.n += 1
        now = time.time()
        deliveries, jobs = [], []
        for i in range(BATCH):
            did = f"d{self.n}-{i}"
            deliveries.append(
                (
                    "github",
                    did,
                    "com.github.push",
                    "o/r",
                    "t",
                    now,
                    "dispatched",
                    1,
                    '{"id": "x"}',
                    '{"x-github-event": "push"}',
                    BODY,
                )
            )
            jid = f"github:{did}:a"
            jobs.append((jid, "github", did, "a", "queued", now, now))
            self.started.append(jid)
        return deliveries, jobs

    def next_job(self) -> str:
        return self.started.pop()


# -- one implementation per driver ---------------------------------------------------------
class Raw:
    name = "?"

    async def open(self, url: str, pool: int) -> None: ...
    async def close(self) -> None: ...
    async def record_dispatch(self, d: list[tuple[Any, ...]], j: list[tuple[Any, ...]]) -> None: ...
    async def job_started(self, job_id: str, attempt: int) -> None: ...
    async def job_finished(self, job_id: str, attempt: int) -> None: ...


def finished_rows(job_id: str, n: int) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    now = time.time()
    attempt = (job_id, n, now, now, "ok", None, None, None)
    job = (SUCCEEDED, n, now, None, '{"ok": true}', None, None, job_id)
    return attempt, job


class AsyncpgRaw(Raw):
    name = "asyncpg"

    async def open(self, url: str, pool: int) -> None:
        self.pool = await asyncpg.create_pool(url, min_size=pool, max_size=pool)

    async def close(self) -> None:
        await self.pool.close()

    async def record_dispatch(self, d: list[tuple[Any, ...]], j: list[tuple[Any, ...]]) -> None:
        async with self.pool.acquire() as c, c.transaction():
            await c.executemany(INSERT_DELIVERY, d)
            await c.executemany(INSERT_JOB, j)

    async def job_started(self, job_id: str, attempt: int) -> None:
        async with self.pool.acquire() as c:
            await c.execute(JOB_STARTED, RUNNING, attempt, time.time(), job_id, SUCCEEDED)

    async def job_finished(self, job_id: str, attempt: int) -> None:
        a, u = finished_rows(job_id, attempt)
        async with self.pool.acquire() as c, c.transaction():
            row = await c.fetchrow(SELECT_JOB, job_id)
            if row is None or row["status"] == SUCCEEDED:
                return
            await c.execute(UPSERT_ATTEMPT, *a)
            await c.execute(FINISH_JOB, *u)
            await c.execute(REFRESH, row["source"], row["delivery_id"], SUCCEEDED, DEAD)


def columns(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(c) for c in zip(*rows, strict=True)]


class AsyncpgUnnest(AsyncpgRaw):
    name = "asyncpg unnest"

    async def record_dispatch(self, d: list[tuple[Any, ...]], j: list[tuple[Any, ...]]) -> None:
        async with self.pool.acquire() as c, c.transaction():
            await c.execute(INSERT_DELIVERIES_UNNEST, *columns(d))
            await c.execute(INSERT_JOBS_UNNEST, *columns(j))


class PsycopgRaw(Raw):
    name = "psycopg"
    D, J, S, SEL, A, F, R = map(
        psycopg_sql,
        (INSERT_DELIVERY, INSERT_JOB, JOB_STARTED, SELECT_JOB, UPSERT_ATTEMPT, FINISH_JOB, REFRESH),
    )
    DU, JU = psycopg_sql(INSERT_DELIVERIES_UNNEST), psycopg_sql(INSERT_JOBS_UNNEST)

    async def open(self, url: str, pool: int) -> None:
        self.pool = psycopg_pool.AsyncConnectionPool(url, min_size=pool, max_size=pool, open=False)
        await self.pool.open(wait=True)

    async def close(self) -> None:
        await self.pool.close()

    async def record_dispatch(self, d: list[tuple[Any, ...]], j: list[tuple[Any, ...]]) -> None:
        async with self.pool.connection() as c, c.cursor() as cur:  # commits on exit
            await cur.executemany(self.D, [named(r) for r in d])
            await cur.executemany(self.J, [named(r) for r in j])

    async def job_started(self, job_id: str, attempt: int) -> None:
        async with self.pool.connection() as c:
            row = (RUNNING, attempt, time.time(), job_id, SUCCEEDED)
            await c.execute(self.S, named(row))

    async def job_finished(self, job_id: str, attempt: int) -> None:
        a, u = finished_rows(job_id, attempt)
        async with self.pool.connection() as c:
            cur = await c.execute(self.SEL, named((job_id,)))
            row = await cur.fetchone()
            if row is None or row[3] == SUCCEEDED:
                return
            await c.execute(self.A, named(a))
            await c.execute(self.F, named(u))
            await c.execute(self.R, named((row[0], row[1], SUCCEEDED, DEAD)))


class PsycopgUnnest(PsycopgRaw):
    name = "psycopg unnest"

    async def record_dispatch(self, d: list[tuple[Any, ...]], j: list[tuple[Any, ...]]) -> None:
        async with self.pool.connection() as c:
            await c.execute(self.DU, named(tuple(columns(d))), binary=True)
            await c.execute(self.JU, named(tuple(columns(j))), binary=True)


class Alchemy(Raw):
    """SQLAlchemy's async engine and Core statements (the same SQL, compiled by SQLAlchemy)."""

    def __init__(self, driver: str) -> None:
        self.driver = driver
        self.name = f"{driver} + SA"
        d, j, a = t.deliveries, t.jobs, t.attempts
        self.ins_d = pg_insert(d).on_conflict_do_nothing()
        self.ins_j = pg_insert(j).on_conflict_do_nothing()
        self.started = (
            sa.update(j)
            .where(j.c.id == sa.bindparam("b_id"), j.c.status != SUCCEEDED)
            .where(j.c.attempts < sa.bindparam("b_attempts"))
            .values(
                status=RUNNING, attempts=sa.bindparam("b_attempts"), updated_at=sa.bindparam("b_at")
            )
        )
        self.sel = (
            sa.select(j.c.source, j.c.delivery_id, j.c.status)
            .where(j.c.id == sa.bindparam("b_id"))
            .with_for_update()
        )
        ins_a = pg_insert(a)
        self.upsert_a = ins_a.on_conflict_do_update(
            index_elements=[a.c.job_id, a.c.number],
            set_={"finished_at": ins_a.excluded.finished_at, "outcome": ins_a.excluded.outcome},
        )
        self.finish = sa.update(j).where(j.c.id == sa.bindparam("b_id"))
        self.refresh = sa.text(
            REFRESH.replace("$1", ":s")
            .replace("$2", ":d")
            .replace("$3", ":ok")
            .replace("$4", ":dead")
        )

    async def open(self, url: str, pool: int) -> None:
        u = url.replace("postgresql://", f"postgresql+{self.driver}://", 1)
        self.engine: AsyncEngine = create_async_engine(u, pool_size=pool, max_overflow=0)

    async def close(self) -> None:
        await self.engine.dispose()

    async def record_dispatch(self, d: list[tuple[Any, ...]], j: list[tuple[Any, ...]]) -> None:
        dcols = [
            "source",
            "id",
            "type",
            "subject",
            "time",
            "received_at",
            "status",
            "jobs_total",
            "attributes",
            "headers",
            "body",
        ]
        jcols = ["id", "source", "delivery_id", "applet", "status", "created_at", "updated_at"]
        drows = [dict(zip(dcols, r, strict=True), jobs_succeeded=0, jobs_dead=0) for r in d]
        jrows = [dict(zip(jcols, r, strict=True), attempts=0) for r in j]
        async with self.engine.begin() as c:
            await c.execute(self.ins_d, drows)
            await c.execute(self.ins_j, jrows)

    async def job_started(self, job_id: str, attempt: int) -> None:
        async with self.engine.begin() as c:
            await c.execute(
                self.started, {"b_id": job_id, "b_attempts": attempt, "b_at": time.time()}
            )

    async def job_finished(self, job_id: str, attempt: int) -> None:
        a, u = finished_rows(job_id, attempt)
        async with self.engine.begin() as c:
            row = (await c.execute(self.sel, {"b_id": job_id})).first()
            if row is None or row.status == SUCCEEDED:
                return
            acols = [
                "job_id",
                "number",
                "started_at",
                "finished_at",
                "outcome",
                "error_type",
                "error_message",
                "logs",
            ]
            await c.execute(self.upsert_a, dict(zip(acols, a, strict=True)))
            await c.execute(
                self.finish.values(
                    status=u[0],
                    attempts=u[1],
                    updated_at=u[2],
                    next_attempt_at=u[3],
                    result=u[4],
                    error_type=u[5],
                    error_message=u[6],
                ),
                {"b_id": job_id},
            )
            await c.execute(
                self.refresh, {"s": row.source, "d": row.delivery_id, "ok": SUCCEEDED, "dead": DEAD}
            )


class Store(Raw):
    """Ghapplets' own PostgreSQL store: asyncpg with group commit (concurrent calls share a
    transaction), the same statements."""

    name = "ghapplets store"

    async def open(self, url: str, pool: int) -> None:
        self.db = PostgresDatabase(url, pool)
        await self.db.open()
        self.store = PostgresHistoryStore(self.db)

    async def close(self) -> None:
        await self.db.close()

    async def record_dispatch(self, d: list[tuple[Any, ...]], j: list[tuple[Any, ...]]) -> None:
        deliveries = [
            DeliveryRecord(
                s, i, ty, su, ti, r, DeliveryStatus(st), {"id": "x"}, {}, b, jobs_total=n
            )
            for s, i, ty, su, ti, r, st, n, _a, _h, b in d
        ]
        jobs = [JobRecord(i, s, di, a, JobStatus(st), c, u) for i, s, di, a, st, c, u in j]
        await self.store.record_dispatch(deliveries, jobs)

    async def job_started(self, job_id: str, attempt: int) -> None:
        await self.store.job_started(job_id, attempt, time.time())

    async def job_finished(self, job_id: str, attempt: int) -> None:
        now = time.time()
        done = AttemptRecord(job_id, attempt, now, now, AttemptOutcome.OK)
        await self.store.job_finished(JobUpdate(job_id, JobStatus.SUCCEEDED, done, {"ok": True}))


# -- measuring ---------------------------------------------------------------------------------
async def rate(
    seconds: float, tasks: int, op: Callable[[], Awaitable[None]], max_ops: int | None = None
) -> float:
    """Operations per second of ``op`` run back to back by ``tasks`` tasks for ``seconds``."""
    done = 0
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()

    async def loop() -> None:
        nonlocal done
        while time.perf_counter() < deadline and (max_ops is None or done < max_ops):
            await op()
            done += 1

    await asyncio.gather(*(loop() for _ in range(tasks)))
    return done / (time.perf_counter() - start)


async def measure(impl: Raw, url: str, args: argparse.Namespace) -> dict[str, float]:
    """One round of every figure for ``impl``, on emptied tables (so no driver inherits the
    bloat, the WAL or the checkpoint debt of another)."""
    admin = await asyncpg.connect(url)
    try:
        await admin.execute("TRUNCATE deliveries, jobs, attempts")
        await admin.execute("VACUUM ANALYZE")
        with contextlib.suppress(asyncpg.PostgresError):  # needs superuser; a nicety
            await admin.execute("CHECKPOINT")
    finally:
        await admin.close()
    await impl.open(url, args.pool)
    work = Workload()
    out: dict[str, float] = {}
    try:

        async def dispatch() -> None:
            await impl.record_dispatch(*work.dispatch_rows())

        attempt = {"n": 0}

        async def started() -> None:
            await impl.job_started(work.started[-1 - attempt["n"] % 1000], 1 + attempt["n"])
            attempt["n"] += 1

        async def finished() -> None:
            await impl.job_finished(work.next_job(), 1)

        for tasks in (1, args.tasks):
            out[f"record_dispatch x{tasks}"] = await rate(args.seconds, tasks, dispatch)
            out[f"job_started x{tasks}"] = await rate(args.seconds, tasks, started)
            # every job_finished consumes a fresh job: stop before running out
            out[f"job_finished x{tasks}"] = await rate(
                args.seconds, tasks, finished, max_ops=len(work.started) - tasks
            )
    finally:
        await impl.close()
    return out


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--url",
        default=os.environ.get(
            "GHAPPLETS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--pool", type=int, default=10)
    p.add_argument("--tasks", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3, help="rounds (median reported)")
    args = p.parse_args()

    admin = await asyncpg.connect(args.url)
    name = f"ghapplets_bench_{secrets.token_hex(4)}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = args.url.rpartition("/")
    url = f"{base}/{name}"
    try:
        schema = PostgresDatabase(url, 1)  # the store's own migrations
        await schema.open()
        await schema.close()
        version = await admin.fetchval("SHOW server_version")
        impls: list[Raw] = [
            AsyncpgRaw(),
            AsyncpgUnnest(),
            PsycopgRaw(),
            PsycopgUnnest(),
            Alchemy("asyncpg"),
            Alchemy("psycopg"),
            Store(),
        ]
        print(
            f"PostgreSQL {version}; Python {platform.python_version()}; {os.cpu_count()} CPUs; "
            f"asyncpg {asyncpg.__version__}, psycopg {psycopg.__version__}, "
            f"SQLAlchemy {sa.__version__}; {args.seconds:g} s per figure, pool {args.pool}, "
            f"median of {args.rounds} rounds; load average {os.getloadavg()[0]:.1f}"
        )
        rounds: dict[str, list[dict[str, float]]] = {impl.name: [] for impl in impls}
        for r in range(args.rounds):  # interleaved, each round in another order
            for impl in impls[r % len(impls) :] + impls[: r % len(impls)]:
                rounds[impl.name].append(await measure(impl, url, args))
        results = {
            name: {op: statistics.median(x[op] for x in runs) for op in runs[0]}
            for name, runs in rounds.items()
        }
        print(f"\n{'ops/s (x tasks)':<20}" + "".join(f"{n:>16}" for n in results))
        for op in next(iter(results.values())):
            print(f"{op:<20}" + "".join(f"{r[op]:>16,.0f}" for r in results.values()))
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
