"""The store's SQL and record mapping, written once for SQLite and PostgreSQL.

- Write statements are plain SQL with named parameters (``:name``) in the dialect both databases
  speak: upserts are ``ON CONFLICT``, counts are ``sum(CASE ...)``. SQLite runs the text as it
  is on its DB-API cursor; PostgreSQL compiles it once to asyncpg's ``$1, $2...``
  (:func:`ghapplets.store.postgres.numbered`). Where PostgreSQL needs more (row locks, bulk
  ``unnest``), its store says so next to the statement.
- Queries are SQLAlchemy Core (filters, limits, ``LIKE`` escaping), compiled by each backend.
- ``*_params`` turn records into statement parameters; ``*_of`` turn rows back into records.

Statuses are :mod:`ghapplets.store.records` enums passed as parameters, never spelled in SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from typing import Any, TypeVar

import orjson
from sqlalchemy import Select, func, select, tuple_

from ghapplets.store import schema as t
from ghapplets.store.records import (
    AttemptOutcome,
    AttemptRecord,
    DeliveryRecord,
    DeliveryStatus,
    JobRecord,
    JobStatus,
    JobUpdate,
    ReadOutcome,
    SecretReadRecord,
    SecretRecord,
)

Row = Mapping[Any, Any]  # SQLAlchemy RowMapping, sqlite3.Row, asyncpg Record: by column name

# -- writes ----------------------------------------------------------------------------------
INSERT_DELIVERY = (
    "INSERT INTO deliveries (source, id, type, subject, time, received_at, status, jobs_total,"
    " jobs_succeeded, jobs_dead, attributes, headers, body) VALUES (:source, :id, :type,"
    " :subject, :time, :received_at, :status, :jobs_total, 0, 0, :attributes, :headers, :body)"
    " ON CONFLICT DO NOTHING"
)
INSERT_JOB = (
    "INSERT INTO jobs (id, source, delivery_id, applet, status, attempts, created_at, updated_at)"
    " VALUES (:id, :source, :delivery_id, :applet, :status, 0, :created_at, :updated_at)"
    " ON CONFLICT DO NOTHING"
)
# a late "started" (after that attempt or the job finished) changes nothing
JOB_STARTED = (
    "UPDATE jobs SET status = :running, attempts = :attempt, updated_at = :at"
    " WHERE id = :job_id AND status != :succeeded AND attempts < :attempt"
)
SELECT_JOB = "SELECT source, delivery_id, applet, status FROM jobs WHERE id = :job_id"
SELECT_JOB_ROW = (
    "SELECT id, source, delivery_id, applet, status, attempts, created_at, updated_at,"
    " next_attempt_at, result, error_type, error_message FROM jobs WHERE id = :job_id"
)
SELECT_DELIVERY_KEY = "SELECT 1 FROM deliveries WHERE source = :source AND id = :delivery_id"
UPSERT_ATTEMPT = (
    "INSERT INTO attempts (job_id, number, started_at, finished_at, outcome, error_type,"
    " error_message, logs) VALUES (:job_id, :number, :started_at, :finished_at, :outcome,"
    " :error_type, :error_message, :logs) ON CONFLICT (job_id, number) DO UPDATE SET"
    " started_at = excluded.started_at, finished_at = excluded.finished_at,"
    " outcome = excluded.outcome, error_type = excluded.error_type,"
    " error_message = excluded.error_message, logs = excluded.logs"
)
FINISH_JOB = (
    "UPDATE jobs SET status = :status, attempts = :number, updated_at = :finished_at,"
    " next_attempt_at = :next_attempt_at, result = :result, error_type = :error_type,"
    " error_message = :error_message WHERE id = :job_id"
)
BURY_JOB = (
    "INSERT INTO dead_letters (job_id, source, delivery_id, applet, reason, dead_at)"
    " VALUES (:job_id, :source, :delivery_id, :applet, :reason, :dead_at)"
    " ON CONFLICT (job_id) DO UPDATE SET reason = excluded.reason, dead_at = excluded.dead_at"
)
REQUEUE_JOB = (
    "UPDATE jobs SET status = :queued, next_attempt_at = NULL, error_type = NULL,"
    " error_message = NULL WHERE id = :job_id"
)
UNBURY_JOB = "DELETE FROM dead_letters WHERE job_id = :job_id"
# a delivery's counters and status, recomputed from its jobs (never counted up and down)
REFRESH_COUNTS = (
    "UPDATE deliveries SET (jobs_total, jobs_succeeded, jobs_dead) = (SELECT count(*),"
    " coalesce(sum(CASE WHEN status = :succeeded THEN 1 ELSE 0 END), 0),"
    " coalesce(sum(CASE WHEN status = :dead THEN 1 ELSE 0 END), 0)"
    " FROM jobs WHERE source = :source AND delivery_id = :delivery_id)"
    " WHERE source = :source AND id = :delivery_id"
)
REFRESH_STATUS = (
    "UPDATE deliveries SET status = CASE WHEN jobs_total = 0 THEN :unmatched"
    " WHEN jobs_succeeded = jobs_total THEN :all_succeeded"
    " WHEN jobs_succeeded + jobs_dead = jobs_total THEN :failed ELSE :dispatched END"
    " WHERE source = :source AND id = :delivery_id"
)
# finished history, oldest first: range scans of ix_deliveries_status_received (status,
# received_at), which skip the rows retention keeps (unfinished, or failed and younger)
PRUNABLE_DELIVERIES = (  # every job succeeded, or nothing matched
    "SELECT source, id FROM deliveries WHERE status IN (:succeeded, :unmatched)"
    " AND received_at < :older_than LIMIT :limit"
)
PRUNABLE_FAILED = (  # every job finished, some dead: kept for the dead-letter retention
    "SELECT source, id FROM deliveries WHERE status = :failed"
    " AND received_at < :older_than LIMIT :limit"
)
DELETE_DELIVERY_ATTEMPTS = (
    "DELETE FROM attempts WHERE job_id IN"
    " (SELECT id FROM jobs WHERE source = :source AND delivery_id = :delivery_id)"
)
DELETE_DELIVERY_DEAD_LETTERS = (
    "DELETE FROM dead_letters WHERE job_id IN"
    " (SELECT id FROM jobs WHERE source = :source AND delivery_id = :delivery_id)"
)
DELETE_DELIVERY_JOBS = "DELETE FROM jobs WHERE source = :source AND delivery_id = :delivery_id"
DELETE_DELIVERY = "DELETE FROM deliveries WHERE source = :source AND id = :delivery_id"
# a replaced secret keeps its created_at
PUT_SECRET = (
    "INSERT INTO secrets (name, scope, ciphertext, created_at, updated_at, key_id)"  # noqa: S105
    " VALUES (:name, :scope, :ciphertext, :created_at, :updated_at, :key_id)"
    " ON CONFLICT (name) DO UPDATE"
    " SET scope = excluded.scope, ciphertext = excluded.ciphertext,"
    " updated_at = excluded.updated_at, key_id = excluded.key_id"
)
DELETE_SECRET = "DELETE FROM secrets WHERE name = :name"  # noqa: S105 - SQL, not a secret
# writers of secrets take turns on PostgreSQL (SQLite's writer holds the whole database), so a
# key check and the write after it, or a rotation, see no other writer's change in between
LOCK_SECRETS = "LOCK TABLE secrets IN SHARE ROW EXCLUSIVE MODE"
OTHER_KEY = "SELECT key_id FROM secrets WHERE key_id IS NOT NULL AND key_id <> :key_id LIMIT 1"
ALL_SECRETS = (
    "SELECT name, scope, ciphertext, created_at, updated_at, key_id FROM secrets ORDER BY name"
)
REKEY_SECRET = (
    "UPDATE secrets SET ciphertext = :ciphertext, key_id = :key_id"  # noqa: S105 - SQL
    " WHERE name = :name"
)
# taken when free, expired or already ours; the caller reads the holder back in the same
# transaction (no RETURNING: SQLite has it only from 3.35)
CLAIM_LEASE = (
    "INSERT INTO leases (name, holder, expires_at) VALUES (:name, :holder, :expires_at)"
    " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at"
    " WHERE leases.expires_at < :now OR leases.holder = excluded.holder"
)
LEASE_HOLDER = "SELECT holder FROM leases WHERE name = :name"
RELEASE_LEASE = "DELETE FROM leases WHERE name = :name AND holder = :holder"
# a connector token replaced whole: the newest mint wins (each process mints only on a miss)
PUT_TOKEN = (
    "INSERT INTO connector_tokens (key, ciphertext, expires_at, updated_at)"  # noqa: S105 - SQL
    " VALUES (:key, :ciphertext, :expires_at, :updated_at) ON CONFLICT (key) DO UPDATE"
    " SET ciphertext = excluded.ciphertext, expires_at = excluded.expires_at,"
    " updated_at = excluded.updated_at"
)
# an audit line written again (a retried write whose commit was not answered) is left as it is
RECORD_SECRET_READ = (
    "INSERT INTO secret_reads (id, at, reader, name, backend, outcome, scope, count)"  # noqa: S105
    " VALUES (:id, :at, :reader, :name, :backend, :outcome, :scope, :count)"
    " ON CONFLICT (id) DO NOTHING"
)
# the oldest audit lines first, a bounded chunk per transaction (the index on ``at``)
PRUNE_SECRET_READS = (
    "DELETE FROM secret_reads WHERE id IN (SELECT id FROM secret_reads"  # noqa: S105 - SQL
    " WHERE at < :older_than ORDER BY at LIMIT :limit)"
)

# statuses as parameters of the statements above
STARTED_STATUSES = {"running": JobStatus.RUNNING, "succeeded": JobStatus.SUCCEEDED}
REFRESH_STATUSES = {
    "succeeded": JobStatus.SUCCEEDED,
    "dead": JobStatus.DEAD,
    "unmatched": DeliveryStatus.UNMATCHED,
    "all_succeeded": DeliveryStatus.SUCCEEDED,
    "failed": DeliveryStatus.FAILED,
    "dispatched": DeliveryStatus.DISPATCHED,
}
PRUNABLE = {"succeeded": DeliveryStatus.SUCCEEDED, "unmatched": DeliveryStatus.UNMATCHED}
PRUNABLE_FAILED_STATUS = {"failed": DeliveryStatus.FAILED}


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _fields(record: Any, *names: str) -> dict[str, Any]:
    """Parameters named like the record's fields, with their values."""
    return {name: getattr(record, name) for name in names}


