"""The embedded history and secret stores on the SQLite database (SQLAlchemy Core).

The hot write paths (dispatch, job start and finish) run as plain SQL on the DB-API cursor inside
the database's group-committed writer; queries use SQLAlchemy Core.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Select, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Row

from ghapplets.exceptions import NotFound, StoreUnavailable
from ghapplets.store import schema as t
from ghapplets.store.base import HistoryStore, SecretStore
from ghapplets.store.database import Database
from ghapplets.store.records import (
    AttemptOutcome,
    AttemptRecord,
    DeliveryRecord,
    DeliveryStatus,
    JobRecord,
    JobStatus,
    JobUpdate,
    SecretRecord,
)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _delivery(row: Row[Any]) -> DeliveryRecord:
    m = row._mapping
    return DeliveryRecord(
        source=m["source"],
        id=m["id"],
        type=m["type"],
        subject=m["subject"],
        time=m["time"],
        received_at=m["received_at"],
        status=DeliveryStatus(m["status"]),
        attributes=orjson.loads(m["attributes"]),
        headers=orjson.loads(m["headers"]),
        body=m["body"],
        jobs_total=m["jobs_total"],
        jobs_succeeded=m["jobs_succeeded"],
        jobs_dead=m["jobs_dead"],
    )


def _job(row: Row[Any]) -> JobRecord:
    m = row._mapping
    return JobRecord(
        id=m["id"],
        source=m["source"],
        delivery_id=m["delivery_id"],
        applet=m["applet"],
        status=JobStatus(m["status"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        attempts=m["attempts"],
        next_attempt_at=m["next_attempt_at"],
        result=orjson.loads(m["result"]) if m["result"] is not None else None,
        error_type=m["error_type"],
        error_message=m["error_message"],
    )


_REFRESH_COUNTS = (
    "UPDATE deliveries SET (jobs_total, jobs_succeeded, jobs_dead) = ("
    " SELECT count(*), coalesce(sum(status = ?3), 0), coalesce(sum(status = ?4), 0)"
    " FROM jobs WHERE source = ?1 AND delivery_id = ?2) WHERE source = ?1 AND id = ?2"
)
_REFRESH_STATUS = (
    "UPDATE deliveries SET status = CASE"
    " WHEN jobs_total = 0 THEN ?3"
    " WHEN jobs_succeeded = jobs_total THEN ?4"
    " WHEN jobs_succeeded + jobs_dead = jobs_total THEN ?5"
    " ELSE ?6 END WHERE source = ?1 AND id = ?2"
)
_INSERT_DELIVERY = (
    "INSERT OR IGNORE INTO deliveries (source, id, type, subject, time, received_at, status,"
    " jobs_total, jobs_succeeded, jobs_dead, attributes, headers, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, ?, ?)"
)
_INSERT_JOB = (
    "INSERT OR IGNORE INTO jobs (id, source, delivery_id, applet, status, attempts, created_at,"
    " updated_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?)"
)
_JOB_STARTED = (
    "UPDATE jobs SET status = ?, attempts = ?, updated_at = ?"
    " WHERE id = ? AND status != ? AND attempts < ?"
)
_INSERT_ATTEMPT = (
    "INSERT OR REPLACE INTO attempts (job_id, number, started_at, finished_at, outcome,"
    " error_type, error_message, logs) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_FINISH_JOB = (
    "UPDATE jobs SET status = ?, attempts = ?, updated_at = ?, next_attempt_at = ?, result = ?,"
    " error_type = ?, error_message = ? WHERE id = ?"
)
_BURY_JOB = (
    "INSERT OR REPLACE INTO dead_letters (job_id, source, delivery_id, applet, reason, dead_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


def _where_given(query: Select[Any], *filters: tuple[Any, str | None]) -> Select[Any]:
    """``query`` narrowed to ``column == value`` for each filter whose value was given."""
    for column, value in filters:
        if value:
            query = query.where(column == value)
    return query


def _cursor(conn: Connection) -> Any:
    """The DB-API cursor: the hot write paths skip SQLAlchemy's statement machinery."""
    return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]


def _refresh_delivery(conn: Connection, source: str, delivery_id: str) -> None:
    """Recompute a delivery's counters and status from its jobs."""
    cur = _cursor(conn)
    cur.execute(_REFRESH_COUNTS, (source, delivery_id, JobStatus.SUCCEEDED, JobStatus.DEAD))
    cur.execute(
        _REFRESH_STATUS,
        (
            source,
            delivery_id,
            DeliveryStatus.UNMATCHED,
            DeliveryStatus.SUCCEEDED,
            DeliveryStatus.FAILED,
            DeliveryStatus.DISPATCHED,
        ),
    )


