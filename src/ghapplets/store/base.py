"""The store contract: deliveries, jobs and their attempts, dead letters, secrets.

Records are plain dataclasses so the dispatcher, workers, CLI and API share one vocabulary. The
embedded backend is :class:`ghapplets.store.sqlite.SqliteStore`; a PostgreSQL backend implements
the same methods on the same schema.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

JOB_QUEUED, JOB_RUNNING, JOB_RETRYING, JOB_SUCCEEDED, JOB_DEAD = (
    "queued",
    "running",
    "retrying",
    "succeeded",
    "dead",
)


@dataclass(slots=True)
class DeliveryRecord:
    source: str
    id: str
    type: str
    subject: str | None
    time: str
    received_at: float
    status: str
    attributes: dict[str, Any]
    headers: dict[str, str]
    body: bytes = field(repr=False)
    jobs_total: int = 0
    jobs_succeeded: int = 0
    jobs_dead: int = 0

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("body")
        out.pop("headers")
        out.pop("attributes")
        return out


@dataclass(slots=True)
class JobRecord:
    id: str
    source: str
    delivery_id: str
    applet: str
    status: str
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
    outcome: str
    error_type: str | None = None
    error_message: str | None = None
    logs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class JobUpdate:
    """What a worker reports when an attempt ends."""

    job_id: str
    status: str
    attempt: AttemptRecord
    result: Any = None
    next_attempt_at: float | None = None
    dead_reason: str | None = None


@dataclass(slots=True)
class SecretRecord:
    name: str
    scope: str
    ciphertext: bytes = field(repr=False)
    created_at: float = 0.0
    updated_at: float = 0.0


class Store(ABC):
    # -- deliveries & jobs -----------------------------------------------------------------
    @abstractmethod
    async def record_dispatch(
        self, deliveries: list[DeliveryRecord], jobs: list[JobRecord]
    ) -> None:
        """Insert deliveries and their jobs; rows that already exist are left as they are."""

    @abstractmethod
    async def job_started(self, job_id: str, attempt: int, at: float) -> None: ...

    @abstractmethod
    async def job_finished(self, update: JobUpdate) -> None: ...

    @abstractmethod
    async def requeue_job(self, job_id: str) -> JobRecord:
        """Mark a job queued again for a replay (and lift it out of the dead letters)."""

    @abstractmethod
    async def list_deliveries(
        self,
        *,
        source: str | None = None,
        status: str | None = None,
        type_prefix: str | None = None,
        limit: int = 50,
    ) -> list[DeliveryRecord]: ...

    @abstractmethod
    async def get_delivery(self, delivery_id: str, source: str | None = None) -> DeliveryRecord:
        """Raise KeyError when unknown (or ambiguous without ``source``)."""

    @abstractmethod
    async def list_jobs(
        self,
        *,
        delivery_id: str | None = None,
        applet: str | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> list[JobRecord]: ...

    @abstractmethod
    async def get_job(self, job_id: str) -> JobRecord: ...

    @abstractmethod
    async def list_attempts(self, job_id: str) -> list[AttemptRecord]: ...

    @abstractmethod
    async def dead_letter_count(self) -> int: ...

    # -- secrets -----------------------------------------------------------------------------
    @abstractmethod
    async def put_secret(self, record: SecretRecord) -> None: ...

    @abstractmethod
    async def get_secret(self, name: str) -> SecretRecord:
        """Raise KeyError when unknown."""

    @abstractmethod
    async def list_secrets(self) -> list[SecretRecord]: ...

    @abstractmethod
    async def delete_secret(self, name: str) -> bool: ...

    # -- housekeeping ------------------------------------------------------------------------
    @abstractmethod
    async def prune(self, older_than: float) -> int:
        """Delete finished history recorded before the epoch time ``older_than``."""
