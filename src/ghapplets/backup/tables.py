"""What a backup holds: every table of the store's metadata except the queue and the leases.

The store's tables (:mod:`ghapplets.store.schema`) are backed up in the metadata's dependency
order, parents first: every table is durable data unless it is named below, so a new table is
backed up without a change here (the admin API's ``api_tokens``, hashes only, and
``audit_log`` are). Left out, and why:

- ``broker_messages``: the embedded broker's queue. The queue is rebuilt on restore from the
  store (the unfinished jobs and runs are queued again); what a backup keeps of it are the ids
  of the events already accepted (so a webhook sent again is still a duplicate) and the events
  accepted but not yet dispatched (:data:`DEDUP_MEMBER`, :data:`EVENTS_MEMBER`).
- ``leases``: who holds a named lease (retention, a run, the timers) until when: a lock of the
  processes running now, meaningless to another deployment.
- ``admin_sessions``: the dashboard's signed-in browsers. Short-lived, and a restored backup
  must not let an old cookie in: after a restore everyone signs in again.
"""

from __future__ import annotations

from sqlalchemy import LargeBinary, Table

from ghapplets.store.schema import broker_messages, metadata

EXCLUDED: dict[str, str] = {
    broker_messages.name: "the embedded broker's queue (rebuilt on restore from the store)",
    "leases": "the running processes' locks",
    "admin_sessions": "the dashboard's signed-in browsers (everyone signs in again)",
}
TABLE_PREFIX = "tables/"
DEDUP_MEMBER = "broker/dedup.jsonl"  # the ids of the events the embedded broker accepted
EVENTS_MEMBER = "broker/events.jsonl"  # events the embedded broker accepted, not dispatched yet
KEY_MEMBER = "secret.key"  # the secrets key, only with --include-key


def tables() -> list[Table]:
    """The tables a backup holds, parents before the tables that name them."""
    return [t for t in metadata.sorted_tables if t.name not in EXCLUDED]


def member_of(table: Table) -> str:
    return f"{TABLE_PREFIX}{table.name}.jsonl"


def binary_columns(table: Table) -> list[str]:
    """The columns whose values are bytes (written base64 in the archive)."""
    return [c.name for c in table.columns if isinstance(c.type, LargeBinary)]
