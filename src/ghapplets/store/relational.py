"""The history and secret stores' logic, once, for every relational backend.

A write is a generator of :class:`Step`\\ s (sans-I/O): it yields a statement of
:mod:`ghapplets.store.sql` and receives its result, so the same logic runs on SQLite's DB-API
cursor in the writer thread and on an asyncpg connection in the event loop. A backend supplies
two primitives (:meth:`Relational._write` runs a write in one group-committed transaction,
:meth:`Relational._query` runs a Core query) and :class:`SqlHistoryStore` and
:class:`SqlSecretStore` do the rest.

Row locks: SQLite's writer holds the whole database for its transaction, so it needs none.
PostgreSQL's transactions run side by side (in other processes too), so a step that reads rows
it will change carries ``lock`` (``FOR UPDATE``), which only PostgreSQL applies. A ``lock`` step
is a ``SELECT`` run for its locks alone; SQLite skips it.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Generator, Mapping, Sequence
from typing import Any, Literal, NamedTuple, ParamSpec, TypeVar

import orjson
from sqlalchemy import Select

from ghapplets.crashpoints import CrashPoint, reached
from ghapplets.exceptions import NotFound, SecretKeyMismatch
from ghapplets.store import sql
from ghapplets.store.base import Reencrypt, RunStore, SecretStore, Store
from ghapplets.store.records import (
    BLUEPRINT_NAME_MAX,
    EVENT_ID_MAX,
    EVENT_TYPE_MAX,
    RUN_ID_MAX,
    STEP_KEY_MAX,
    UNCHANGED,
    AttemptRecord,
    DeliveryRecord,
    DeliveryStatus,
    JobRecord,
    JobStatus,
    JobUpdate,
    ListenerRecord,
    RunRecord,
    RunStatus,
    SecretReadRecord,
    SecretRecord,
    Unchanged,
)

T = TypeVar("T")
P = ParamSpec("P")

JOBS_CHUNK = 400  # job ids per status query
BODIES_CHUNK = 200  # deliveries per body query (two bound parameters each)
PRUNE_CHUNK = 256  # deliveries deleted per transaction
AUDIT_PRUNE_CHUNK = 2000  # audit lines of secret reads deleted per transaction
RUNS_CHUNK = 400  # run ids per statement that names them (locks, listeners)
RUN_PRUNE_CHUNK = 64  # blueprint runs deleted per transaction (each with all its steps)
# the clock leases are measured by and runs are stamped with (the processes' clocks: keep them
# in sync); tests replace it
clock = time.time


class Step(NamedTuple):
    """One statement of a write, and what the write wants back from it.

    ``kind``: ``execute`` (the row count back), ``many`` (one statement per parameter set,
    nothing back), ``first`` (the first row or None), ``rows`` (every row), ``lock`` (a
    ``SELECT`` for its row locks only, or a ``LOCK TABLE``: PostgreSQL runs it, SQLite skips
    it). ``lock`` on a reading step is the locking clause PostgreSQL appends (``FOR UPDATE``...).
    """

    kind: Literal["execute", "many", "first", "rows", "lock"]
    sql: str
    params: Any  # a mapping, or a list of mappings for "many"
    lock: str = ""


Write = Generator[Step, Any, T]


def _lock_delivery(source: str, delivery_id: str) -> Step:
    return Step(
        "lock",
        sql.SELECT_DELIVERY_KEY,
        {"source": source, "delivery_id": delivery_id},
        "FOR UPDATE",
    )


def refresh_delivery(source: str, delivery_id: str) -> Write[None]:
    """Recompute a delivery's counters and status from its jobs.

    On PostgreSQL the delivery is locked first and counted in a statement of its own, so two
    transactions finishing jobs of one delivery count each other's committed work (an
    ``UPDATE`` that waited for the row would otherwise count with its older snapshot)."""
    params = sql.refresh_params(source, delivery_id)
    yield _lock_delivery(source, delivery_id)
    yield Step("execute", sql.REFRESH_COUNTS, params)
    yield Step("execute", sql.REFRESH_STATUS, params)


def record_dispatch(deliveries: list[DeliveryRecord], jobs: list[JobRecord]) -> Write[set[str]]:
    # in key order: two replicas inserting overlapping batches wait for each other, not deadlock
    if deliveries:
        rows = [sql.delivery_params(d) for d in sorted(deliveries, key=lambda d: (d.source, d.id))]
        yield Step("many", sql.INSERT_DELIVERY, rows)
    to_run: set[str] = set()
    if jobs:
        ordered = sorted(jobs, key=_id)
        settled: set[str] = set()
        for i in range(0, len(ordered), JOBS_CHUNK):
            statement, params = sql.settled_jobs([j.id for j in ordered[i : i + JOBS_CHUNK]])
            settled.update(row[0] for row in (yield Step("rows", statement, params)))
        yield Step("many", sql.INSERT_JOB, [sql.job_params(j) for j in ordered])
        to_run = {j.id for j in ordered} - settled
    for source, delivery_id in sorted(sql.added_to(deliveries, jobs)):  # a replay's new jobs
        yield from refresh_delivery(source, delivery_id)
    return to_run


def _id(job: JobRecord) -> str:
    return job.id


def job_started(job_id: str, attempt: int, at: float) -> Write[None]:
    yield Step("execute", sql.JOB_STARTED, sql.started_params(job_id, attempt, at))


def job_finished(u: JobUpdate) -> Write[None]:
    job = yield Step("first", sql.SELECT_JOB, {"job_id": u.job_id}, "FOR UPDATE")
    if job is None or job["status"] == JobStatus.SUCCEEDED:
        return  # unknown, or done already (a redelivery after a crash)
    attempt, finish = sql.finished_params(u)
    yield Step("execute", sql.UPSERT_ATTEMPT, attempt)
    yield Step("execute", sql.FINISH_JOB, finish)
    if u.status == JobStatus.DEAD:
        yield Step("execute", sql.BURY_JOB, sql.bury_params(u, job))
    if u.status.final:
        yield from refresh_delivery(job["source"], job["delivery_id"])


def requeue_job(job_id: str) -> Write[JobRecord]:
    row = yield Step("first", sql.SELECT_JOB_ROW, {"job_id": job_id}, "FOR UPDATE")
    if row is None:
        raise NotFound(f"no job {job_id!r}")
    job = sql.job_of(row)
    yield Step("execute", sql.REQUEUE_JOB, {"job_id": job_id, "queued": JobStatus.QUEUED})
    yield Step("execute", sql.UNBURY_JOB, {"job_id": job_id})
    yield from refresh_delivery(job.source, job.delivery_id)
    job.status = JobStatus.QUEUED  # as stored now
    job.next_attempt_at = job.error_type = job.error_message = None
    return job


def prune_chunk(older_than: float, limit: int, *, failed: bool = False) -> Write[int]:
    """Delete up to ``limit`` finished deliveries received before ``older_than`` (those whose
    jobs all succeeded or that matched nothing; with ``failed``, those whose jobs all finished
    and some died), with their jobs, attempts and dead letters. PostgreSQL skips deliveries
    another transaction holds."""
    query, statuses = (
        (sql.PRUNABLE_FAILED, sql.PRUNABLE_FAILED_STATUS)
        if failed
        else (sql.PRUNABLE_DELIVERIES, sql.PRUNABLE)
    )
    params = {"older_than": older_than, "limit": limit, **statuses}
    old = yield Step("rows", query, params, "FOR UPDATE SKIP LOCKED")
    keys = [{"source": r["source"], "delivery_id": r["id"]} for r in old]
    if keys:
        yield Step("many", sql.DELETE_DELIVERY_ATTEMPTS, keys)
        yield Step("many", sql.DELETE_DELIVERY_DEAD_LETTERS, keys)
        yield Step("many", sql.DELETE_DELIVERY_JOBS, keys)
        yield Step("many", sql.DELETE_DELIVERY, keys)
    return len(keys)


def claim_lease(name: str, holder: str, ttl: float, now: float) -> Write[bool]:
    params = sql.lease_params(name, holder, ttl, now)
    yield Step("execute", sql.CLAIM_LEASE, params)
    row = yield Step("first", sql.LEASE_HOLDER, params)  # in the same transaction: atomic
    return row is not None and row["holder"] == holder


def release_lease(name: str, holder: str) -> Write[None]:
    yield Step("execute", sql.RELEASE_LEASE, {"name": name, "holder": holder})


def put_secret(record: SecretRecord) -> Write[None]:
    yield Step("lock", sql.LOCK_SECRETS, {})
    if record.key_id is not None:
        other = yield Step("first", sql.OTHER_KEY, {"key_id": record.key_id})
        if other is not None:
            raise SecretKeyMismatch(
                f"cannot store secret {record.name!r} with key {record.key_id}: the stored "
                f"secrets are encrypted with key {other['key_id']} (rotated?)",
                other["key_id"],
            )
    yield Step("execute", sql.PUT_SECRET, sql.secret_params(record))


def reencrypt_secrets(transform: Reencrypt) -> Write[int]:
    yield Step("lock", sql.LOCK_SECRETS, {})
    rows = yield Step("rows", sql.ALL_SECRETS, {})
    rewritten = transform([sql.secret_of(row) for row in rows])
    params = [{"name": r.name, "ciphertext": r.ciphertext, "key_id": r.key_id} for r in rewritten]
    if params:
        yield Step("many", sql.REKEY_SECRET, params)
    return len(params)


def delete_secret(name: str) -> Write[bool]:
    count = yield Step("execute", sql.DELETE_SECRET, {"name": name})
    return bool(count)


def put_token(key: str, ciphertext: bytes, expires_at: float, now: float) -> Write[None]:
    params = {"key": key, "ciphertext": ciphertext, "expires_at": expires_at, "updated_at": now}
    yield Step("execute", sql.PUT_TOKEN, params)


def record_secret_reads(reads: Sequence[SecretReadRecord]) -> Write[None]:
    yield Step("many", sql.RECORD_SECRET_READ, [sql.secret_read_params(r) for r in reads])


def prune_secret_reads(older_than: float, limit: int) -> Write[int]:
    params = {"older_than": older_than, "limit": limit}
    count = yield Step("execute", sql.PRUNE_SECRET_READS, params)
    return int(count)


# -- blueprint runs ------------------------------------------------------------------------------
def create_run(run: RunRecord) -> Write[bool]:
    count = yield Step("execute", sql.INSERT_RUN, sql.run_params(run))
    return bool(count)


def update_run(
    run_id: str,
    status: RunStatus,
    changes: Mapping[str, Any],
    expect: Collection[RunStatus] | None,
    resumed: bool,
    now: float,
) -> Write[bool]:
    statement, params = sql.update_run(run_id, status, changes, expect, resumed, now)
    count = yield Step("execute", statement, params)
    if count and sql.run_status(status).final:  # nothing is delivered to a finished run
        yield Step("execute", sql.DELETE_RUN_LISTENERS, {"run_id": run_id})
    return bool(count)


def checkpoint_step(
    run_id: str,
    step: Mapping[str, Any],
    emit: Sequence[Mapping[str, Any]],
    listen: Sequence[ListenerRecord],
    unlisten: str | None,
    now: float,
) -> Write[None]:
    """The step, its events and its listeners, in the caller's one transaction. The run's row
    is written first: on PostgreSQL that locks it, so checkpoints (and deliveries) of one run
    take turns and the next position is read by one of them at a time. A final run registers
    no listener (its step and events are kept: the step did run)."""
    params = sql.step_params(run_id, step)
    yield Step("execute", sql.TOUCH_RUN, {"run_id": params["run_id"], "now": now})
    run = yield Step("first", sql.RUN_STATUS, {"run_id": run_id})
    if run is None:
        raise NotFound(f"no run {run_id!r}")
    row = yield Step("first", sql.NEXT_STEP_POSITION, {"run_id": run_id})
    yield Step("execute", sql.UPSERT_STEP, {**params, "position": row["position"]})
    if emit:
        events = [sql.outbox_params(run_id, e, i, now) for i, e in enumerate(emit)]
        yield Step("many", sql.INSERT_OUTBOX, events)
    # a run that finished meanwhile (a cancel beat the worker's checkpoint) listens no more
    if listen and not sql.run_status(run["status"]).final:
        rows = [sql.listener_params(run_id, listener) for listener in listen]
        keys = sorted({row["key"] for row in rows})  # registered again: its rows replaced
        yield Step("many", sql.DELETE_LISTENER, [{"run_id": run_id, "key": k} for k in keys])
        yield Step("many", sql.INSERT_LISTENER, rows)
    if unlisten is not None:
        yield Step("execute", sql.DELETE_LISTENER, {"run_id": run_id, "key": unlisten})


def deliver(
    deliveries: Sequence[tuple[str, str, Mapping[str, Any]]], now: float
) -> Write[set[str]]:
    """Number each event in its listener's inbox, skipping those it has. On PostgreSQL the runs
    are locked first (in id order), so two processes delivering to one listener at once take
    turns and the second numbers after the first's events."""
    rows = [sql.inbox_params(run_id, key, event, now) for run_id, key, event in deliveries]
    run_ids = sorted({row["run_id"] for row in rows})
    listening: set[tuple[str, str]] = set()
    for i in range(0, len(run_ids), RUNS_CHUNK):
        statement, params = sql.lock_runs(run_ids[i : i + RUNS_CHUNK])
        yield Step("lock", statement, params, "FOR UPDATE")
    for i in range(0, len(run_ids), RUNS_CHUNK):
        statement, params = sql.listening(run_ids[i : i + RUNS_CHUNK])
        found = yield Step("rows", statement, params)
        listening.update((r["run_id"], r["key"]) for r in found)
    next_seq: dict[tuple[str, str], int] = {}
    got: set[str] = set()
    for row in rows:
        listener = (row["run_id"], row["key"])
        if listener not in listening:  # not (or no longer) listening
            continue
        if listener not in next_seq:
            first = yield Step("first", sql.NEXT_INBOX_SEQ, row)
            next_seq[listener] = int(first["seq"])
        added = yield Step("execute", sql.INSERT_INBOX, {**row, "seq": next_seq[listener]})
        if added:  # else in the inbox already: a redelivery
            next_seq[listener] += 1
            got.add(row["run_id"])
    return got