class SqliteHistoryStore(HistoryStore):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def ping(self) -> None:
        try:
            await self.db.read(lambda c: c.exec_driver_sql("SELECT 1").scalar())
        except StoreUnavailable:
            raise
        except Exception as exc:
            raise StoreUnavailable(f"the database does not answer: {exc}") from exc

    async def record_dispatch(
        self, deliveries: list[DeliveryRecord], jobs: list[JobRecord]
    ) -> None:
        drows = [
            (
                d.source,
                d.id,
                d.type,
                d.subject,
                d.time,
                d.received_at,
                d.status,
                d.jobs_total,
                _json(d.attributes),
                _json(d.headers),
                d.body,
            )
            for d in deliveries
        ]
        jrows = [
            (j.id, j.source, j.delivery_id, j.applet, j.status, j.created_at, j.updated_at)
            for j in jobs
        ]
        fresh = {(d.source, d.id) for d in deliveries}
        added_to = {(j.source, j.delivery_id) for j in jobs} - fresh

        def op(conn: Connection) -> None:
            cur = _cursor(conn)
            if drows:
                cur.executemany(_INSERT_DELIVERY, drows)
            if jrows:
                cur.executemany(_INSERT_JOB, jrows)
            for source, delivery_id in added_to:  # jobs added to an older delivery (replay)
                _refresh_delivery(conn, source, delivery_id)

        await self.db.write(op)

    async def job_started(self, job_id: str, attempt: int, at: float) -> None:
        await self.db.write(
            lambda conn: _cursor(conn).execute(
                _JOB_STARTED, (JobStatus.RUNNING, attempt, at, job_id, JobStatus.SUCCEEDED, attempt)
            )
        )

    async def job_finished(self, u: JobUpdate) -> None:
        a = u.attempt
        logs = _json(a.logs) if a.logs else None
        result = _json(u.result) if u.status == JobStatus.SUCCEEDED else None

        def op(conn: Connection) -> None:
            cur = _cursor(conn)
            row = cur.execute(
                "SELECT source, delivery_id, applet, status FROM jobs WHERE id = ?", (u.job_id,)
            ).fetchone()
            if row is None:
                return
            source, delivery_id, applet, status = row
            if status == JobStatus.SUCCEEDED:  # done already (a redelivery after a crash)
                return
            cur.execute(
                _INSERT_ATTEMPT,
                (
                    a.job_id,
                    a.number,
                    a.started_at,
                    a.finished_at,
                    a.outcome,
                    a.error_type,
                    a.error_message,
                    logs,
                ),
            )
            cur.execute(
                _FINISH_JOB,
                (
                    u.status,
                    a.number,
                    a.finished_at,
                    u.next_attempt_at,
                    result,
                    a.error_type,
                    a.error_message,
                    u.job_id,
                ),
            )
            if u.status == JobStatus.DEAD:
                reason = u.dead_reason or a.error_message or "dead"
                cur.execute(
                    _BURY_JOB, (u.job_id, source, delivery_id, applet, reason, a.finished_at)
                )
            if u.status.final:
                _refresh_delivery(conn, source, delivery_id)

        await self.db.write(op)

    async def requeue_job(self, job_id: str) -> JobRecord:
        j = t.jobs

        def op(conn: Connection) -> JobRecord:
            row = conn.execute(select(j).where(j.c.id == job_id)).first()
            if row is None:
                raise NotFound(f"no job {job_id!r}")
            conn.execute(
                update(j)
                .where(j.c.id == job_id)
                .values(
                    status=JobStatus.QUEUED,
                    next_attempt_at=None,
                    error_type=None,
                    error_message=None,
                )
            )
            conn.execute(delete(t.dead_letters).where(t.dead_letters.c.job_id == job_id))
            job = _job(row)
            _refresh_delivery(conn, job.source, job.delivery_id)
            job.status = JobStatus.QUEUED
            return job

        return await self.db.write(op)

    async def list_deliveries(
        self,
        *,
        source: str | None = None,
        status: DeliveryStatus | None = None,
        type_prefix: str | None = None,
        limit: int = 50,
    ) -> list[DeliveryRecord]:
        d = t.deliveries
        q = _where_given(
            select(d).order_by(d.c.received_at.desc()).limit(limit),
            (d.c.source, source),
            (d.c.status, status),
        )
        if type_prefix:
            q = q.where(d.c.type.startswith(type_prefix, autoescape=True))
        return await self.db.read(lambda c: [_delivery(r) for r in c.execute(q)])

    async def get_delivery(self, delivery_id: str, source: str | None = None) -> DeliveryRecord:
        d = t.deliveries
        q = select(d).where(d.c.id == delivery_id)
        if source:
            q = q.where(d.c.source == source)
        rows = await self.db.read(lambda c: [_delivery(r) for r in c.execute(q.limit(2))])
        if not rows:
            raise NotFound(f"no delivery {delivery_id!r}")
        if len(rows) > 1:
            raise NotFound(f"delivery id {delivery_id!r} exists in several sources; name one")
        return rows[0]

    async def list_jobs(
        self,
        *,
        delivery_id: str | None = None,
        applet: str | None = None,
        status: JobStatus | None = None,
        limit: int = 50,
    ) -> list[JobRecord]:
        j = t.jobs
        q = _where_given(
            select(j).order_by(j.c.updated_at.desc()).limit(limit),
            (j.c.delivery_id, delivery_id),
            (j.c.applet, applet),
            (j.c.status, status),
        )
        return await self.db.read(lambda c: [_job(r) for r in c.execute(q)])

    async def get_job(self, job_id: str) -> JobRecord:
        q = select(t.jobs).where(t.jobs.c.id == job_id)
        rows = await self.db.read(lambda c: [_job(r) for r in c.execute(q)])
        if not rows:
            raise NotFound(f"no job {job_id!r}")
        return rows[0]

    async def list_attempts(self, job_id: str) -> list[AttemptRecord]:
        a = t.attempts
        q = select(a).where(a.c.job_id == job_id).order_by(a.c.number)

        def read(c: Connection) -> list[AttemptRecord]:
            out = []
            for r in c.execute(q):
                m = r._mapping
                out.append(
                    AttemptRecord(
                        job_id=m["job_id"],
                        number=m["number"],
                        started_at=m["started_at"],
                        finished_at=m["finished_at"],
                        outcome=AttemptOutcome(m["outcome"]),
                        error_type=m["error_type"],
                        error_message=m["error_message"],
                        logs=orjson.loads(m["logs"]) if m["logs"] else [],
                    )
                )
            return out

        return await self.db.read(read)

    async def dead_letter_count(self) -> int:
        q = select(func.count()).select_from(t.dead_letters)
        return int(await self.db.read(lambda c: c.execute(q).scalar_one()))

    # -- housekeeping ------------------------------------------------------------------------
    async def prune(self, older_than: float) -> int:
        def op(conn: Connection) -> int:
            d, j = t.deliveries, t.jobs
            done = select(d.c.source, d.c.id).where(
                d.c.received_at < older_than,
                d.c.status.in_((DeliveryStatus.SUCCEEDED, DeliveryStatus.UNMATCHED)),
            )
            old = [(r[0], r[1]) for r in conn.execute(done)]
            for source, delivery_id in old:
                ids = select(j.c.id).where(j.c.source == source, j.c.delivery_id == delivery_id)
                conn.execute(delete(t.attempts).where(t.attempts.c.job_id.in_(ids)))
                conn.execute(delete(j).where(j.c.source == source, j.c.delivery_id == delivery_id))
                conn.execute(delete(d).where(d.c.source == source, d.c.id == delivery_id))
            conn.exec_driver_sql(
                "DELETE FROM broker_messages WHERE state != 0 AND created_at < ?", (older_than,)
            )
            return len(old)

        return await self.db.write(op)


