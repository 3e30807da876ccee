""":class:`~ghapplets.store.base.AdminStore` on any relational backend: the admin API's pages,
its tokens and its audit log.

Writes are :mod:`ghapplets.store.relational` generators of plain SQL (both dialects); pages are
the Core queries of :mod:`ghapplets.store.listing`. A token's name is unique among the tokens
not revoked: creating one over a revoked token of that name replaces it (the audit log keeps the
history), over a live one raises :class:`~ghapplets.exceptions.AlreadyExists`.

Dashboard sessions are kept here too: a row per signed-in browser, found by the hash of its
cookie's secret, pruned once expired.
"""

from __future__ import annotations

from typing import Any

import orjson

from ghapplets.exceptions import AlreadyExists, NotFound
from ghapplets.store import listing, sql
from ghapplets.store import schema as t
from ghapplets.store.base import AdminStore
from ghapplets.store.records import (
    ACTOR_MAX,
    RUN_ID_MAX,
    TARGET_MAX,
    TOKEN_NAME_MAX,
    ApiTokenRecord,
    AttemptTime,
    AuditOutcome,
    AuditRecord,
    DeadLetterRecord,
    DeliveryRecord,
    JobRecord,
    ListenerRecord,
    Role,
    RunRecord,
    SessionRecord,
)
from ghapplets.store.relational import Relational, Step, Write

AUDIT_PRUNE_CHUNK = 2000  # audit lines deleted per transaction
# the subject search on PostgreSQL, and the applet filter, look among this many newest
# deliveries first (listing.deliveries_page)
SEARCH_SCAN = 20_000

INSERT_TOKEN = (
    "INSERT INTO api_tokens (id, name, role, hash, created_at, last_used_at, revoked_at)"  # noqa: S105
    " VALUES (:id, :name, :role, :hash, :created_at, NULL, NULL) ON CONFLICT DO NOTHING"
)
DROP_REVOKED_TOKEN = "DELETE FROM api_tokens WHERE name = :name AND revoked_at IS NOT NULL"  # noqa: S105 - SQL
REVOKE_TOKEN = "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, :at) WHERE name = :name"  # noqa: S105
TOUCH_TOKEN = (
    "UPDATE api_tokens SET last_used_at = :at"  # noqa: S105 - SQL, not a secret
    " WHERE id = :id AND (last_used_at IS NULL OR last_used_at < :at)"
)
INSERT_AUDIT = (
    "INSERT INTO audit_log (id, at, actor, action, target, outcome, detail)"
    " VALUES (:id, :at, :actor, :action, :target, :outcome, :detail) ON CONFLICT (id) DO NOTHING"
)
INSERT_SESSION = (
    "INSERT INTO admin_sessions (id, token_id, name, role, csrf, created_at, expires_at)"
    " VALUES (:id, :token_id, :name, :role, :csrf, :created_at, :expires_at)"
    " ON CONFLICT (id) DO NOTHING"
)
DELETE_SESSION = "DELETE FROM admin_sessions WHERE id = :id"
PRUNE_SESSIONS = "DELETE FROM admin_sessions WHERE expires_at <= :now"
PRUNE_AUDIT = (
    "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log"
    " WHERE at < :older_than ORDER BY at LIMIT :limit)"
)


def create_api_token(params: dict[str, Any]) -> Write[None]:
    yield Step("execute", DROP_REVOKED_TOKEN, {"name": params["name"]})
    added = yield Step("execute", INSERT_TOKEN, params)
    if not added:
        raise AlreadyExists(f"a token named {params['name']!r} exists (revoke it first)")


def revoke_api_token(name: str, at: float) -> Write[None]:
    changed = yield Step("execute", REVOKE_TOKEN, {"name": name, "at": at})
    if not changed:
        raise NotFound(f"no token named {name!r}")


def touch_api_token(token_id: str, at: float) -> Write[None]:
    yield Step("execute", TOUCH_TOKEN, {"id": token_id, "at": at})


def record_audit(params: dict[str, Any]) -> Write[None]:
    yield Step("execute", INSERT_AUDIT, params)


