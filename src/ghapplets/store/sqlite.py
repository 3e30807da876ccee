"""The embedded store on the SQLite database, written with SQLAlchemy Core."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Row

from ghapplets.store import schema as t
from ghapplets.store.base import (
    JOB_DEAD,
    JOB_QUEUED,
    JOB_RUNNING,
    JOB_SUCCEEDED,
    AttemptRecord,
    DeliveryRecord,
    JobRecord,
    JobUpdate,
    SecretRecord,
    Store,
)
from ghapplets.store.database import Database


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
        status=m["status"],
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
        status=m["status"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        attempts=m["attempts"],
        next_attempt_at=m["next_attempt_at"],
        result=orjson.loads(m["result"]) if m["result"] is not None else None,
        error_type=m["error_type"],
        error_message=m["error_message"],
    )


def _refresh_delivery(conn: Connection, source: str, delivery_id: str) -> None:
    """Recompute a delivery's counters and status from its jobs."""
    j = t.jobs
    where = and_(j.c.source == source, j.c.delivery_id == delivery_id)
    total = select(func.count()).where(where).scalar_subquery()
    ok = select(func.count()).where(where, j.c.status == JOB_SUCCEEDED).scalar_subquery()
    dead = select(func.count()).where(where, j.c.status == JOB_DEAD).scalar_subquery()
    d = t.deliveries
    conn.execute(
        update(d)
        .where(d.c.source == source, d.c.id == delivery_id)
        .values(jobs_total=total, jobs_succeeded=ok, jobs_dead=dead)
    )
    row = conn.execute(
        select(d.c.jobs_total, d.c.jobs_succeeded, d.c.jobs_dead).where(
            d.c.source == source, d.c.id == delivery_id
        )
    ).first()
    if row is None:
        return
    total, succeeded, dead_n = row
    if total == 0:
        status = "unmatched"
    elif succeeded == total:
        status = "succeeded"
    elif succeeded + dead_n == total:
        status = "failed"
    else:
        status = "dispatched"
    conn.execute(update(d).where(d.c.source == source, d.c.id == delivery_id).values(status=status))


