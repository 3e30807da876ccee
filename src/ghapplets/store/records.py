"""The store's vocabulary: statuses as closed sets, and the records every layer shares.

Records are plain dataclasses so the dispatcher, workers, CLI and API share one vocabulary.
Statuses are :class:`~enum.StrEnum` members; they are stored as their string values and passed to
SQL as parameters, never spelled out in queries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    DEAD = "dead"

    @property
    def final(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.DEAD)


class DeliveryStatus(StrEnum):
    DISPATCHED = "dispatched"  # jobs are queued or running
    UNMATCHED = "unmatched"  # no applet subscribed to the event
    SUCCEEDED = "succeeded"  # every job succeeded
    FAILED = "failed"  # every job finished, at least one dead


class ReadOutcome(StrEnum):
    """How a read of a secret ended, as the audit log records it."""

    OK = "ok"  # the value was handed to the reader
    NOT_FOUND = "not_found"  # no such secret where this reader may look
    DENIED = "denied"  # it exists, in a scope this reader may not read
    INVALID = "invalid"  # the name cannot name a secret (refused before any lookup)
    FAILED = "failed"  # the backend refused or could not answer


class AttemptOutcome(StrEnum):
    OK = "ok"
    RETRYABLE = "retryable"
    PERMANENT = "permanent"


@dataclass(slots=True)
class DeliveryRecord:
    source: str
    id: str
    type: str
    subject: str | None
    time: str
    received_at: float
    status: DeliveryStatus
    attributes: dict[str, Any]
    headers: dict[str, str]
    body: bytes = field(repr=False)
    jobs_total: int = 0
    jobs_succeeded: int = 0
    jobs_dead: int = 0


@dataclass(slots=True)
class JobRecord:
    id: str
    source: str
    delivery_id: str
    applet: str
    status: JobStatus
    created_at: float
    updated_at: float
    attempts: int = 0
    next_attempt_at: float | None = None
    result: Any = None
    error_type: str | None = None
    error_message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class AttemptRecord:
    job_id: str
    number: int
    started_at: float
    finished_at: float
    outcome: AttemptOutcome
    error_type: str | None = None
    error_message: str | None = None
    logs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class JobUpdate:
    """What a worker reports when an attempt ends."""

    job_id: str
    status: JobStatus
    attempt: AttemptRecord
    result: Any = None
    next_attempt_at: float | None = None
    dead_reason: str | None = None


@dataclass(slots=True)
class SecretRecord:
    """A stored secret: ``ciphertext`` is the vault's (format version in its first bytes),
    ``key_id`` the id of the key that encrypted it (None: stored before key ids were)."""

    name: str
    scope: str
    ciphertext: bytes = field(repr=False)
    created_at: float = 0.0
    updated_at: float = 0.0
    key_id: str | None = None


@dataclass(slots=True)
class SecretReadRecord:
    """One line of the audit log of secret reads: ``count`` reads of the secret ``name`` by
    ``reader`` (``applet:<name>``, ``source:<name>``, ``connector:<name>``, ``cli``) from the
    backend ``backend``, the first at ``at`` (reads alike within one write are one line).
    ``scope``: where the secret was found (None unless ``outcome`` is ``ok``). Never a value.
    ``id`` is unique, so writing a line again (a retried write) does not repeat it."""

    id: str
    at: float
    reader: str
    name: str
    backend: str
    outcome: ReadOutcome
    scope: str | None = None
    count: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
