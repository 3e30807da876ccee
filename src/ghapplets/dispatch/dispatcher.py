"""The dispatcher: turns each stored event into a delivery record and one job per matching applet.

It consumes the ``events`` stream in batches. For a batch it records the deliveries and jobs in
the store, then publishes the job messages (idempotent: the job id is the message id), and only
then acks the events. A crash anywhere in between redelivers the events, and the dedup on every
write makes the second pass a no-op: exactly once in effect.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from ghapplets.applets.model import AppletSpec
from ghapplets.broker.base import Broker, Message, OutboundMessage
from ghapplets.crashpoints import CrashPoint, reached
from ghapplets.dispatch import messages as m
from ghapplets.dispatch.bodies import BodyCache
from ghapplets.events import CloudEvent
from ghapplets.logging import get_logger
from ghapplets.store.base import HistoryStore
from ghapplets.store.records import DeliveryRecord, DeliveryStatus, JobRecord, JobStatus

if TYPE_CHECKING:
    from ghapplets.dispatch.runs import RunDriver

log = get_logger("ghapplets.dispatcher")


class Matches(Protocol):
    @property
    def needs_data(self) -> bool: ...

    def match(self, event: CloudEvent) -> list[AppletSpec]: ...


def plan(
    message: Message, matcher: Matches, now: float
) -> tuple[DeliveryRecord, list[JobRecord], list[OutboundMessage]]:
    """The delivery, its jobs and their messages for one event message (no I/O)."""
    headers = message.headers
    source = headers[m.H_SOURCE]
    try:
        event = m.event_of(message, with_data=matcher.needs_data)
        specs = matcher.match(event)
    except Exception as exc:  # a corrupt message must not stop the pipeline
        log.error("event unreadable, recorded without jobs", error=str(exc), seq=message.seq)
        event, specs = None, []
    attrs: dict[str, Any] = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
    delivery_id = attrs.get("id", message.msg_id)
    delivery = DeliveryRecord(
        source=source,
        id=delivery_id,
        type=attrs.get("type", "unknown"),
        subject=attrs.get("subject"),
        time=attrs.get("time", ""),
        received_at=float(headers.get(m.H_RECEIVED_AT, now)),
        status=DeliveryStatus.DISPATCHED if specs else DeliveryStatus.UNMATCHED,
        attributes=attrs,
        headers=orjson.loads(headers.get(m.H_VENDOR_HEADERS, "{}")),
        body=message.data,
        jobs_total=len(specs),
    )
    jobs = [
        JobRecord(
            id=m.job_id(source, delivery_id, spec.name),
            source=source,
            delivery_id=delivery_id,
            applet=spec.name,
            status=JobStatus.QUEUED,
            created_at=now,
            updated_at=now,
        )
        for spec in specs
    ]
    outbound = [m.job_message(headers, source, delivery_id, spec.name) for spec in specs]
    if event is not None and specs:
        log.debug(
            "event dispatched",
            delivery_id=delivery_id,
            type=event.type,
            applets=[s.name for s in specs],
        )
    return delivery, jobs, outbound


class Dispatcher:
    def __init__(
        self,
        broker: Broker,
        store: HistoryStore,
        matcher: Matches,
        *,
        batch: int = 256,
        bodies: BodyCache | None = None,
        runs: RunDriver | None = None,
    ) -> None:
        self.bodies = bodies
        self.runs = runs  # blueprints: the runs events start, the listeners they reach
        self.broker = broker
        self.store = store
        self.matcher = matcher
        self.batch = batch
        self.consumer = broker.consumer(m.EVENTS)
        self._stopping = asyncio.Event()

    async def dispatch(self, batch: list[Message]) -> None:
        deliveries: list[DeliveryRecord] = []
        jobs: list[JobRecord] = []
        outbound: list[OutboundMessage] = []
        now = time.time()
        for message in batch:
            d, j, o = plan(message, self.matcher, now)
            deliveries.append(d)
            jobs.extend(j)
            outbound.extend(o)
        # the delivery (which holds the body) is durable before any job message names it
        to_run = await self.store.record_dispatch(deliveries, jobs)
        reached(CrashPoint.DISPATCH_RECORDED)
        if self.runs is not None:
            await self.runs.on_batch(batch)
        if len(to_run) < len(jobs):
            outbound = [o for o in outbound if o.headers[m.H_JOB_ID] in to_run]
            log.info("jobs already run or running not queued again", jobs=len(jobs) - len(to_run))
        if self.bodies is not None:
            for d in deliveries:
                if d.jobs_total:
                    self.bodies.put(d.source, d.id, d.body)
        await self.broker.publish_many(outbound)
        reached(CrashPoint.DISPATCH_QUEUED)
        await asyncio.gather(*(self.consumer.ack(msg) for msg in batch))
        reached(CrashPoint.DISPATCH_ACKNOWLEDGED)

    async def run(self) -> None:
        while not self._stopping.is_set():
            batch = await self.consumer.next_batch(self.batch, timeout=0.5)
            if not batch:
                continue
            reached(CrashPoint.DISPATCH_FETCHED)
            try:
                await self.dispatch(batch)
            except Exception as exc:
                log.error("dispatch failed; events will be redelivered", error=str(exc))
                for msg in batch:
                    await self._safe_nak(msg)

    async def _safe_nak(self, msg: Message) -> None:
        try:
            await self.consumer.nak(msg, 1.0)
        except Exception as exc:
            log.error("could not nak event", error=str(exc), seq=msg.seq)

    def stop(self) -> None:
        self._stopping.set()
