"""The store contracts: the history of deliveries and jobs, the encrypted secrets, and the
durable state of blueprint runs.

Separate interfaces, because they change for different reasons and may live in different places
(secret values can be kept by OpenBao or Kubernetes while the history stays in the database):

- :class:`HistoryStore`: deliveries, jobs and their attempts, dead letters, retention;
- :class:`SecretStore`: named ciphertexts (encryption is the vault's job, not the store's), the
  connectors' cached tokens (encrypted by :mod:`ghapplets.secrets.tokens`), and the audit log
  of secret reads (:mod:`ghapplets.secrets.audit`), whatever backend keeps the values;
- :class:`RunStore`: blueprint runs, their journals of steps, their listeners and the events
  delivered to them, and the outbox of the events their steps emit. The relational history
  stores implement it too: runs live in the same database as the history.
- :class:`AdminStore`: what the admin API reads and keeps: filtered lists in keyset pages
  (:mod:`ghapplets.store.listing`), its tokens (hashes only) and its audit log. In the history's
  database too.

Backends: the embedded SQLite database (:mod:`ghapplets.store.sqlite`) and PostgreSQL
(:mod:`ghapplets.store.postgres`); both pass one conformance suite. Lookups of a name that does
not exist raise :class:`ghapplets.exceptions.NotFound`; a store that cannot serve (closed, server
unreachable) raises :class:`ghapplets.exceptions.StoreUnavailable`; a record a store cannot keep
(a key past its limit, a value that is not storable JSON) raises
:class:`ghapplets.exceptions.InvalidRecord`, and nothing of that write is kept.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from typing import Any

from ghapplets.store.listing import (
    AuditFilter,
    AuditKey,
    DeadLetterFilter,
    DeadLetterKey,
    DeliveryFilter,
    DeliveryKey,
    JobFilter,
    JobKey,
    RunFilter,
    RunKey,
)
from ghapplets.store.records import (
    UNCHANGED,
    ApiTokenRecord,
    AttemptRecord,
    AttemptTime,
    AuditRecord,
    DeadLetterRecord,
    DeliveryRecord,
    DeliveryStatus,
    JobRecord,
    JobStatus,
    JobUpdate,
    ListenerRecord,
    RunRecord,
    RunStatus,
    SecretReadRecord,
    SecretRecord,
    SessionRecord,
    Unchanged,
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
    async def has_delivery(self, delivery_id: str, source: str | None = None) -> bool:
        """Is a delivery of that id stored (from ``source``, or from any source)?"""

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


class RunStore(ABC):
    """The durable state of blueprint runs (:mod:`ghapplets.blueprints`).

    A run's journal is its steps (``StepRecord.to_dict()``, one per key); the engine replays it
    to resume the run. :meth:`checkpoint_step` writes a step together with what the step sends
    and starts or stops listening to, in one transaction. Events reach a listener through
    :meth:`listeners_for` (who may want an event of this type) and :meth:`deliver` (append it
    to their inboxes, numbered, once each); :meth:`due_runs` finds the waiting runs whose timer
    is due; :meth:`take_outbox` / :meth:`drop_outbox` publish what steps emitted.

    Writes that concern one run take turns on it (on PostgreSQL they lock its row), so two
    processes never number one run's steps or one listener's events alike. Statuses are
    :class:`RunStatus` members; keys and names are limited in bytes (``RUN_ID_MAX``... in
    :mod:`ghapplets.store.records`)."""

    @abstractmethod
    async def create_run(self, run: RunRecord) -> bool:
        """Insert a run; true when inserted. A run of that id already stored is left as it is
        and false returned (a redelivered trigger must not start a second run)."""

    @abstractmethod
    async def get_run(self, run_id: str) -> RunRecord:
        """Raise NotFound when unknown."""

    @abstractmethod
    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        name: str | None = None,
        namespace: str | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        """Runs newest (latest started) first: of ``status``, of the blueprint ``name`` (in
        ``namespace``)."""

    @abstractmethod
    async def update_run(
        self,
        run_id: str,
        *,
        status: RunStatus,
        output: Any = UNCHANGED,
        error: dict[str, Any] | Unchanged | None = UNCHANGED,
        wake_at: float | Unchanged | None = UNCHANGED,
        finished_at: float | Unchanged | None = UNCHANGED,
        expect: Collection[RunStatus] | None = None,
        resumed: bool = False,
    ) -> bool:
        """Set the run's status (and ``updated_at`` to now), and each other field given (None
        clears it; :data:`~ghapplets.store.records.UNCHANGED`, the default, leaves it as it
        is); ``resumed`` counts one more resume. With ``expect``, only if the run's status is
        one of those at that moment (compare-and-set: a cancel is not overwritten by a worker
        finishing; of two workers taking up a waiting run with ``expect={WAITING}``, one
        wins). True when the run changed; false when it is unknown or its status was not
        expected.

        A final status (completed, faulted, cancelled) sets ``finished_at`` to now unless it is
        given, and drops the run's listeners (nothing is delivered to a finished run)."""

    @abstractmethod
    async def checkpoint_step(
        self,
        run_id: str,
        step: dict[str, Any],
        *,
        emit: Sequence[dict[str, Any]] = (),
        listen: Sequence[ListenerRecord] = (),
        unlisten: str | None = None,
    ) -> None:
        """In one transaction: store ``step`` (``StepRecord.to_dict()``), replacing the step of
        the same key, which keeps its place in the journal; put ``emit`` in the outbox (an
        event id already there is left as it is); register the listeners ``listen`` (rows of
        this run: a listener registered again, as the engine does on every resume, replaces
        its rows; a run already final, cancelled while the step ran, registers none); drop the
        listener ``unlisten``; and touch the run's ``updated_at``. Raise
        NotFound for an unknown run, InvalidRecord for what cannot be stored: then nothing of
        it is kept."""

    @abstractmethod
    async def steps(self, run_id: str) -> list[dict[str, Any]]:
        """The run's step dicts, in the order their keys were first recorded ([] if none)."""

    @abstractmethod
    async def listeners_for(self, types: Sequence[str]) -> list[ListenerRecord]:
        """The listener rows that may want an event of one of ``types``: those of exactly
        such a type, and those that see every event (``event_type`` None)."""

    @abstractmethod
    async def deliver(self, deliveries: Sequence[tuple[str, str, dict[str, Any]]]) -> set[str]:
        """Append each ``(run_id, key, event)`` to the inbox of the listener ``key`` of the run,
        numbered 0, 1, 2... per listener in the order given. An event already in that inbox
        (the same ``source`` and ``id``) is skipped, and so is a listener that is no longer
        registered (the run moved on, finished, or was pruned). The ids of the runs that got
        at least one new event. Raise InvalidRecord (nothing delivered) for an event without
        an ``id``."""

    @abstractmethod
    async def inbox(self, run_id: str, key: str, start: int = 0) -> list[dict[str, Any]]:
        """The events delivered to a listener, from number ``start`` on, in order."""

    @abstractmethod
    async def due_runs(self, now: float, limit: int = 100) -> list[str]:
        """The ids of waiting runs whose ``wake_at`` is at or before ``now``, earliest first."""

    @abstractmethod
    async def take_outbox(self, limit: int = 100) -> list[dict[str, Any]]:
        """Emitted events still to publish, oldest first (one step's in the order it emitted
        them). They stay until :meth:`drop_outbox`: take, publish, drop."""

    @abstractmethod
    async def drop_outbox(self, ids: Sequence[str]) -> None:
        """Forget the published events ``ids`` (unknown ids are ignored)."""

    @abstractmethod
    async def prune_runs(self, older_than: float) -> int:
        """Delete the final runs (completed, faulted, cancelled) that finished before the epoch
        time ``older_than``, with their steps, listeners and inboxes, in small transactions;
        how many runs. Unfinished runs are kept, however old. (The outbox is not touched: its
        events go when they are published.)"""


