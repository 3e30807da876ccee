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

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import fields
from typing import Any, TypeVar

import orjson
from sqlalchemy import ColumnElement, Select, func, or_, select, tuple_

from ghapplets.exceptions import InvalidRecord
from ghapplets.store import schema as t
from ghapplets.store.records import (
    BLUEPRINT_NAME_MAX,
    DIGEST_MAX,
    EVENT_ID_MAX,
    EVENT_TYPE_MAX,
    FINAL_RUN_STATUSES,
    RUN_ID_MAX,
    STEP_KEY_MAX,
    TRIGGER_MAX,
    AttemptOutcome,
    AttemptRecord,
    DeliveryRecord,
    DeliveryStatus,
    JobRecord,
    JobStatus,
    JobUpdate,
    ListenerRecord,
    ReadOutcome,
    RunRecord,
    RunStatus,
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

# -- blueprint runs: writes ------------------------------------------------------------------
# Every write of one run starts by writing or locking the run's row, so on PostgreSQL two
# transactions about one run take turns: a step's position and a listener's event numbers are
# read and written by one of them at a time (SQLite's writer holds the whole database).
INSERT_RUN = (
    "INSERT INTO blueprint_runs (id, namespace, name, version, digest, definition, status,"
    " input, output, error, started_at, updated_at, finished_at, wake_at, trigger, resumes)"
    " VALUES (:id, :namespace, :name, :version, :digest, :definition, :status, :input,"
    " :output, :error, :started_at, :updated_at, :finished_at, :wake_at, :trigger, :resumes)"
    " ON CONFLICT (id) DO NOTHING"
)
TOUCH_RUN = "UPDATE blueprint_runs SET updated_at = :now WHERE id = :run_id"
RUN_STATUS = "SELECT status FROM blueprint_runs WHERE id = :run_id"
# a new key goes after every key recorded so far (the unique (run_id, position) index's range)
NEXT_STEP_POSITION = (
    "SELECT coalesce(max(position) + 1, 0) AS position FROM blueprint_steps WHERE run_id = :run_id"
)
# a replaced step keeps its position
UPSERT_STEP = (
    "INSERT INTO blueprint_steps (run_id, key, position, reference, name, status, started_at,"
    " finished_at, record) VALUES (:run_id, :key, :position, :reference, :name, :status,"
    " :started_at, :finished_at, :record) ON CONFLICT (run_id, key) DO UPDATE SET"
    " reference = excluded.reference, name = excluded.name, status = excluded.status,"
    " started_at = excluded.started_at, finished_at = excluded.finished_at,"
    " record = excluded.record"
)
# an event emitted again (its step ran again after a crash) is left as it is
INSERT_OUTBOX = (
    "INSERT INTO blueprint_outbox (id, run_id, event, created_at, ordinal)"
    " VALUES (:id, :run_id, :event, :created_at, :ordinal) ON CONFLICT (id) DO NOTHING"
)
DROP_OUTBOX = "DELETE FROM blueprint_outbox WHERE id = :id"
INSERT_LISTENER = (
    "INSERT INTO blueprint_listeners (run_id, key, event_type, filters, created_at)"
    " VALUES (:run_id, :key, :event_type, :filters, :created_at)"
)
DELETE_LISTENER = "DELETE FROM blueprint_listeners WHERE run_id = :run_id AND key = :key"
DELETE_RUN_LISTENERS = "DELETE FROM blueprint_listeners WHERE run_id = :run_id"
# the next number of a listener's inbox (its primary key's range)
NEXT_INBOX_SEQ = (
    "SELECT coalesce(max(seq) + 1, 0) AS seq FROM blueprint_inbox"
    " WHERE run_id = :run_id AND key = :key"
)
# an event already in the listener's inbox (a redelivery) is skipped: row count 0. Two
# deliveries given one number (which the run's lock prevents) fail on the primary key instead.
INSERT_INBOX = (
    "INSERT INTO blueprint_inbox (run_id, key, seq, event_source, event_id, event,"
    " delivered_at) VALUES (:run_id, :key, :seq, :event_source, :event_id, :event,"
    " :delivered_at) ON CONFLICT (run_id, key, event_source, event_id) DO NOTHING"
)
# final runs that finished before the cutoff: range scans of ix_blueprint_runs_status_finished
# (status, finished_at), which read only rows to delete (update_run sets finished_at)
PRUNABLE_RUNS = (
    "SELECT id FROM blueprint_runs WHERE status IN (:completed, :faulted, :cancelled)"
    " AND finished_at < :older_than LIMIT :limit"
)
DELETE_RUN_STEPS = "DELETE FROM blueprint_steps WHERE run_id = :run_id"
DELETE_RUN_INBOX = "DELETE FROM blueprint_inbox WHERE run_id = :run_id"
DELETE_RUN = "DELETE FROM blueprint_runs WHERE id = :run_id"
FINAL_STATUSES = {status.value: status for status in FINAL_RUN_STATUSES}
# the fields update_run may set besides the status, as columns
RUN_UPDATES = ("output", "error", "wake_at", "finished_at")

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


# -- blueprint runs: parameters --------------------------------------------------------------
def _text(what: str, value: Any, limit: int | None = None) -> str:
    """``value``, a non-empty string the store can keep (UTF-8, no NUL, at most ``limit`` bytes
    of UTF-8); InvalidRecord naming ``what`` otherwise."""
    if not isinstance(value, str) or not value:
        raise InvalidRecord(f"{what} must be a non-empty string, not {value!r:.80}")
    if "\x00" in value:
        raise InvalidRecord(f"{what} has a NUL character: {value!r:.80}")
    try:
        size = len(value.encode())
    except UnicodeEncodeError as exc:
        raise InvalidRecord(f"{what} is not valid Unicode ({exc.reason}): {value!r:.80}") from None
    if limit is not None and size > limit:
        raise InvalidRecord(
            f"{what} is {size} bytes of UTF-8, longer than the {limit} it may have: {value!r:.80}"
        )
    return value


checked_text = _text  # for the other modules of the store


def storable(value: Any, limit: int) -> bool:
    """Could ``value`` be a stored key of at most ``limit`` bytes? One that could not matches
    nothing, so a lookup by it answers "none" without asking (PostgreSQL would refuse a NUL)."""
    try:
        _text("a key", value, limit)
    except InvalidRecord:
        return False
    return True


def _optional_text(what: str, value: Any, limit: int | None = None) -> str | None:
    return None if value is None else _text(what, value, limit)


def epoch(what: str, value: Any, *, optional: bool = False) -> float | None:
    """``value`` as epoch seconds (None too, when ``optional``); InvalidRecord otherwise."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRecord(f"{what} must be a number (epoch seconds), not {value!r:.80}")
    return float(value)


def stored_json(what: str, value: Any) -> str:
    """``value`` as JSON text; InvalidRecord when it is not JSON the store can keep (nested
    more than 254 levels deep, an object key that is not a string, an integer past 64 bits...)."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as exc:
        raise InvalidRecord(f"{what} cannot be stored as JSON: {exc}") from None


def run_id_param(run_id: Any) -> str:
    return _text("a run id", run_id, RUN_ID_MAX)


def key_param(key: Any) -> str:
    return _text("a step key", key, STEP_KEY_MAX)


def run_status(value: Any) -> RunStatus:
    try:
        return RunStatus(value)
    except ValueError:
        raise InvalidRecord(f"not a run status: {value!r:.80}") from None


def run_params(r: RunRecord) -> dict[str, Any]:
    return {
        "id": run_id_param(r.id),
        "namespace": _text("a blueprint namespace", r.namespace, BLUEPRINT_NAME_MAX),
        "name": _text("a blueprint name", r.name, BLUEPRINT_NAME_MAX),
        "version": _text("a blueprint version", r.version, BLUEPRINT_NAME_MAX),
        "digest": _text("a blueprint digest", r.digest, DIGEST_MAX),
        "definition": stored_json("a blueprint definition", r.definition),
        "status": run_status(r.status),
        "input": stored_json("a run's input", r.input),
        "output": stored_json("a run's output", r.output),
        "error": None if r.error is None else stored_json("a run's error", r.error),
        "started_at": epoch("a run's started_at", r.started_at),
        "updated_at": epoch("a run's updated_at", r.updated_at),
        "finished_at": epoch("a run's finished_at", r.finished_at, optional=True),
        "wake_at": epoch("a run's wake_at", r.wake_at, optional=True),
        "trigger": _optional_text("a run's trigger", r.trigger, TRIGGER_MAX),
        "resumes": int(r.resumes),
    }


def update_run(
    run_id: str,
    status: RunStatus,
    changes: Mapping[str, Any],
    expect: Collection[RunStatus] | None,
    resumed: bool,
    now: float,
) -> tuple[str, dict[str, Any]]:
    """The statement and parameters of ``update_run``: ``changes`` maps the columns of
    :data:`RUN_UPDATES` to set to their values (JSON already), ``expect`` the statuses the run
    must be in (any, if None)."""
    params: dict[str, Any] = {
        "run_id": run_id_param(run_id),
        "status": run_status(status),
        "updated_at": now,
    }
    sets = ["status = :status", "updated_at = :updated_at"]
    for column in RUN_UPDATES:  # only these fixed names go into the text
        if column in changes:
            sets.append(f"{column} = :{column}")
            params[column] = changes[column]
    if resumed:
        sets.append("resumes = resumes + 1")
    where = "id = :run_id"
    if expect is not None:
        marks = []
        for i, expected in enumerate(sorted({run_status(e) for e in expect})):
            params[f"e{i}"] = expected
            marks.append(f":e{i}")
        # no status is in an empty set: a statement that changes nothing
        where += f" AND status IN ({', '.join(marks)})" if marks else " AND 1 = 0"
    statement = f"UPDATE blueprint_runs SET {', '.join(sets)} WHERE {where}"  # noqa: S608
    return statement, params


def step_params(run_id: str, step: Mapping[str, Any]) -> dict[str, Any]:
    """UPSERT_STEP's parameters but the position: a step dict (``StepRecord.to_dict()``)."""
    if not isinstance(step, Mapping):
        raise InvalidRecord(f"a step must be a dict (StepRecord.to_dict()), not {step!r:.80}")
    return {
        "run_id": run_id_param(run_id),
        "key": key_param(step.get("key")),
        "reference": _text("a step's reference", step.get("reference")),
        "name": _text("a step's name", step.get("name")),
        "status": _text("a step's status", step.get("status"), 16),
        "started_at": epoch("a step's started_at", step.get("started_at")),
        "finished_at": epoch("a step's finished_at", step.get("finished_at"), optional=True),
        "record": stored_json(f"the step {step.get('key')!r:.80}", dict(step)),
    }


def _event_id(what: str, event: Any) -> str:
    if not isinstance(event, Mapping):
        raise InvalidRecord(f"{what} must be a dict (a CloudEvent), not {event!r:.80}")
    return _text(f"the id of {what}", event.get("id"), EVENT_ID_MAX)


def outbox_params(run_id: str, event: Any, ordinal: int, now: float) -> dict[str, Any]:
    return {
        "id": _event_id("an emitted event", event),
        "run_id": run_id,
        "event": stored_json("an emitted event", event),
        "created_at": now,
        "ordinal": ordinal,
    }


def listener_params(run_id: str, listener: ListenerRecord) -> dict[str, Any]:
    if listener.run_id != run_id:
        raise InvalidRecord(
            f"the listener {listener.key!r:.80} of run {listener.run_id!r:.80} is checkpointed"
            f" with run {run_id!r:.80}"
        )
    return {
        "run_id": run_id,
        "key": key_param(listener.key),
        "event_type": _optional_text(
            "a listener's event type", listener.event_type, EVENT_TYPE_MAX
        ),
        "filters": stored_json(f"the filters of listener {listener.key!r:.80}", listener.filters),
        "created_at": epoch("a listener's created_at", listener.created_at),
    }


def inbox_params(run_id: Any, key: Any, event: Any, now: float) -> dict[str, Any]:
    """INSERT_INBOX's parameters but the number. An event without a source (CloudEvents
    requires one) counts as from the source ""."""
    event_id = _event_id("a delivered event", event)
    source = event.get("source")
    return {
        "run_id": run_id_param(run_id),
        "key": key_param(key),
        "event_source": "" if source is None else _text("an event's source", source, EVENT_ID_MAX),
        "event_id": event_id,
        "event": stored_json(f"the event {event_id!r:.80}", event),
        "delivered_at": now,
    }


def _marks(prefix: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """``:p0, :p1...`` and their parameters: only generated names go into a statement's text."""
    params = {f"{prefix}{i}": value for i, value in enumerate(values)}
    return ", ".join(f":{name}" for name in params), params


def lock_runs(run_ids: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """A ``SELECT`` of the runs ``run_ids`` in id order, for their row locks (``FOR UPDATE``
    on PostgreSQL): transactions locking overlapping sets wait for each other, not deadlock."""
    marks, params = _marks("r", run_ids)
    return f"SELECT id FROM blueprint_runs WHERE id IN ({marks}) ORDER BY id", params  # noqa: S608


def listening(run_ids: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """The (run_id, key) of the listeners registered by the runs ``run_ids``."""
    marks, params = _marks("r", run_ids)
    return (
        f"SELECT DISTINCT run_id, key FROM blueprint_listeners WHERE run_id IN ({marks})",  # noqa: S608
        params,
    )


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


def delivery_key_query(delivery_id: str, source: str | None) -> Select[Any]:
    """One row (the key alone) when such a delivery is stored: a primary-key lookup."""
    d = t.deliveries
    return _where_given(
        select(d.c.source).where(d.c.id == delivery_id), (d.c.source, source)
    ).limit(1)


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


# -- blueprint runs: queries -----------------------------------------------------------------
def run_query(run_id: str) -> Select[Any]:
    return select(t.blueprint_runs).where(t.blueprint_runs.c.id == run_id)


def runs_query(
    status: RunStatus | None, name: str | None, namespace: str | None, limit: int
) -> Select[Any]:
    r = t.blueprint_runs
    return _where_given(
        select(r).order_by(r.c.started_at.desc()).limit(limit),
        (r.c.status, status),
        (r.c.name, name),
        (r.c.namespace, namespace),
    )


def steps_query(run_id: str) -> Select[Any]:
    s = t.blueprint_steps
    return select(s.c.record).where(s.c.run_id == run_id).order_by(s.c.position)


def listeners_query(types: Sequence[str]) -> Select[Any]:
    """The rows of exactly one of ``types`` or of every type (NULL): two ranges of
    ix_blueprint_listeners_type."""
    lt = t.blueprint_listeners
    wanted: ColumnElement[bool] = lt.c.event_type.is_(None)
    if types:
        wanted = or_(lt.c.event_type.in_(sorted(set(types))), wanted)
    return select(lt).where(wanted).order_by(lt.c.id)


def inbox_query(run_id: str, key: str, start: int) -> Select[Any]:
    i = t.blueprint_inbox
    return (
        select(i.c.event)
        .where(i.c.run_id == run_id, i.c.key == key, i.c.seq >= start)
        .order_by(i.c.seq)
    )


def due_runs_query(now: float, limit: int) -> Select[Any]:
    r = t.blueprint_runs
    return (
        select(r.c.id)
        .where(r.c.status == RunStatus.WAITING, r.c.wake_at <= now)
        .order_by(r.c.wake_at)
        .limit(limit)
    )


def outbox_query(limit: int) -> Select[Any]:
    o = t.blueprint_outbox
    return select(o.c.event).order_by(o.c.created_at, o.c.ordinal).limit(limit)


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


def run_of(m: Row) -> RunRecord:
    return _record(
        RunRecord,
        m,
        status=RunStatus,
        definition=orjson.loads,
        input=orjson.loads,
        output=_loads_or(None),
        error=_loads_or(None),
    )


def listener_of(m: Row) -> ListenerRecord:
    return _record(ListenerRecord, m, filters=orjson.loads)