def drop_outbox(ids: Sequence[str]) -> Write[None]:
    yield Step("many", sql.DROP_OUTBOX, [{"id": event_id} for event_id in ids])


def prune_runs_chunk(older_than: float, limit: int) -> Write[int]:
    """Delete up to ``limit`` final runs finished before ``older_than`` with their steps,
    listeners and inboxes. PostgreSQL skips runs another transaction holds."""
    params = {"older_than": older_than, "limit": limit, **sql.FINAL_STATUSES}
    old = yield Step("rows", sql.PRUNABLE_RUNS, params, "FOR UPDATE SKIP LOCKED")
    keys = [{"run_id": r["id"]} for r in old]
    if keys:
        yield Step("many", sql.DELETE_RUN_STEPS, keys)
        yield Step("many", sql.DELETE_RUN_LISTENERS, keys)
        yield Step("many", sql.DELETE_RUN_INBOX, keys)
        yield Step("many", sql.DELETE_RUN, keys)
    return len(keys)


class Relational(ABC):
    """What a relational backend supplies: running writes and queries, and its SQLAlchemy
    dialect's name (a query that differs by database asks)."""

    dialect: str = "sqlite"

    @abstractmethod
    async def _write(self, write: Callable[P, Write[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``write(*args, **kwargs)`` in a group-committed transaction. The call may be
        made again (in a transaction of its own when a neighbour in the batch failed)."""

    @abstractmethod
    async def _query(self, query: Select[Any]) -> list[sql.Row]: ...


class SqlRunStore(Relational, RunStore):
    """:class:`RunStore` on any :class:`Relational` backend."""

    async def create_run(self, run: RunRecord) -> bool:
        return await self._write(create_run, run)

    async def get_run(self, run_id: str) -> RunRecord:
        rows = await self._query(sql.run_query(run_id)) if sql.storable(run_id, RUN_ID_MAX) else []
        if not rows:
            raise NotFound(f"no run {run_id!r}")
        return sql.run_of(rows[0])

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        name: str | None = None,
        namespace: str | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        if any(v and not sql.storable(v, BLUEPRINT_NAME_MAX) for v in (name, namespace)):
            return []
        query = sql.runs_query(status, name, namespace, limit)
        return [sql.run_of(r) for r in await self._query(query)]

    async def update_run(
        self,
        run_id: str,
        *,
        status: RunStatus,
        output: Any = UNCHANGED,
        error: dict[str, Any] | Unchanged | None = UNCHANGED,
        wake_at: float | Unchanged | None = UNCHANGED,
        finished_at: float | Unchanged | None = UNCHANGED,
        expect: Collection[RunStatus] | None = None,
        resumed: bool = False,
    ) -> bool:
        now = clock()
        changes: dict[str, Any] = {}
        if output is not UNCHANGED:
            changes["output"] = sql.stored_json("a run's output", output)
        if error is not UNCHANGED:
            changes["error"] = None if error is None else sql.stored_json("a run's error", error)
        if wake_at is not UNCHANGED:
            changes["wake_at"] = sql.epoch("a run's wake_at", wake_at, optional=True)
        if finished_at is not UNCHANGED:
            changes["finished_at"] = sql.epoch("a run's finished_at", finished_at, optional=True)
        elif sql.run_status(status).final:
            changes["finished_at"] = now
        return await self._write(update_run, run_id, status, changes, expect, resumed, now)

    async def checkpoint_step(
        self,
        run_id: str,
        step: dict[str, Any],
        *,
        emit: Sequence[dict[str, Any]] = (),
        listen: Sequence[ListenerRecord] = (),
        unlisten: str | None = None,
    ) -> None:
        await self._write(checkpoint_step, run_id, step, emit, listen, unlisten, clock())

    async def steps(self, run_id: str) -> list[dict[str, Any]]:
        if not sql.storable(run_id, RUN_ID_MAX):
            return []
        return [orjson.loads(r["record"]) for r in await self._query(sql.steps_query(run_id))]

    async def listeners_for(self, types: Sequence[str]) -> list[ListenerRecord]:
        exact = [t for t in types if sql.storable(t, EVENT_TYPE_MAX)]  # others match no row
        return [sql.listener_of(r) for r in await self._query(sql.listeners_query(exact))]

    async def deliver(self, deliveries: Sequence[tuple[str, str, dict[str, Any]]]) -> set[str]:
        if not deliveries:
            return set()
        return await self._write(deliver, deliveries, clock())

    async def inbox(self, run_id: str, key: str, start: int = 0) -> list[dict[str, Any]]:
        if not (sql.storable(run_id, RUN_ID_MAX) and sql.storable(key, STEP_KEY_MAX)):
            return []
        rows = await self._query(sql.inbox_query(run_id, key, start))
        return [orjson.loads(r["event"]) for r in rows]

    async def due_runs(self, now: float, limit: int = 100) -> list[str]:
        return [r["id"] for r in await self._query(sql.due_runs_query(now, limit))]

    async def take_outbox(self, limit: int = 100) -> list[dict[str, Any]]:
        return [orjson.loads(r["event"]) for r in await self._query(sql.outbox_query(limit))]

    async def drop_outbox(self, ids: Sequence[str]) -> None:
        stored = [i for i in ids if sql.storable(i, EVENT_ID_MAX)]  # others are not there
        if stored:
            await self._write(drop_outbox, stored)

    async def prune_runs(self, older_than: float) -> int:
        """In chunks of :data:`RUN_PRUNE_CHUNK` runs, each its own transaction."""
        total = 0
        while True:
            pruned = await self._write(prune_runs_chunk, older_than, RUN_PRUNE_CHUNK)
            total += pruned
            if pruned < RUN_PRUNE_CHUNK:
                return total


class SqlHistoryStore(SqlRunStore, Store):
    """:class:`HistoryStore` (and :class:`RunStore`: runs live in the history's database) on
    any :class:`Relational` backend."""

    async def record_dispatch(
        self, deliveries: list[DeliveryRecord], jobs: list[JobRecord]
    ) -> set[str]:
        return await self._write(record_dispatch, deliveries, jobs)

    async def job_started(self, job_id: str, attempt: int, at: float) -> None:
        await self._write(job_started, job_id, attempt, at)

    async def job_finished(self, update: JobUpdate) -> None:
        await self._write(job_finished, update)

    async def requeue_job(self, job_id: str) -> JobRecord:
        return await self._write(requeue_job, job_id)

    async def list_deliveries(
        self,
        *,
        source: str | None = None,
        status: DeliveryStatus | None = None,
        type_prefix: str | None = None,
        limit: int = 50,
    ) -> list[DeliveryRecord]:
        rows = await self._query(sql.deliveries_query(source, status, type_prefix, limit))
        return [sql.delivery_of(r) for r in rows]

    async def get_delivery(self, delivery_id: str, source: str | None = None) -> DeliveryRecord:
        rows = await self._query(sql.delivery_query(delivery_id, source))
        if not rows:
            raise NotFound(f"no delivery {delivery_id!r}")
        if len(rows) > 1:
            raise NotFound(f"delivery id {delivery_id!r} exists in several sources; name one")
        return sql.delivery_of(rows[0])

    async def has_delivery(self, delivery_id: str, source: str | None = None) -> bool:
        return bool(await self._query(sql.delivery_key_query(delivery_id, source)))

    async def get_bodies(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], bytes]:
        bodies: dict[tuple[str, str], bytes] = {}
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), BODIES_CHUNK):
            for row in await self._query(sql.bodies_query(unique[i : i + BODIES_CHUNK])):
                bodies[(row["source"], row["id"])] = bytes(row["body"])
        return bodies

    async def list_jobs(
        self,
        *,
        delivery_id: str | None = None,
        applet: str | None = None,
        status: JobStatus | None = None,
        limit: int = 50,
    ) -> list[JobRecord]:
        rows = await self._query(sql.jobs_query(delivery_id, applet, status, limit))
        return [sql.job_of(r) for r in rows]

    async def get_job(self, job_id: str) -> JobRecord:
        rows = await self._query(sql.job_query(job_id))
        if not rows:
            raise NotFound(f"no job {job_id!r}")
        return sql.job_of(rows[0])

    async def list_attempts(self, job_id: str) -> list[AttemptRecord]:
        return [sql.attempt_of(r) for r in await self._query(sql.attempts_query(job_id))]

    async def dead_letter_count(self) -> int:
        rows = await self._query(sql.DEAD_LETTER_COUNT)
        return int(rows[0]["count"])

    async def prune(self, older_than: float, *, dead_older_than: float | None = None) -> int:
        """In chunks of :data:`PRUNE_CHUNK` deliveries, each its own transaction, so retention
        never holds the writer (or row locks) for long and ingestion goes on between them."""
        total = await self._prune(older_than, failed=False)
        if dead_older_than is not None:
            total += await self._prune(dead_older_than, failed=True)
        return total

    async def _prune(self, older_than: float, *, failed: bool) -> int:
        total = 0
        while True:
            pruned = await self._write(prune_chunk, older_than, PRUNE_CHUNK, failed=failed)
            reached(CrashPoint.RETENTION_BATCH)
            total += pruned
            if pruned < PRUNE_CHUNK:
                return total

    async def claim_lease(self, name: str, holder: str, ttl: float) -> bool:
        return await self._write(claim_lease, name, holder, ttl, clock())

    async def release_lease(self, name: str, holder: str) -> None:
        await self._write(release_lease, name, holder)


class SqlSecretStore(Relational, SecretStore):
    """:class:`SecretStore` on any :class:`Relational` backend."""

    async def put_secret(self, record: SecretRecord) -> None:
        await self._write(put_secret, record)

    async def get_secret(self, name: str) -> SecretRecord:
        rows = await self._query(sql.secret_query(name))
        if not rows:
            raise NotFound(f"no secret named {name!r}")
        return sql.secret_of(rows[0])

    async def list_secrets(self) -> list[SecretRecord]:
        return [sql.secret_of(r) for r in await self._query(sql.SECRETS)]

    async def delete_secret(self, name: str) -> bool:
        return await self._write(delete_secret, name)

    async def reencrypt_secrets(self, transform: Reencrypt) -> int:
        return await self._write(reencrypt_secrets, transform)

    async def get_token(self, key: str) -> tuple[bytes, float] | None:
        rows = await self._query(sql.token_query(key))
        if not rows:
            return None
        return bytes(rows[0]["ciphertext"]), float(rows[0]["expires_at"])

    async def put_token(self, key: str, ciphertext: bytes, expires_at: float) -> None:
        await self._write(put_token, key, ciphertext, expires_at, time.time())

    async def record_secret_reads(self, reads: Sequence[SecretReadRecord]) -> None:
        if reads:
            await self._write(record_secret_reads, reads)

    async def list_secret_reads(
        self, *, name: str | None = None, since: float | None = None, limit: int = 100
    ) -> list[SecretReadRecord]:
        rows = await self._query(sql.secret_reads_query(name, since, limit))
        return [sql.secret_read_of(r) for r in rows]

    async def prune_secret_reads(self, older_than: float) -> int:
        """In chunks of :data:`AUDIT_PRUNE_CHUNK` lines, each its own transaction."""
        total = 0
        while True:
            pruned = await self._write(prune_secret_reads, older_than, AUDIT_PRUNE_CHUNK)
            total += pruned
            if pruned < AUDIT_PRUNE_CHUNK:
                return total
