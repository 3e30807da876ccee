"""The relational schema (SQLAlchemy Core tables) shared by the embedded store and broker.

Migrations in :mod:`ghapplets.store.migrations` create exactly these tables; a test checks that
the migrated database and this metadata agree.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ghapplets.store.records import (
    ACTOR_MAX,
    BLUEPRINT_NAME_MAX,
    DIGEST_MAX,
    EVENT_ID_MAX,
    EVENT_TYPE_MAX,
    RUN_ID_MAX,
    STEP_KEY_MAX,
    TARGET_MAX,
    TOKEN_NAME_MAX,
    TRIGGER_MAX,
)

metadata = MetaData()

broker_messages = Table(
    "broker_messages",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("stream", String(64), nullable=False),
    Column("msg_id", String(512), nullable=False),
    Column("headers", Text, nullable=False),
    Column("data", LargeBinary, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("available_at", Float, nullable=False),
    Column("delivered", Integer, nullable=False, default=0),
    # 0 pending, 1 acked, 2 terminated (dead)
    Column("state", Integer, nullable=False, default=0),
    Column("reason", Text, nullable=True),
    # the consumer process that leased the message (a pending message whose ``available_at`` is
    # in the future and that has a holder is being worked on until then)
    Column("holder", String(64), nullable=True),
    UniqueConstraint("stream", "msg_id", name="uq_broker_stream_msg"),
)
# a fetch (pending, this stream, due, oldest first) and depth (pending in this stream) are range
# scans of this index, however many messages are queued
Index(
    "ix_broker_due",
    broker_messages.c.state,
    broker_messages.c.stream,
    broker_messages.c.available_at,
    broker_messages.c.seq,
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("id", String(512), primary_key=True),
    Column("type", String(512), nullable=False),
    Column("subject", Text, nullable=True),
    Column("time", String(64), nullable=False),
    Column("received_at", Float, nullable=False),
    # dispatched | unmatched | succeeded | failed | partial
    Column("status", String(32), nullable=False),
    Column("jobs_total", Integer, nullable=False, default=0),
    Column("jobs_succeeded", Integer, nullable=False, default=0),
    Column("jobs_dead", Integer, nullable=False, default=0),
    Column("attributes", Text, nullable=False),
    Column("headers", Text, nullable=False),
    Column("body", LargeBinary, nullable=False),
)
# the admin API's lists (ghapplets.store.listing): newest first, by the keyset (received_at,
# source, id), of everything, of one source or of one exact type; a page is a range scan
Index("ix_deliveries_page", deliveries.c.received_at, deliveries.c.source, deliveries.c.id)
Index("ix_deliveries_source_received", deliveries.c.source, deliveries.c.received_at)
Index("ix_deliveries_type_received", deliveries.c.type, deliveries.c.received_at)
# retention: the oldest deliveries of one status, a range scan however many others are kept
Index("ix_deliveries_status_received", deliveries.c.status, deliveries.c.received_at)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(600), primary_key=True),
    Column("source", String(64), nullable=False),
    Column("delivery_id", String(512), nullable=False),
    Column("applet", String(64), nullable=False),
    # queued | running | retrying | succeeded | dead
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("next_attempt_at", Float, nullable=True),
    Column("result", Text, nullable=True),
    Column("error_type", String(128), nullable=True),
    Column("error_message", Text, nullable=True),
)
Index("ix_jobs_delivery", jobs.c.source, jobs.c.delivery_id)
Index("ix_jobs_status", jobs.c.status, jobs.c.updated_at)
# the admin API's lists of jobs: newest first by the keyset (created_at, id), which a job keeps
# while its status changes (so a page never loses or repeats a job that moves on)
Index("ix_jobs_page", jobs.c.created_at, jobs.c.id)
Index("ix_jobs_status_created", jobs.c.status, jobs.c.created_at)
Index("ix_jobs_applet_created", jobs.c.applet, jobs.c.created_at)

attempts = Table(
    "attempts",
    metadata,
    Column("job_id", String(600), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=False),
    # ok | retryable | permanent
    Column("outcome", String(16), nullable=False),
    Column("error_type", String(128), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("logs", Text, nullable=True),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("job_id", String(600), primary_key=True),
    Column("source", String(64), nullable=False),
    Column("delivery_id", String(512), nullable=False),
    Column("applet", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("dead_at", Float, nullable=False),
)
Index("ix_dead_letters_dead_at", dead_letters.c.dead_at)  # the admin API's list, newest first

secrets = Table(
    "secrets",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("scope", String(128), nullable=False, default="global"),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # the id of the key that encrypted it (ghapplets.secrets.crypto.key_id); NULL for secrets
    # stored before migration 0004 (encrypted with the key in use then)
    Column("key_id", String(64), nullable=True),
)

# who holds a named lease (e.g. "retention") until when (epoch seconds): HistoryStore.claim_lease
leases = Table(
    "leases",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("holder", String(256), nullable=False),
    Column("expires_at", Float, nullable=False),
)

# connectors' short-lived credentials (a GitHub App's installation tokens), shared by every process
# of the project: ``key`` names the credential (``github:<connector>:<base_url>:<installation>``),
# ``ciphertext`` is the value encrypted with the secrets key (bound to ``key``), ``expires_at``
# the vendor's expiry (epoch seconds): SecretStore.get_token / put_token
connector_tokens = Table(
    "connector_tokens",
    metadata,
    Column("key", Text, primary_key=True),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# the audit log of secret reads (ghapplets.secrets.audit): who read which secret from which
# backend, when and with what outcome, never a value; ``count`` reads alike written together are
# one row. Bounded by ``storage.audit_retention_days``: SecretStore.record_secret_reads /
# list_secret_reads / prune_secret_reads
secret_reads = Table(
    "secret_reads",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("at", Float, nullable=False),
    Column("reader", String(128), nullable=False),
    Column("name", String(256), nullable=False),
    Column("backend", String(32), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("scope", String(128), nullable=True),
    Column("count", Integer, nullable=False),
)
Index("ix_secret_reads_at", secret_reads.c.at)
Index("ix_secret_reads_name_at", secret_reads.c.name, secret_reads.c.at)

# -- blueprint runs (RunStore) ------------------------------------------------------------------
# Strings that are keys are limited in bytes of UTF-8 (ghapplets.store.records: RUN_ID_MAX...);
# a column's length is that many characters, so whatever passes the byte check fits. JSON values
# are Text, like a job's result.

# a run: the definition it is pinned to (``digest`` names it), its input, where it is, what it
# ended with; ``wake_at``: when a waiting run is due again
blueprint_runs = Table(
    "blueprint_runs",
    metadata,
    Column("id", String(RUN_ID_MAX), primary_key=True),
    Column("namespace", String(BLUEPRINT_NAME_MAX), nullable=False),
    Column("name", String(BLUEPRINT_NAME_MAX), nullable=False),
    Column("version", String(BLUEPRINT_NAME_MAX), nullable=False),
    Column("digest", String(DIGEST_MAX), nullable=False),
    Column("definition", Text, nullable=False),
    # pending | running | waiting | suspended | cancelled | faulted | completed
    Column("status", String(16), nullable=False),
    Column("input", Text, nullable=False),
    Column("output", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("started_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    Column("wake_at", Float, nullable=True),
    Column("trigger", String(TRIGGER_MAX), nullable=True),
    Column("resumes", Integer, nullable=False, default=0),
)
# list_runs: newest first, of everything, of one status or of one blueprint
Index("ix_blueprint_runs_started", blueprint_runs.c.started_at)
Index("ix_blueprint_runs_status_started", blueprint_runs.c.status, blueprint_runs.c.started_at)
Index("ix_blueprint_runs_name_started", blueprint_runs.c.name, blueprint_runs.c.started_at)
# due_runs: the waiting runs whose timer is due, a range scan
Index("ix_blueprint_runs_status_wake", blueprint_runs.c.status, blueprint_runs.c.wake_at)
# prune_runs: the final runs that finished before a cutoff, a range scan per final status (a
# run taken up again after it finished keeps its old finished_at: the status leaves it out)
Index("ix_blueprint_runs_status_finished", blueprint_runs.c.status, blueprint_runs.c.finished_at)

# a run's journal: one step record per key (StepRecord.to_dict() as JSON in ``record``), with the
# columns worth querying beside it; ``position`` is the order keys were first recorded in (a
# replaced step keeps its own)
blueprint_steps = Table(
    "blueprint_steps",
    metadata,
    Column("run_id", String(RUN_ID_MAX), primary_key=True),
    Column("key", String(STEP_KEY_MAX), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("reference", Text, nullable=False),
    Column("name", Text, nullable=False),
    # running | completed | skipped | faulted | cancelled
    Column("status", String(16), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    Column("record", Text, nullable=False),
    UniqueConstraint("run_id", "position", name="uq_blueprint_steps_position"),
)

# the runs' listeners: one row per exact event type a listener takes, or one row with a NULL
# event_type for a listener that must see every event (ListenerRecord); ``id`` only orders them
blueprint_listeners = Table(
    "blueprint_listeners",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(RUN_ID_MAX), nullable=False),
    Column("key", String(STEP_KEY_MAX), nullable=False),
    Column("event_type", String(EVENT_TYPE_MAX), nullable=True),
    Column("filters", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)
# listeners_for: the rows of the event's types and the NULL rows, two ranges of one index
Index("ix_blueprint_listeners_type", blueprint_listeners.c.event_type)
Index("ix_blueprint_listeners_run", blueprint_listeners.c.run_id, blueprint_listeners.c.key)

# the events delivered to each listener, numbered 0, 1, 2... per (run_id, key) in the order
# they were delivered; an event (its source and id) is in a listener's inbox at most once
blueprint_inbox = Table(
    "blueprint_inbox",
    metadata,
    Column("run_id", String(RUN_ID_MAX), primary_key=True),
    Column("key", String(STEP_KEY_MAX), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("event_source", String(EVENT_ID_MAX), nullable=False),
    Column("event_id", String(EVENT_ID_MAX), nullable=False),
    Column("event", Text, nullable=False),
    Column("delivered_at", Float, nullable=False),
    UniqueConstraint("run_id", "key", "event_source", "event_id", name="uq_blueprint_inbox_event"),
)

# events steps emitted, to publish (a transactional outbox: written with the step that emits
# them, deleted once published); an event id is kept once. ``ordinal``: its place among the
# events of its checkpoint, so one step's events go out in order
blueprint_outbox = Table(
    "blueprint_outbox",
    metadata,
    Column("id", String(EVENT_ID_MAX), primary_key=True),
    Column("run_id", String(RUN_ID_MAX), nullable=False),
    Column("event", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("ordinal", Integer, nullable=False),
)
Index("ix_blueprint_outbox_created", blueprint_outbox.c.created_at, blueprint_outbox.c.ordinal)

# -- the admin API (ghapplets.admin) --------------------------------------------------------------
# its bearer tokens: only the hex SHA-256 of each token is kept (ghapplets.admin.tokens); a
# token is found by its ``id`` (written into the token itself), then its hash compared
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(TOKEN_NAME_MAX), nullable=False),
    # viewer | operator | admin (ghapplets.store.records.Role)
    Column("role", String(16), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
    UniqueConstraint("name", name="uq_api_tokens_name"),
)

# every change made through the admin API (and ``ghapplets tokens``): who, what, on what, when,
# how it ended; bounded by ``storage.audit_retention_days``
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("at", Float, nullable=False),
    Column("actor", String(ACTOR_MAX), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(TARGET_MAX), nullable=False),
    # ok | refused | not_found | failed (ghapplets.store.records.AuditOutcome)
    Column("outcome", String(16), nullable=False),
    Column("detail", Text, nullable=True),
)
Index("ix_audit_log_at", audit_log.c.at, audit_log.c.id)

# the dashboard's sessions (ghapplets.dashboard.sessions): ``id`` is the hex SHA-256 of the
# secret in the browser's cookie (never the secret), ``token_id`` the API token it signed in
# with (a session of a revoked token ends), ``csrf`` the token its forms carry. Not backed up
# (ghapplets.backup.tables); expired rows are pruned
admin_sessions = Table(
    "admin_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("token_id", String(32), nullable=False),
    Column("name", String(ACTOR_MAX), nullable=False),
    # viewer | operator | admin (ghapplets.store.records.Role)
    Column("role", String(16), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)
Index("ix_admin_sessions_expires", admin_sessions.c.expires_at)

# Indexes of one database only, made by migration 0009 and not declared above (the metadata is
# the same for both): a check of the schema expects them on their database and nowhere else.
# - SQLite: the subject search (``q``) of the deliveries list reads this covering index instead of
#   the table (a scan of 1,000,000 subjects in tens of milliseconds, stopping at a full page)
# - PostgreSQL: a trigram index (pg_trgm) that ILIKE '%...%' and = on the subject use; made when
#   the extension can be created (see docs/admin-api.md), else the search scans
DIALECT_INDEXES: dict[str, str] = {
    "ix_deliveries_search": "sqlite",  # (received_at, source, id, subject)
    "ix_deliveries_subject_trgm": "postgresql",  # USING gin (subject gin_trgm_ops)
}