def prune_audit(older_than: float, limit: int) -> Write[int]:
    count = yield Step("execute", PRUNE_AUDIT, {"older_than": older_than, "limit": limit})
    return int(count)


def create_session(params: dict[str, Any]) -> Write[None]:
    added = yield Step("execute", INSERT_SESSION, params)
    if not added:
        raise AlreadyExists("a session of that id exists")


def delete_session(session_id: str) -> Write[bool]:
    count = yield Step("execute", DELETE_SESSION, {"id": session_id})
    return bool(count)


def prune_sessions(now: float) -> Write[int]:
    count = yield Step("execute", PRUNE_SESSIONS, {"now": now})
    return int(count)


def session_of(m: sql.Row) -> SessionRecord:
    return SessionRecord(
        id=m["id"],
        token_id=m["token_id"],
        name=m["name"],
        role=Role(m["role"]),
        csrf=m["csrf"],
        created_at=m["created_at"],
        expires_at=m["expires_at"],
    )


def token_of(m: sql.Row) -> ApiTokenRecord:
    return ApiTokenRecord(
        id=m["id"],
        name=m["name"],
        role=Role(m["role"]),
        hash=m["hash"],
        created_at=m["created_at"],
        last_used_at=m["last_used_at"],
        revoked_at=m["revoked_at"],
    )


def audit_of(m: sql.Row) -> AuditRecord:
    detail = m["detail"]
    return AuditRecord(
        id=m["id"],
        at=m["at"],
        actor=m["actor"],
        action=m["action"],
        target=m["target"],
        outcome=AuditOutcome(m["outcome"]),
        detail=orjson.loads(detail) if detail else None,
    )


def audit_params(r: AuditRecord) -> dict[str, Any]:
    return {
        "id": sql.checked_text("an audit line's id", r.id, 32),
        "at": sql.epoch("an audit line's time", r.at),
        "actor": sql.checked_text("an audit line's actor", r.actor[:ACTOR_MAX]),
        "action": sql.checked_text("an audit line's action", r.action, 64),
        "target": sql.checked_text("an audit line's target", r.target[:TARGET_MAX] or "-"),
        "outcome": AuditOutcome(r.outcome),
        "detail": None if r.detail is None else sql.stored_json("an audit detail", r.detail),
    }


