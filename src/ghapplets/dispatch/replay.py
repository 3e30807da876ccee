"""Replay: run a delivery's applets again, or one job, from the stored event.

A replayed job keeps its id (its idempotency key) and its attempt history: the new message
carries a fresh message id and the number of attempts made so far, so attempt numbers go on
from where they stopped, with a fresh retry budget.
"""

from __future__ import annotations

import time
import uuid

from ghapplets.applets.matching import Matcher
from ghapplets.broker.base import Broker
from ghapplets.crashpoints import CrashPoint, reached
from ghapplets.dispatch import messages as m
from ghapplets.events import CloudEvent
from ghapplets.store.base import HistoryStore
from ghapplets.store.records import DeliveryRecord, JobRecord, JobStatus


def _event_headers(delivery: DeliveryRecord) -> dict[str, str]:
    headers = {f"ce-{k}": str(v) for k, v in delivery.attributes.items()}
    headers["content-type"] = str(delivery.attributes.get("datacontenttype", "application/json"))
    headers[m.H_RECEIVED_AT] = repr(time.time())
    return headers


def delivery_event(delivery: DeliveryRecord) -> CloudEvent:
    return CloudEvent.from_binary(_event_headers(delivery), delivery.body)


async def replay_job(store: HistoryStore, broker: Broker, job_id: str) -> JobRecord:
    job = await store.get_job(job_id)
    delivery = await store.get_delivery(job.delivery_id, job.source)
    job = await store.requeue_job(job_id)
    reached(CrashPoint.REPLAY_QUEUED)
    await broker.publish(
        m.job_message(
            _event_headers(delivery),
            job.source,
            job.delivery_id,
            job.applet,
            replay=uuid.uuid4().hex[:12],
            attempt_offset=job.attempts,
        )
    )
    return job


async def replay_delivery(
    store: HistoryStore,
    broker: Broker,
    matcher: Matcher,
    delivery_id: str,
    source: str | None = None,
) -> list[JobRecord]:
    """Re-run every applet that matches the stored event now; return the jobs queued."""
    delivery = await store.get_delivery(delivery_id, source)
    event = delivery_event(delivery)
    existing = {
        j.applet: j
        for j in await store.list_jobs(delivery_id=delivery.id, limit=10_000)
        if j.source == delivery.source
    }
    queued: list[JobRecord] = []
    new_jobs: list[JobRecord] = []
    for spec in matcher.match(event):
        if spec.name in existing:
            queued.append(await replay_job(store, broker, existing[spec.name].id))
            continue
        now = time.time()
        new_jobs.append(
            JobRecord(
                id=m.job_id(delivery.source, delivery.id, spec.name),
                source=delivery.source,
                delivery_id=delivery.id,
                applet=spec.name,
                status=JobStatus.QUEUED,
                created_at=now,
                updated_at=now,
            )
        )
    if new_jobs:
        await store.record_dispatch([], new_jobs)
        reached(CrashPoint.REPLAY_QUEUED)
        await broker.publish_many(
            [
                m.job_message(_event_headers(delivery), j.source, j.delivery_id, j.applet)
                for j in new_jobs
            ]
        )
        queued.extend(new_jobs)
    return queued
