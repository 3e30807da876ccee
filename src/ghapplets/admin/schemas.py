"""The admin API's answers as pydantic models: what the handlers return and what the OpenAPI
document describes (generated from these, so the two cannot drift apart)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ghapplets.store.records import (
    AttemptOutcome,
    AuditOutcome,
    DeliveryStatus,
    JobStatus,
    Role,
    RunStatus,
)


class Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class ParameterError(Model):
    parameter: str
    message: str


class Problem(Model):
    """An error (RFC 9457)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    parameter: str | None = Field(None, description="the query parameter or body field at fault")
    errors: list[ParameterError] | None = None


class DeliverySummary(Model):
    source: str
    id: str
    type: str
    subject: str | None
    time: str
    received_at: float
    status: DeliveryStatus
    jobs_total: int
    jobs_succeeded: int
    jobs_dead: int


class JobSummary(Model):
    id: str
    source: str
    delivery_id: str
    applet: str
    status: JobStatus
    attempts: int
    created_at: float
    updated_at: float
    next_attempt_at: float | None
    error_type: str | None
    error_message: str | None


class AppletTime(Model):
    applet: str
    finished_at: float
    seconds: float = Field(description="how long the attempt ran: the applet's own time")


class AppletTimes(Model):
    items: list[AppletTime] = Field(description="newest first")
    capped: bool = Field(description="true: more attempts finished since; raise limit")


class DeliveryDetail(DeliverySummary):
    attributes: dict[str, Any] = Field(description="the CloudEvent's attributes")
    headers: dict[str, str] = Field(
        description="the vendor's verified headers; credentials are never stored or shown"
    )
    payload: Any = Field(description="the event's data (JSON), or its text; null if redacted")
    payload_redacted: bool
    payload_note: str | None = None
    jobs: list[JobSummary]


class Attempt(Model):
    number: int
    started_at: float
    finished_at: float
    outcome: AttemptOutcome
    error_type: str | None
    error_message: str | None
    logs: list[str]


class DeadLetter(Model):
    job_id: str
    source: str
    delivery_id: str
    applet: str
    reason: str
    dead_at: float


class JobDetail(JobSummary):
    result: Any = None
    attempt_log: list[Attempt]
    dead_letter: DeadLetter | None = None


class Page(Model):
    next_cursor: str | None = Field(description="give it as cursor for the next page; null: last")
    limit: int


class DeliveryPage(Page):
    items: list[DeliverySummary]


class JobPage(Page):
    items: list[JobSummary]


class DeadLetterPage(Page):
    items: list[DeadLetter]


class Subscription(Model):
    type: str
    when: str | None = None


class RetryPolicy(Model):
    max_attempts: int
    initial_delay: float
    max_delay: float
    factor: float


class Applet(Model):
    name: str
    runtime: str
    description: str | None
    enabled: bool
    on: list[Subscription]
    secrets: list[str] = Field(description="the secret names it may read (never values)")
    connectors: list[str]
    timeout: float
    concurrency: int
    retry: RetryPolicy


class AppletList(Model):
    items: list[Applet]


class Source(Model):
    name: str
    kind: str
    description: str | None
    path: str = Field(description="where its webhooks are POSTed, on the webhook port")
    redact_payload: bool
    replay_protection: bool


class SourceList(Model):
    items: list[Source]


class BlueprintSummary(Model):
    namespace: str
    name: str
    version: str
    digest: str
    dsl: str
    file: str | None
    tasks: list[str] = Field(description="the names of its top-level tasks, in order")
    schedule: dict[str, Any] | None


class BlueprintDetail(BlueprintSummary):
    definition: dict[str, Any]


class BlueprintList(Model):
    items: list[BlueprintSummary]


class RunSummary(Model):
    id: str
    namespace: str
    name: str
    version: str
    digest: str
    status: RunStatus
    started_at: float
    updated_at: float
    finished_at: float | None
    wake_at: float | None
    trigger: str | None
    resumes: int
    error: dict[str, Any] | None


class RunPage(Page):
    items: list[RunSummary]


class Listener(Model):
    """What a waiting run listens for, and until when."""

    key: str = Field(description="the listen step")
    event_types: list[str] = Field(description="the exact event types; empty with any_type")
    any_type: bool = Field(description="some filter does not name one exact type")
    filters: list[dict[str, Any]]
    since: float
    until: float | None = Field(description="when the run's timer (a timeout) is due, if any")


class RunDetail(RunSummary):
    input: Any
    output: Any
    steps: list[dict[str, Any]]
    listeners: list[Listener]


class Health(Model):
    status: str = Field(description="ok, or unavailable when a backend cannot serve")
    checks: dict[str, str]
    queues: dict[str, int | None] = Field(description="messages waiting per stream")
    dead_letters: int | None
    version: str


class SecretName(Model):
    name: str
    scope: str
    created_at: float
    updated_at: float


class SecretNameList(Model):
    backend: str
    items: list[SecretName]


class AuditEntry(Model):
    id: str
    at: float
    actor: str
    action: str
    target: str
    outcome: AuditOutcome
    detail: dict[str, Any] | None


class AuditPage(Page):
    items: list[AuditEntry]


class Token(Model):
    id: str
    name: str
    role: Role
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


class TokenList(Model):
    items: list[Token]


class TokenCreated(Token):
    token: str = Field(description="shown this once: only its hash is stored")


class Replayed(Model):
    jobs: list[JobSummary] = Field(description="the jobs queued again")


class BulkFailure(Model):
    job_id: str
    error: str


class BulkReplayed(Model):
    replayed: list[str] = Field(description="the ids of the jobs queued again")
    failed: list[BulkFailure]
    more: bool = Field(description="more dead letters match than this request replayed")


class RunControlled(Model):
    id: str
    status: RunStatus


class RunStarted(Model):
    id: str = Field(description="the new run's id")
    rerun_of: str
    from_: str = Field(alias="from", serialization_alias="from")

    model_config = ConfigDict(frozen=True, populate_by_name=True)
