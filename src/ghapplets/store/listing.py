"""Filtered lists in keyset pages, for the admin API (sans-I/O: SQLAlchemy Core queries).

Each list is ordered newest first by a *keyset*, a tuple of columns that never changes while a
record lives and is unique (a time, then the primary key): deliveries by ``(received_at, source,
id)``, jobs by ``(created_at, id)``, dead letters by ``(dead_at, job_id)``, runs by
``(started_at, id)``, audit lines by ``(at, id)``. A page after a key is the rows strictly
before it in that order, so a page is a range scan of an index however deep it is, and records
that arrive meanwhile (newer, so on earlier pages) neither shift nor repeat what follows.

The deliveries' list reads its keys first, in an inner query that an index covers, and fetches
the page's columns for those keys only (the stored body is never read). The subject search
(``q``) is a case-insensitive substring match: ``ILIKE`` on PostgreSQL (a trigram index serves
it), ``LIKE`` on SQLite (case-insensitive for ASCII letters), which scans a covering index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, or_, select, tuple_
from sqlalchemy.sql.elements import ColumnClause

from ghapplets.store import schema as t
from ghapplets.store.records import DeliveryStatus, JobStatus, RunStatus

DeliveryKey = tuple[float, str, str]  # received_at, source, id
JobKey = tuple[float, str]  # created_at, id
DeadLetterKey = tuple[float, str]  # dead_at, job_id
RunKey = tuple[float, str]  # started_at, id
AuditKey = tuple[float, str]  # at, id


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """A time range, epoch seconds: at or after ``since``, before ``until``."""

    since: float | None = None
    until: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryFilter(Window):
    source: str | None = None
    type: str | None = None  # exact; ending in ``*``: a prefix
    subject: str | None = None  # exact
    q: str | None = None  # a substring of the subject, any case
    status: DeliveryStatus | None = None
    applet: str | None = None  # one of its jobs is this applet's


@dataclass(frozen=True, slots=True, kw_only=True)
class JobFilter(Window):
    source: str | None = None
    applet: str | None = None
    status: JobStatus | None = None
    delivery_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetterFilter(Window):
    source: str | None = None
    applet: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFilter(Window):
    status: RunStatus | None = None
    blueprint: str | None = None  # the blueprint's name


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditFilter(Window):
    actor: str | None = None
    action: str | None = None


def before(columns: Sequence[ColumnClause[Any]], key: Sequence[Any]) -> ColumnElement[bool]:
    """Rows strictly before ``key`` in descending ``columns`` order, written so that an index
    led by the first column is range-scanned: ``c0 <= k0 AND (c0 < k0 OR (c1, ...) < (k1,
    ...))``."""
    first, rest = columns[0], columns[1:]
    tie: ColumnElement[bool] = (
        rest[0] < key[1] if len(rest) == 1 else tuple_(*rest) < tuple_(*key[1:])
    )
    return and_(first <= key[0], or_(first < key[0], tie))


def _window(column: ColumnClause[Any], w: Window) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = []
    if w.since is not None:
        found.append(column >= w.since)
    if w.until is not None:
        found.append(column < w.until)
    return found


def _equal(*pairs: tuple[ColumnClause[Any], Any]) -> list[ColumnElement[bool]]:
    return [column == value for column, value in pairs if value is not None]


def escape_like(text: str) -> str:
    """``text`` with LIKE's wildcards escaped (escape character ``/``)."""
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


def _page(
    query: Select[Any],
    keyset: Sequence[ColumnClause[Any]],
    conditions: list[ColumnElement[bool]],
    after: Sequence[Any] | None,
    limit: int,
) -> Select[Any]:
    if after is not None:
        conditions.append(before(keyset, after))
    if conditions:
        query = query.where(*conditions)
    return query.order_by(*(c.desc() for c in keyset)).limit(limit)


DELIVERY_COLUMNS = tuple(c for c in t.deliveries.c if c.name not in ("body", "headers"))


