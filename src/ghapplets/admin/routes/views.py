"""Records as the API shows them (:mod:`ghapplets.admin.schemas`)."""

from __future__ import annotations

from ghapplets.admin import schemas as s
from ghapplets.store.records import (
    AttemptRecord,
    DeadLetterRecord,
    DeliveryRecord,
    JobRecord,
    RunRecord,
)


def delivery(d: DeliveryRecord) -> s.DeliverySummary:
    return s.DeliverySummary(
        source=d.source,
        id=d.id,
        type=d.type,
        subject=d.subject,
        time=d.time,
        received_at=d.received_at,
        status=d.status,
        jobs_total=d.jobs_total,
        jobs_succeeded=d.jobs_succeeded,
        jobs_dead=d.jobs_dead,
    )


def job(j: JobRecord) -> s.JobSummary:
    return s.JobSummary(
        id=j.id,
        source=j.source,
        delivery_id=j.delivery_id,
        applet=j.applet,
        status=j.status,
        attempts=j.attempts,
        created_at=j.created_at,
        updated_at=j.updated_at,
        next_attempt_at=j.next_attempt_at,
        error_type=j.error_type,
        error_message=j.error_message,
    )


def attempt(a: AttemptRecord) -> s.Attempt:
    return s.Attempt(
        number=a.number,
        started_at=a.started_at,
        finished_at=a.finished_at,
        outcome=a.outcome,
        error_type=a.error_type,
        error_message=a.error_message,
        logs=a.logs,
    )


def dead_letter(d: DeadLetterRecord) -> s.DeadLetter:
    return s.DeadLetter(**d.to_dict())


def run(r: RunRecord) -> s.RunSummary:
    return s.RunSummary(
        id=r.id,
        namespace=r.namespace,
        name=r.name,
        version=r.version,
        digest=r.digest,
        status=r.status,
        started_at=r.started_at,
        updated_at=r.updated_at,
        finished_at=r.finished_at,
        wake_at=r.wake_at,
        trigger=r.trigger,
        resumes=r.resumes,
        error=r.error,
    )