def delivery_params(d: DeliveryRecord) -> dict[str, Any]:
    params = _fields(
        d, "source", "id", "type", "subject", "time", "received_at", "status", "jobs_total", "body"
    )
    params.update(attributes=_json(d.attributes), headers=_json(d.headers))
    return params


def job_params(j: JobRecord) -> dict[str, Any]:
    return _fields(j, "id", "source", "delivery_id", "applet", "status", "created_at", "updated_at")


def started_params(job_id: str, attempt: int, at: float) -> dict[str, Any]:
    return {"job_id": job_id, "attempt": attempt, "at": at, **STARTED_STATUSES}


def finished_params(u: JobUpdate) -> tuple[dict[str, Any], dict[str, Any]]:
    """The parameters of UPSERT_ATTEMPT and of FINISH_JOB for a finished attempt."""
    a = u.attempt
    attempt = {
        "job_id": a.job_id,
        "number": a.number,
        "started_at": a.started_at,
        "finished_at": a.finished_at,
        "outcome": a.outcome,
        "error_type": a.error_type,
        "error_message": a.error_message,
        "logs": _json(a.logs) if a.logs else None,
    }
    job = {
        "job_id": u.job_id,
        "status": u.status,
        "number": a.number,
        "finished_at": a.finished_at,
        "next_attempt_at": u.next_attempt_at,
        "result": _json(u.result) if u.status == JobStatus.SUCCEEDED else None,
        "error_type": a.error_type,
        "error_message": a.error_message,
    }
    return attempt, job