class SqliteStore(Store):
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- deliveries & jobs -----------------------------------------------------------------
    async def record_dispatch(
        self, deliveries: list[DeliveryRecord], jobs: list[JobRecord]
    ) -> None:
        drows = [
            {
                "source": d.source,
                "id": d.id,
                "type": d.type,
                "subject": d.subject,
                "time": d.time,
                "received_at": d.received_at,
                "status": d.status,
                "jobs_total": d.jobs_total,
                "jobs_succeeded": 0,
                "jobs_dead": 0,
                "attributes": _json(d.attributes),
                "headers": _json(d.headers),
                "body": d.body,
            }
            for d in deliveries
        ]
        jrows = [
            {
                "id": j.id,
                "source": j.source,
                "delivery_id": j.delivery_id,
                "applet": j.applet,
                "status": j.status,
                "attempts": 0,
                "created_at": j.created_at,
                "updated_at": j.updated_at,
            }
            for j in jobs
        ]

        fresh = {(d.source, d.id) for d in deliveries}
        added_to = {(j.source, j.delivery_id) for j in jobs} - fresh

        def op(conn: Connection) -> None:
            if drows:
                conn.execute(insert(t.deliveries).prefix_with("OR IGNORE"), drows)
            if jrows:
                conn.execute(insert(t.jobs).prefix_with("OR IGNORE"), jrows)
            for source, delivery_id in added_to:  # jobs added to an older delivery (replay)
                _refresh_delivery(conn, source, delivery_id)

        await self.db.write(op)

    async def job_started(self, job_id: str, attempt: int, at: float) -> None:
        j = t.jobs

        def op(conn: Connection) -> None:
            conn.execute(
                update(j)
                .where(j.c.id == job_id, j.c.status != JOB_SUCCEEDED, j.c.attempts < attempt)
                .values(status=JOB_RUNNING, attempts=attempt, updated_at=at)
            )

        await self.db.write(op)

    async def job_finished(self, u: JobUpdate) -> None:
        j = t.jobs
        a = u.attempt

        def op(conn: Connection) -> None:
            row = conn.execute(
                select(j.c.source, j.c.delivery_id, j.c.applet, j.c.status).where(
                    j.c.id == u.job_id
                )
            ).first()
            if row is None:
                return
            source, delivery_id, applet, status = row
            if status == JOB_SUCCEEDED:  # done already (a redelivery after a crash)
                return
            conn.execute(
                insert(t.attempts).prefix_with("OR REPLACE"),
                {
                    "job_id": a.job_id,
                    "number": a.number,
                    "started_at": a.started_at,
                    "finished_at": a.finished_at,
                    "outcome": a.outcome,
                    "error_type": a.error_type,
                    "error_message": a.error_message,
                    "logs": _json(a.logs) if a.logs else None,
                },
            )
            conn.execute(
                update(j)
                .where(j.c.id == u.job_id)
                .values(
                    status=u.status,
                    attempts=a.number,
                    updated_at=a.finished_at,
                    next_attempt_at=u.next_attempt_at,
                    result=_json(u.result) if u.status == JOB_SUCCEEDED else None,
                    error_type=a.error_type,
                    error_message=a.error_message,
                )
            )
            if u.status == JOB_DEAD:
                conn.execute(
                    insert(t.dead_letters).prefix_with("OR REPLACE"),
                    {
                        "job_id": u.job_id,
                        "source": source,
                        "delivery_id": delivery_id,
                        "applet": applet,
                        "reason": u.dead_reason or a.error_message or "dead",
                        "dead_at": a.finished_at,
                    },
                )
            if u.status in (JOB_SUCCEEDED, JOB_DEAD):
                _refresh_delivery(conn, source, delivery_id)

        await self.db.write(op)

    async def requeue_job(self, job_id: str) -> JobRecord:
        j = t.jobs

        def op(conn: Connection) -> JobRecord:
            row = conn.execute(select(j).where(j.c.id == job_id)).first()
            if row is None:
                raise KeyError(f"no job {job_id!r}")
            conn.execute(
                update(j)
                .where(j.c.id == job_id)
                .values(
                    status=JOB_QUEUED, next_attempt_at=None, error_type=None, error_message=None
                )
            )
            conn.execute(delete(t.dead_letters).where(t.dead_letters.c.job_id == job_id))
            job = _job(row)
            _refresh_delivery(conn, job.source, job.delivery_id)
            job.status = JOB_QUEUED
            return job

        return await self.db.write(op)

    async def list_deliveries(
        self,
        *,
        source: str | None = None,
        status: str | None = None,
        type_prefix: str | None = None,
        limit: int = 50,
    ) -> list[DeliveryRecord]:
        d = t.deliveries
        q = select(d).order_by(d.c.received_at.desc()).limit(limit)
        if source:
            q = q.where(d.c.source == source)
        if status:
            q = q.where(d.c.status == status)
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
            raise KeyError(f"no delivery {delivery_id!r}")
        if len(rows) > 1:
            raise KeyError(f"delivery id {delivery_id!r} exists in several sources; name one")
        return rows[0]

    async def list_jobs(
        self,
        *,
        delivery_id: str | None = None,
        applet: str | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> list[JobRecord]:
        j = t.jobs
        q = select(j).order_by(j.c.updated_at.desc()).limit(limit)
        if delivery_id:
            q = q.where(j.c.delivery_id == delivery_id)
        if applet:
            q = q.where(j.c.applet == applet)
        if status:
            q = q.where(j.c.status == status)
        return await self.db.read(lambda c: [_job(r) for r in c.execute(q)])

    async def get_job(self, job_id: str) -> JobRecord:
        q = select(t.jobs).where(t.jobs.c.id == job_id)
        rows = await self.db.read(lambda c: [_job(r) for r in c.execute(q)])
        if not rows:
            raise KeyError(f"no job {job_id!r}")
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
                        outcome=m["outcome"],
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

    # -- secrets -----------------------------------------------------------------------------
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
            raise KeyError(f"no secret named {name!r}")
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

    # -- housekeeping ------------------------------------------------------------------------
    async def prune(self, older_than: float) -> int:
        def op(conn: Connection) -> int:
            d, j = t.deliveries, t.jobs
            done = select(d.c.source, d.c.id).where(
                d.c.received_at < older_than, d.c.status.in_(("succeeded", "unmatched"))
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
