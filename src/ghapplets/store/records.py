"""The store's vocabulary: statuses as closed sets, and the records every layer shares.

Records are plain dataclasses so the dispatcher, workers, CLI and API share one vocabulary.
Statuses are :class:`~enum.StrEnum` members; they are stored as their string values and passed to
SQL as parameters, never spelled out in queries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum, StrEnum
from typing import Any, ClassVar, Final


class Record:
    """A record the CLI prints with ``--json``: its fields as a dict."""

    __slots__ = ()
    __dataclass_fields__: ClassVar[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    DEAD = "dead"

    @property
    def final(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.DEAD)


class RunStatus(StrEnum):
    """A blueprint run's phase, as the Serverless Workflow DSL names them."""

    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    SUSPENDED = "suspended"
    CANCELLED = "cancelled"
    FAULTED = "faulted"
    COMPLETED = "completed"

    @property
    def final(self) -> bool:
        return self in FINAL_RUN_STATUSES


FINAL_RUN_STATUSES: Final = frozenset((RunStatus.CANCELLED, RunStatus.FAULTED, RunStatus.COMPLETED))


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
class JobRecord(Record):
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


@dataclass(slots=True)
class AttemptRecord(Record):
    job_id: str
    number: int
    started_at: float
    finished_at: float
    outcome: AttemptOutcome
    error_type: str | None = None
    error_message: str | None = None
    logs: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AttemptTime:
    """How long one attempt of an applet ran (the admin API's applet times)."""

    applet: str
    finished_at: float
    seconds: float


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
class SecretReadRecord(Record):
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


# -- blueprint runs ----------------------------------------------------------------------------
# The longest keys and names the run store keeps, in bytes of UTF-8 (what PostgreSQL's index
# entries are measured in: an entry of at most 2,704 bytes, which the widest index here, the
# inbox's (run_id, key, event_source, event_id), stays under). Longer ones, or ones with a NUL
# character, are refused with InvalidRecord.
RUN_ID_MAX: Final = 128
BLUEPRINT_NAME_MAX: Final = 255  # namespace, name and version each
DIGEST_MAX: Final = 128
TRIGGER_MAX: Final = 1024
STEP_KEY_MAX: Final = 1024
EVENT_ID_MAX: Final = 512  # an event's id, and its source
EVENT_TYPE_MAX: Final = 512


class Unchanged(Enum):
    """The type of :data:`UNCHANGED`."""

    UNCHANGED = "unchanged"

    def __repr__(self) -> str:
        return "UNCHANGED"


# "leave this field as it is" in RunStore.update_run, where None means "set it to NULL"
UNCHANGED: Final = Unchanged.UNCHANGED


@dataclass(slots=True, kw_only=True)
class RunRecord(Record):
    """A blueprint run: the definition it is pinned to (``digest`` names that exact text, so a
    blueprint edited while it runs does not change it), where it is, and what it ended with.

    ``wake_at``: when a ``waiting`` run is due again (a timer); ``trigger``: what started it (a
    delivery id, ``cli``, a parent run); ``resumes``: how often it was taken up again after it
    waited. ``input``, ``output`` and ``error`` are JSON values."""

    id: str
    namespace: str
    name: str
    version: str
    digest: str
    definition: dict[str, Any] = field(repr=False)
    status: RunStatus
    input: Any
    output: Any = None
    error: dict[str, Any] | None = None
    started_at: float
    updated_at: float
    finished_at: float | None = None
    wake_at: float | None = None
    trigger: str | None = None
    resumes: int = 0


@dataclass(slots=True, kw_only=True)
class ListenerRecord:
    """One row of a run's listener (the listen step ``key``): a listener is stored as one row
    per exact CloudEvent type it can take, or as one row with ``event_type`` None when some
    filter does not name one exact type (every event is then a candidate). Each row carries the
    listener's whole ``filters`` (JSON), which the run applies to the candidates it is given."""

    run_id: str
    key: str
    event_type: str | None
    filters: list[dict[str, Any]]
    created_at: float


# -- the admin API: tokens and the audit log ----------------------------------------------------
class Role(StrEnum):
    """What an admin API caller may do: a closed set, ordered from least to most."""

    VIEWER = "viewer"  # reads (payloads only where the source allows it)
    OPERATOR = "operator"  # also replays and steers runs
    ADMIN = "admin"  # also manages tokens and sees secret names

    @property
    def rank(self) -> int:
        return _ROLE_ORDER.index(self)


_ROLE_ORDER: Final = (Role.VIEWER, Role.OPERATOR, Role.ADMIN)


class AuditOutcome(StrEnum):
    """How a change asked for through the admin API ended, as the audit log records it."""

    OK = "ok"  # done
    REFUSED = "refused"  # the record is not in a state that allows it (a run already ended)
    NOT_FOUND = "not_found"  # no such record
    FAILED = "failed"  # a backend could not do it now


TOKEN_NAME_MAX: Final = 64
ACTOR_MAX: Final = 256
TARGET_MAX: Final = 1024


@dataclass(slots=True, kw_only=True)
class ApiTokenRecord:
    """An admin API token: only ``hash`` (the hex SHA-256 of the token) is kept, never the
    token. ``revoked_at`` set: refused from then on."""

    id: str
    name: str
    role: Role
    hash: str = field(repr=False)
    created_at: float
    last_used_at: float | None = None
    revoked_at: float | None = None


@dataclass(slots=True, kw_only=True)
class SessionRecord:
    """A dashboard session: ``id`` is the hex SHA-256 of the secret the browser's cookie holds
    (never the secret); ``name`` and ``role`` are the API token's it signed in with
    (``token_id``); ``csrf`` is the token its forms must carry; it ends at ``expires_at``."""

    id: str
    token_id: str
    name: str
    role: Role
    csrf: str = field(repr=False)
    created_at: float
    expires_at: float


@dataclass(slots=True, kw_only=True)
class AuditRecord(Record):
    """One change made through the admin API (or ``ghapplets tokens``): who (a token's name,
    ``sso:<user>``, ``cli:<user>``), what (``action``, a dotted name such as ``job.replay``),
    on what (``target``), when and how it ended; ``detail`` is JSON (counts, ids, a reason)."""

    id: str
    at: float
    actor: str
    action: str
    target: str
    outcome: AuditOutcome
    detail: dict[str, Any] | None = None


@dataclass(slots=True, kw_only=True)
class DeadLetterRecord(Record):
    """A dead-lettered job: why it died and when."""

    job_id: str
    source: str
    delivery_id: str
    applet: str
    reason: str
    dead_at: float