class SqlAdminStore(Relational, AdminStore):
    """:class:`AdminStore` on any :class:`Relational` backend."""

    async def page_deliveries(
        self, f: listing.DeliveryFilter, after: listing.DeliveryKey | None, limit: int
    ) -> list[DeliveryRecord]:
        rows: list[sql.Row] = []
        # SQLite's subject search scans a covering index anyway: the newest first only helps
        # PostgreSQL's; an applet's, on both (see listing.deliveries_page)
        if (f.q and self.dialect == "postgresql") or f.applet is not None:
            scan = listing.deliveries_page(f, after, limit, dialect=self.dialect, scan=SEARCH_SCAN)
            rows = await self._query(scan)
        if len(rows) < limit:  # not a full page among the newest: the whole window
            rows = await self._query(listing.deliveries_page(f, after, limit, dialect=self.dialect))
        return [sql.delivery_of({**dict(r), "body": b"", "headers": "{}"}) for r in rows]

    async def page_jobs(
        self, f: listing.JobFilter, after: listing.JobKey | None, limit: int
    ) -> list[JobRecord]:
        return [sql.job_of(r) for r in await self._query(listing.jobs_page(f, after, limit))]

    async def attempt_times(self, since: float, limit: int) -> list[AttemptTime]:
        rows = await self._query(listing.attempt_times(since, limit))
        return [AttemptTime(r["applet"], r["finished_at"], max(0.0, r["seconds"])) for r in rows]

    async def page_dead_letters(
        self, f: listing.DeadLetterFilter, after: listing.DeadLetterKey | None, limit: int
    ) -> list[DeadLetterRecord]:
        rows = await self._query(listing.dead_letters_page(f, after, limit))
        return [DeadLetterRecord(**dict(r)) for r in rows]

    async def dead_letter(self, job_id: str) -> DeadLetterRecord | None:
        rows = await self._query(listing.dead_letter(job_id))
        return DeadLetterRecord(**dict(rows[0])) if rows else None

    async def page_runs(
        self, f: listing.RunFilter, after: listing.RunKey | None, limit: int
    ) -> list[RunRecord]:
        rows = await self._query(listing.runs_page(f, after, limit))
        return [sql.run_of({**dict(r), "definition": "{}"}) for r in rows]

    async def delivery_jobs(self, source: str, delivery_id: str, limit: int) -> list[JobRecord]:
        rows = await self._query(listing.delivery_jobs(source, delivery_id, limit))
        return [sql.job_of(r) for r in rows]

    async def run_listeners(self, run_id: str) -> list[ListenerRecord]:
        if not sql.storable(run_id, RUN_ID_MAX):
            return []
        return [sql.listener_of(r) for r in await self._query(listing.run_listeners(run_id))]

    async def create_api_token(self, record: ApiTokenRecord) -> None:
        params = {
            "id": sql.checked_text("a token's id", record.id, 32),
            "name": sql.checked_text("a token's name", record.name, TOKEN_NAME_MAX),
            "role": Role(record.role),
            "hash": sql.checked_text("a token's hash", record.hash, 64),
            "created_at": sql.epoch("a token's created_at", record.created_at),
        }
        await self._write(create_api_token, params)

    async def api_token(self, token_id: str) -> ApiTokenRecord:
        rows = []
        if sql.storable(token_id, 32):
            rows = await self._query(t.api_tokens.select().where(t.api_tokens.c.id == token_id))
        if not rows:
            raise NotFound(f"no token of id {token_id!r}")
        return token_of(rows[0])

    async def api_tokens(self) -> list[ApiTokenRecord]:
        rows = await self._query(t.api_tokens.select().order_by(t.api_tokens.c.name))
        return [token_of(r) for r in rows]

    async def revoke_api_token(self, name: str, at: float) -> ApiTokenRecord:
        if not sql.storable(name, TOKEN_NAME_MAX):
            raise NotFound(f"no token named {name!r}")
        await self._write(revoke_api_token, name, at)
        rows = await self._query(t.api_tokens.select().where(t.api_tokens.c.name == name))
        return token_of(rows[0])

    async def touch_api_token(self, token_id: str, at: float) -> None:
        await self._write(touch_api_token, token_id, at)

    async def record_audit(self, record: AuditRecord) -> None:
        await self._write(record_audit, audit_params(record))

    async def page_audit(
        self, f: listing.AuditFilter, after: listing.AuditKey | None, limit: int
    ) -> list[AuditRecord]:
        return [audit_of(r) for r in await self._query(listing.audit_page(f, after, limit))]

    async def prune_audit(self, older_than: float) -> int:
        """In chunks of :data:`AUDIT_PRUNE_CHUNK` lines, each its own transaction."""
        total = 0
        while True:
            pruned = await self._write(prune_audit, older_than, AUDIT_PRUNE_CHUNK)
            total += pruned
            if pruned < AUDIT_PRUNE_CHUNK:
                return total

    async def create_session(self, record: SessionRecord) -> None:
        params = {
            "id": sql.checked_text("a session's id", record.id, 64),
            "token_id": sql.checked_text("a session's token id", record.token_id, 32),
            "name": sql.checked_text("a session's name", record.name[:ACTOR_MAX]),
            "role": Role(record.role),
            "csrf": sql.checked_text("a session's CSRF token", record.csrf, 64),
            "created_at": sql.epoch("a session's created_at", record.created_at),
            "expires_at": sql.epoch("a session's expires_at", record.expires_at),
        }
        await self._write(create_session, params)

    async def get_session(self, session_id: str, now: float) -> SessionRecord | None:
        if not sql.storable(session_id, 64):
            return None
        table = t.admin_sessions
        rows = await self._query(
            table.select().where(table.c.id == session_id, table.c.expires_at > now)
        )
        return session_of(rows[0]) if rows else None

    async def delete_session(self, session_id: str) -> bool:
        if not sql.storable(session_id, 64):
            return False
        return await self._write(delete_session, session_id)

    async def prune_sessions(self, now: float) -> int:
        return await self._write(prune_sessions, now)