class AdminStore(ABC):
    """What the admin API reads and keeps. Pages are newest first, at most ``limit`` records
    strictly after the key ``after`` (the last record of the previous page) in that order; see
    :mod:`ghapplets.store.listing` for each list's key."""

    @abstractmethod
    async def page_deliveries(
        self, f: DeliveryFilter, after: DeliveryKey | None, limit: int
    ) -> list[DeliveryRecord]:
        """Deliveries without their bodies and headers (``body`` empty, ``headers`` {}):
        :meth:`HistoryStore.get_delivery` has them."""

    @abstractmethod
    async def page_jobs(self, f: JobFilter, after: JobKey | None, limit: int) -> list[JobRecord]:
        """Jobs, newest first by when they were created."""

    @abstractmethod
    async def attempt_times(self, since: float, limit: int) -> list[AttemptTime]:
        """How long the attempts that finished at or after ``since`` ran, newest first."""

    @abstractmethod
    async def page_dead_letters(
        self, f: DeadLetterFilter, after: DeadLetterKey | None, limit: int
    ) -> list[DeadLetterRecord]: ...

    @abstractmethod
    async def dead_letter(self, job_id: str) -> DeadLetterRecord | None:
        """The dead letter of a job, or None when it is not dead."""

    @abstractmethod
    async def page_runs(self, f: RunFilter, after: RunKey | None, limit: int) -> list[RunRecord]:
        """Runs without their definitions (``definition`` {}): :meth:`RunStore.get_run`."""

    @abstractmethod
    async def delivery_jobs(self, source: str, delivery_id: str, limit: int) -> list[JobRecord]:
        """The jobs of one delivery, oldest first."""

    @abstractmethod
    async def run_listeners(self, run_id: str) -> list[ListenerRecord]:
        """What a run listens for now (its listener rows; [] when none or no such run)."""

    @abstractmethod
    async def create_api_token(self, record: ApiTokenRecord) -> None:
        """Keep a new token. A token of that name that is not revoked raises
        :class:`~ghapplets.exceptions.AlreadyExists`; a revoked one is replaced."""

    @abstractmethod
    async def api_token(self, token_id: str) -> ApiTokenRecord:
        """The token of that id; NotFound when unknown."""

    @abstractmethod
    async def api_tokens(self) -> list[ApiTokenRecord]:
        """Every token, revoked ones too, by name."""

    @abstractmethod
    async def revoke_api_token(self, name: str, at: float) -> ApiTokenRecord:
        """Mark the token ``name`` revoked at ``at`` (a revoked one keeps its first time); it
        as stored now. NotFound when unknown."""

    @abstractmethod
    async def touch_api_token(self, token_id: str, at: float) -> None:
        """Set the token's ``last_used_at`` to ``at`` (if later)."""

    @abstractmethod
    async def record_audit(self, record: AuditRecord) -> None:
        """Append an audit line; one whose id is stored already is left as it is."""

    @abstractmethod
    async def page_audit(
        self, f: AuditFilter, after: AuditKey | None, limit: int
    ) -> list[AuditRecord]: ...

    @abstractmethod
    async def prune_audit(self, older_than: float) -> int:
        """Delete the audit lines before the epoch time ``older_than``, in small
        transactions; how many."""

    @abstractmethod
    async def create_session(self, record: SessionRecord) -> None:
        """Keep a new dashboard session (its id is unique: a clash raises AlreadyExists)."""

    @abstractmethod
    async def get_session(self, session_id: str, now: float) -> SessionRecord | None:
        """The session of that id if it has not expired at ``now``, else None."""

    @abstractmethod
    async def delete_session(self, session_id: str) -> bool:
        """End a session; whether there was one."""

    @abstractmethod
    async def prune_sessions(self, now: float) -> int:
        """Delete the sessions expired at ``now``; how many."""


class Store(HistoryStore, RunStore, AdminStore, ABC):
    """The history database: deliveries, jobs and their attempts, blueprint runs, and the admin
    API's tokens and audit log (both backends keep them in one database)."""
