"""The store contracts: the history of deliveries and jobs, and the encrypted secrets.

Two interfaces, because they change for different reasons and may live in different places
(secret values can be kept by OpenBao or Kubernetes while the history stays in the database):

- :class:`HistoryStore`: deliveries, jobs and their attempts, dead letters, retention;
- :class:`SecretStore`: named ciphertexts (encryption is the vault's job, not the store's), the
  connectors' cached tokens (encrypted by :mod:`ghapplets.secrets.tokens`), and the audit log
  of secret reads (:mod:`ghapplets.secrets.audit`), whatever backend keeps the values.

Backends: the embedded SQLite database (:mod:`ghapplets.store.sqlite`) and PostgreSQL
(:mod:`ghapplets.store.postgres`); both pass one conformance suite. Lookups of a name that does
not exist raise :class:`ghapplets.exceptions.NotFound`; a store that cannot serve (closed, server
unreachable) raises :class:`ghapplets.exceptions.StoreUnavailable`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from ghapplets.store.records import (
    AttemptRecord,
    DeliveryRecord,
    DeliveryStatus,
    JobRecord,
    JobStatus,
    JobUpdate,
    SecretReadRecord,
    SecretRecord,
)


class HistoryStore(ABC):
    @abstractmethod
    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the store can serve now (for ``/readyz``)."""

    @abstractmethod
    async def record_dispatch(
        self, deliveries: list[DeliveryRecord], jobs: list[JobRecord]
    ) -> set[str]:
        """Insert deliveries and their jobs; rows that already exist are left as they are.

        Returns the ids of the jobs still to run: those inserted now, and those that existed
        but are still queued. A job that has started, is waiting to retry or has finished is
        left out, so an event seen again (a redelivery, or a webhook sent again after the
        broker's duplicate window) does not run its applets again."""

    @abstractmethod
    async def job_started(self, job_id: str, attempt: int, at: float) -> None: ...

    @abstractmethod
    async def job_finished(self, update: JobUpdate) -> None:
        """Record an attempt's end; a job already succeeded is left as it is."""

    @abstractmethod
    async def requeue_job(self, job_id: str) -> JobRecord:
        """Mark a job queued again for a replay (and lift it out of the dead letters)."""

    @abstractmethod
    async def list_deliveries(
        self,
        *,
        source: str | None = None,
        status: DeliveryStatus | None = None,
        type_prefix: str | None = None,
        limit: int = 50,
    ) -> list[DeliveryRecord]: ...

    @abstractmethod
    async def get_delivery(self, delivery_id: str, source: str | None = None) -> DeliveryRecord:
        """Raise NotFound when unknown (or ambiguous without ``source``)."""

    @abstractmethod
    async def has_delivery(self, delivery_id: str) -> bool:
        """Is a delivery of that id stored, from any source?"""

    @abstractmethod
    async def get_bodies(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], bytes]:
        """The bodies of the deliveries ``(source, id)`` that exist, in one round trip."""

    @abstractmethod
    async def list_jobs(
        self,
        *,
        delivery_id: str | None = None,
        applet: str | None = None,
        status: JobStatus | None = None,
        limit: int = 50,
    ) -> list[JobRecord]: ...

    @abstractmethod
    async def get_job(self, job_id: str) -> JobRecord:
        """Raise NotFound when unknown."""

    @abstractmethod
    async def list_attempts(self, job_id: str) -> list[AttemptRecord]: ...

    @abstractmethod
    async def dead_letter_count(self) -> int: ...

    @abstractmethod
    async def prune(self, older_than: float, *, dead_older_than: float | None = None) -> int:
        """Delete finished history received before the epoch time ``older_than`` (deliveries
        whose jobs all succeeded, or that matched no applet), and, with ``dead_older_than``,
        deliveries received before it whose jobs all finished and some were dead-lettered
        (with their dead letters). Unfinished deliveries are kept. In small transactions, by
        an index on the time received; the number of deliveries deleted."""

    @abstractmethod
    async def claim_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Hold the lease ``name`` for ``ttl`` seconds from now if it is free, expired or
        already ``holder``'s; true when ``holder`` now holds it. Atomic across processes, so
        replicas use it to let one of them at a time do a job (no process is a singleton)."""

    @abstractmethod
    async def release_lease(self, name: str, holder: str) -> None:
        """Let go of ``name`` if ``holder`` holds it (another may claim it at once)."""


# every stored secret in, the same secrets re-encrypted (new ciphertext and key id) out
Reencrypt = Callable[[list[SecretRecord]], list[SecretRecord]]


class SecretStore(ABC):
    @abstractmethod
    async def put_secret(self, record: SecretRecord) -> None:
        """Insert or replace; a replaced secret keeps its ``created_at``. All secrets are kept
        under one key: a record with a ``key_id`` is refused with
        :class:`~ghapplets.exceptions.SecretKeyMismatch` (naming the stored key id) while a
        secret under another key id is stored."""

    @abstractmethod
    async def get_secret(self, name: str) -> SecretRecord:
        """Raise NotFound when unknown."""

    @abstractmethod
    async def list_secrets(self) -> list[SecretRecord]: ...

    @abstractmethod
    async def delete_secret(self, name: str) -> bool: ...

    @abstractmethod
    async def reencrypt_secrets(self, transform: Reencrypt) -> int:
        """Rewrite every secret's ciphertext and key id with ``transform`` (given them all, in
        name order), in one transaction that no other secret write interleaves with; the
        number rewritten. If ``transform`` raises, nothing changes. It may be called more than
        once, so it must be a pure function of its argument."""

    @abstractmethod
    async def get_token(self, key: str) -> tuple[bytes, float] | None:
        """The cached connector token ``key``: ``(ciphertext, expires_at)``, or None. Expired
        tokens are returned too: the caller decides what is fresh enough."""

    @abstractmethod
    async def put_token(self, key: str, ciphertext: bytes, expires_at: float) -> None:
        """Insert or replace the cached connector token ``key`` (any process may read it)."""

    @abstractmethod
    async def record_secret_reads(self, reads: Sequence[SecretReadRecord]) -> None:
        """Append audit lines; a line whose id is stored already is left as it is."""

    @abstractmethod
    async def list_secret_reads(
        self, *, name: str | None = None, since: float | None = None, limit: int = 100
    ) -> list[SecretReadRecord]:
        """Audit lines, newest first: of the secret ``name`` (any, if None), at or after the
        epoch time ``since``, at most ``limit``."""

    @abstractmethod
    async def prune_secret_reads(self, older_than: float) -> int:
        """Delete the audit lines before the epoch time ``older_than``, in small transactions;
        how many."""