def bury_params(u: JobUpdate, job: Row) -> dict[str, Any]:
    """BURY_JOB's parameters for a dead job (``job`` is its SELECT_JOB row)."""
    a = u.attempt
    return {
        "job_id": u.job_id,
        "source": job["source"],
        "delivery_id": job["delivery_id"],
        "applet": job["applet"],
        "reason": u.dead_reason or a.error_message or "dead",
        "dead_at": a.finished_at,
    }


def refresh_params(source: str, delivery_id: str) -> dict[str, Any]:
    return {"source": source, "delivery_id": delivery_id, **REFRESH_STATUSES}


def secret_params(r: SecretRecord) -> dict[str, Any]:
    return _fields(r, "name", "scope", "ciphertext", "created_at", "updated_at", "key_id")


def secret_read_params(r: SecretReadRecord) -> dict[str, Any]:
    return _fields(r, "id", "at", "reader", "name", "backend", "outcome", "scope", "count")


def lease_params(name: str, holder: str, ttl: float, now: float) -> dict[str, Any]:
    return {"name": name, "holder": holder, "expires_at": now + ttl, "now": now}


def settled_jobs(job_ids: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """The statement and parameters that select which of ``job_ids`` exist and are no longer
    queued (running, retrying or finished: their message exists or is spent)."""
    params: dict[str, Any] = {f"j{i}": job_id for i, job_id in enumerate(job_ids)}
    marks = ", ".join(f":{name}" for name in params)
    params["queued"] = JobStatus.QUEUED
    # only generated placeholder names go into the text; the ids are bound parameters
    return f"SELECT id FROM jobs WHERE status != :queued AND id IN ({marks})", params  # noqa: S608


def added_to(
    deliveries: Sequence[DeliveryRecord], jobs: Sequence[JobRecord]
) -> set[tuple[str, str]]:
    """The older deliveries that ``jobs`` add to (a replay), whose counters need a refresh."""
    return {(j.source, j.delivery_id) for j in jobs} - {(d.source, d.id) for d in deliveries}


# -- queries ---------------------------------------------------------------------------------
def _where_given(query: Select[Any], *filters: tuple[Any, str | None]) -> Select[Any]:
    """``query`` narrowed to ``column == value`` for each filter whose value was given."""
    for column, value in filters:
        if value:
            query = query.where(column == value)
    return query


def deliveries_query(
    source: str | None, status: DeliveryStatus | None, type_prefix: str | None, limit: int
) -> Select[Any]:
    d = t.deliveries
    q = _where_given(
        select(d).order_by(d.c.received_at.desc()).limit(limit),
        (d.c.source, source),
        (d.c.status, status),
    )
    if type_prefix:
        q = q.where(d.c.type.startswith(type_prefix, autoescape=True))
    return q


def delivery_query(delivery_id: str, source: str | None) -> Select[Any]:
    """At most two rows: two mean the id is ambiguous (used in several sources)."""
    d = t.deliveries
    return _where_given(select(d).where(d.c.id == delivery_id), (d.c.source, source)).limit(2)


def bodies_query(keys: Sequence[tuple[str, str]]) -> Select[Any]:
    d = t.deliveries
    return select(d.c.source, d.c.id, d.c.body).where(tuple_(d.c.source, d.c.id).in_(keys))


def jobs_query(
    delivery_id: str | None, applet: str | None, status: JobStatus | None, limit: int
) -> Select[Any]:
    j = t.jobs
    return _where_given(
        select(j).order_by(j.c.updated_at.desc()).limit(limit),
        (j.c.delivery_id, delivery_id),
        (j.c.applet, applet),
        (j.c.status, status),
    )


def job_query(job_id: str) -> Select[Any]:
    return select(t.jobs).where(t.jobs.c.id == job_id)


def attempts_query(job_id: str) -> Select[Any]:
    a = t.attempts
    return select(a).where(a.c.job_id == job_id).order_by(a.c.number)


DEAD_LETTER_COUNT = select(func.count().label("count")).select_from(t.dead_letters)
SECRETS = select(t.secrets).order_by(t.secrets.c.name)


def secret_query(name: str) -> Select[Any]:
    return select(t.secrets).where(t.secrets.c.name == name)


def secret_reads_query(name: str | None, since: float | None, limit: int) -> Select[Any]:
    """Audit lines, newest first: of the secret ``name``, at or after ``since``."""
    r = t.secret_reads
    q = _where_given(select(r), (r.c.name, name))
    if since is not None:
        q = q.where(r.c.at >= since)
    return q.order_by(r.c.at.desc(), r.c.id.desc()).limit(limit)


def token_query(key: str) -> Select[Any]:
    c = t.connector_tokens.c
    return select(c.ciphertext, c.expires_at).where(c.key == key)


# -- rows to records -------------------------------------------------------------------------
R = TypeVar("R")


def _loads_or(empty: Any) -> Callable[[Any], Any]:
    return lambda text: orjson.loads(text) if text else empty


def _record(cls: type[R], m: Row, **convert: Callable[[Any], Any]) -> R:
    """A record from a row whose columns are named like its fields; ``convert`` turns a column's
    stored value into the field's (statuses to enums, JSON text to values...)."""
    same: Callable[[Any], Any] = lambda value: value  # noqa: E731
    return cls(**{f.name: convert.get(f.name, same)(m[f.name]) for f in fields(cls)})  # type: ignore[arg-type]


def delivery_of(m: Row) -> DeliveryRecord:
    return _record(
        DeliveryRecord,
        m,
        status=DeliveryStatus,
        attributes=orjson.loads,
        headers=orjson.loads,
        body=bytes,
    )


def job_of(m: Row) -> JobRecord:
    return _record(JobRecord, m, status=JobStatus, result=_loads_or(None))


def attempt_of(m: Row) -> AttemptRecord:
    return _record(AttemptRecord, m, outcome=AttemptOutcome, logs=_loads_or([]))


def secret_of(m: Row) -> SecretRecord:
    return _record(SecretRecord, m, ciphertext=bytes)


def secret_read_of(m: Row) -> SecretReadRecord:
    return _record(SecretReadRecord, m, outcome=ReadOutcome)