class SqliteSecretStore(SecretStore):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def put_secret(self, record: SecretRecord) -> None:
        s = t.secrets

        def op(conn: Connection) -> None:
            existing = conn.execute(select(s.c.created_at).where(s.c.name == record.name)).first()
            created = existing[0] if existing else record.created_at
            conn.execute(
                insert(s).prefix_with("OR REPLACE"),
                {
                    "name": record.name,
                    "scope": record.scope,
                    "ciphertext": record.ciphertext,
                    "created_at": created,
                    "updated_at": record.updated_at,
                },
            )

        await self.db.write(op)

    async def get_secret(self, name: str) -> SecretRecord:
        s = t.secrets
        row = await self.db.read(lambda c: c.execute(select(s).where(s.c.name == name)).first())
        if row is None:
            raise NotFound(f"no secret named {name!r}")
        return SecretRecord(**row._mapping)

    async def list_secrets(self) -> list[SecretRecord]:
        s = t.secrets
        rows = await self.db.read(lambda c: list(c.execute(select(s).order_by(s.c.name))))
        return [SecretRecord(**r._mapping) for r in rows]

    async def delete_secret(self, name: str) -> bool:
        s = t.secrets
        return bool(
            await self.db.write(lambda c: c.execute(delete(s).where(s.c.name == name)).rowcount)
        )