def deliveries_page(
    f: DeliveryFilter,
    after: DeliveryKey | None,
    limit: int,
    *,
    dialect: str,
    scan: int | None = None,
) -> Select[Any]:
    """A page of deliveries (every column but the body and the headers), newest first.

    ``scan`` (with ``q`` or ``applet``): look for the subject, or a job of the applet, only
    among the newest ``scan`` deliveries that the other filters select, in order, stopping at a
    full page. Its page is exact when it is full (every match further down comes after it);
    otherwise ask again without ``scan``. A term or an applet found often fills a page within a
    few thousand rows this way, where the trigram index (or the applet's set of jobs) would
    fetch and sort every match first; without ``scan``, a rare applet's few jobs are read as a
    set and the deliveries looked up by them, rather than every delivery probed for a job."""
    d = t.deliveries
    keyset = (d.c.received_at, d.c.source, d.c.id)
    conditions = _equal(
        (d.c.source, f.source), (d.c.status, f.status), (d.c.subject, f.subject)
    ) + _window(d.c.received_at, f)
    if f.type is not None:
        if f.type.endswith("*"):
            conditions.append(d.c.type.startswith(f.type[:-1], autoescape=True))
        else:
            conditions.append(d.c.type == f.type)
    keys: Any
    if scan is not None and (f.q or f.applet is not None):
        recent = _page(select(*keyset, d.c.subject), keyset, conditions, after, scan).subquery()
        rk = (recent.c.received_at, recent.c.source, recent.c.id)
        checks: list[ColumnElement[bool]] = []
        if f.q:
            checks.append(_subject_like(recent.c.subject, f.q, dialect))
        if f.applet is not None:  # a few jobs per delivery, by ix_jobs_delivery
            j = t.jobs
            checks.append(
                exists().where(
                    j.c.source == recent.c.source,
                    j.c.delivery_id == recent.c.id,
                    j.c.applet == f.applet,
                )
            )
        keys = (
            select(recent.c.source, recent.c.id)
            .where(*checks)
            .order_by(*(c.desc() for c in rk))
            .limit(limit)
            .subquery()
        )
    else:
        if f.q:
            conditions.append(_subject_like(d.c.subject, f.q, dialect))
        if f.applet is not None:  # the applet's jobs (ix_jobs_applet_created), as a set
            j = t.jobs
            jobs_of = select(j.c.source, j.c.delivery_id).where(j.c.applet == f.applet)
            conditions.append(tuple_(d.c.source, d.c.id).in_(jobs_of))
        keys = _page(select(d.c.source, d.c.id), keyset, conditions, after, limit).subquery()
    return (
        select(*DELIVERY_COLUMNS)
        .join_from(d, keys, and_(d.c.source == keys.c.source, d.c.id == keys.c.id))
        .order_by(*(c.desc() for c in keyset))
    )


def _subject_like(column: Any, q: str, dialect: str) -> ColumnElement[bool]:
    pattern = f"%{escape_like(q)}%"
    if dialect == "postgresql":
        return column.ilike(pattern, escape="/")  # type: ignore[no-any-return]
    return column.like(pattern, escape="/")  # type: ignore[no-any-return] # SQLite: any ASCII case


def jobs_page(f: JobFilter, after: JobKey | None, limit: int) -> Select[Any]:
    j = t.jobs
    conditions = _equal(
        (j.c.source, f.source),
        (j.c.applet, f.applet),
        (j.c.status, f.status),
        (j.c.delivery_id, f.delivery_id),
    ) + _window(j.c.created_at, f)
    return _page(select(j), (j.c.created_at, j.c.id), conditions, after, limit)


def dead_letters_page(f: DeadLetterFilter, after: DeadLetterKey | None, limit: int) -> Select[Any]:
    dl = t.dead_letters
    conditions = _equal((dl.c.source, f.source), (dl.c.applet, f.applet)) + _window(dl.c.dead_at, f)
    return _page(select(dl), (dl.c.dead_at, dl.c.job_id), conditions, after, limit)


RUN_COLUMNS = tuple(c for c in t.blueprint_runs.c if c.name != "definition")


def runs_page(f: RunFilter, after: RunKey | None, limit: int) -> Select[Any]:
    """Runs without their definition (a run's page names its blueprint instead)."""
    r = t.blueprint_runs
    conditions = _equal((r.c.status, f.status), (r.c.name, f.blueprint)) + _window(
        r.c.started_at, f
    )
    return _page(select(*RUN_COLUMNS), (r.c.started_at, r.c.id), conditions, after, limit)


def audit_page(f: AuditFilter, after: AuditKey | None, limit: int) -> Select[Any]:
    a = t.audit_log
    conditions = _equal((a.c.actor, f.actor), (a.c.action, f.action)) + _window(a.c.at, f)
    return _page(select(a), (a.c.at, a.c.id), conditions, after, limit)


def run_listeners(run_id: str) -> Select[Any]:
    lt = t.blueprint_listeners
    return select(lt).where(lt.c.run_id == run_id).order_by(lt.c.id)


def dead_letter(job_id: str) -> Select[Any]:
    return select(t.dead_letters).where(t.dead_letters.c.job_id == job_id)


def delivery_jobs(source: str, delivery_id: str, limit: int) -> Select[Any]:
    j = t.jobs
    return (
        select(j)
        .where(j.c.source == source, j.c.delivery_id == delivery_id)
        .order_by(j.c.created_at, j.c.id)
        .limit(limit)
    )


# jobs whose attempts may have ended in a window: settled since (a running job's earlier
# attempts are left out until it settles)
_SETTLED = (JobStatus.SUCCEEDED, JobStatus.DEAD, JobStatus.RETRYING)


def attempt_times(since: float, limit: int) -> Select[Any]:
    """The applet and duration of the attempts that finished at or after ``since``, newest
    first, at most ``limit``: the jobs updated since (``ix_jobs_status``, a range per status),
    then their attempts by the primary key."""
    j, a = t.jobs, t.attempts
    return (
        select(j.c.applet, a.c.finished_at, (a.c.finished_at - a.c.started_at).label("seconds"))
        .join_from(j, a, a.c.job_id == j.c.id)
        .where(j.c.status.in_(_SETTLED), j.c.updated_at >= since, a.c.finished_at >= since)
        .order_by(a.c.finished_at.desc())
        .limit(limit)
    )
