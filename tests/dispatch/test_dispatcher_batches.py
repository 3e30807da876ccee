"""One dispatch at a time, on the real embedded broker and store: an event dispatched again (its
ack was lost) queues only the jobs still to run and logs how many it left out; the bodies of
the deliveries with jobs go into the body cache for the worker; ``stop`` ends the loop soon."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from structlog.testing import capture_logs

from ghapplets.applets.loader import discover
from ghapplets.applets.matching import Matcher
from ghapplets.broker.base import Message
from ghapplets.broker.sqlite import SqliteBroker
from ghapplets.dispatch import messages as m
from ghapplets.dispatch.bodies import BodyCache
from ghapplets.dispatch.dispatcher import Dispatcher
from ghapplets.events import CloudEvent
from ghapplets.store.database import Database
from ghapplets.store.records import (
    AttemptOutcome,
    AttemptRecord,
    DeliveryRecord,
    JobStatus,
    JobUpdate,
)
from ghapplets.store.sqlite import SqliteHistoryStore
from tests.conftest import LeaseClock, ProjectBuilder
from tests.dispatch.engine import EVENT_TYPE, until

NOT_QUEUED_AGAIN = "jobs already run or running not queued again"


class CountingStore(SqliteHistoryStore):
    """The real store, counting the reads of deliveries (each read of a body)."""

    reads = 0

    async def get_delivery(self, delivery_id: str, source: str | None = None) -> DeliveryRecord:
        self.reads += 1
        return await super().get_delivery(delivery_id, source)

    async def get_bodies(self, keys: Any) -> dict[tuple[str, str], bytes]:
        self.reads += 1
        return await super().get_bodies(keys)


class Parts:
    def __init__(self, db: Database, broker: SqliteBroker, store: CountingStore, matcher: Matcher):
        self.db, self.broker, self.store, self.matcher = db, broker, store, matcher

    async def publish(self, delivery_id: str, event_type: str = EVENT_TYPE) -> bytes:
        """Store an event as the gateway would; its body."""
        data = {"action": "opened", "issue": {"number": 1}, "delivery": delivery_id}
        event = CloudEvent(id=delivery_id, source="https://github.com/o/r", type=event_type)
        body = orjson.dumps(data)
        ack = await self.broker.publish(m.event_message("github", event, body, {}, time.time()))
        assert not ack.duplicate
        return body

    async def fetch(self, dispatcher: Dispatcher, count: int) -> list[Message]:
        """The next ``count`` events, fetched by the dispatcher's consumer."""
        got: list[Message] = []
        deadline = time.monotonic() + 10
        while len(got) < count:
            assert time.monotonic() < deadline, f"only {len(got)} of {count} events fetched"
            got.extend(await dispatcher.consumer.next_batch(count - len(got), timeout=0.5))
        return got


@pytest.fixture
async def parts(project: ProjectBuilder, tmp_path: Path) -> AsyncIterator[Parts]:
    for name in ("a", "b"):  # two applets on the same event: two jobs per delivery
        project.python_applet(
            name,
            f"from ghapplets import Applet\napp = Applet({name!r})\n\n"
            f"@app.on({EVENT_TYPE!r})\nasync def handle(ctx):\n    return 'ok'\n",
        )
    root = project.build()
    db = Database(tmp_path / "g.db")
    await asyncio.to_thread(db.open)
    broker = SqliteBroker(db, consume=True, poll_interval=0.05, clock=LeaseClock())
    await broker.start()
    try:
        yield Parts(db, broker, CountingStore(db), Matcher(discover([root / "applets"])))
    finally:
        await broker.close()
        await asyncio.to_thread(db.close)


async def succeed(store: SqliteHistoryStore, job_id: str) -> None:
    now = time.time()
    record = AttemptRecord(job_id, 1, now, now, AttemptOutcome.OK)
    await store.job_finished(JobUpdate(job_id, JobStatus.SUCCEEDED, record, result="ok"))


async def test_an_event_dispatched_again_queues_only_the_jobs_still_to_run(parts: Parts) -> None:
    dispatcher = Dispatcher(parts.broker, parts.store, parts.matcher)
    await parts.publish("d-1")
    [event] = await parts.fetch(dispatcher, 1)
    with capture_logs() as first:
        await dispatcher.dispatch([event])
    assert [e for e in first if e["event"] == NOT_QUEUED_AGAIN] == []  # nothing left out
    assert await parts.broker.depth(m.JOBS) == 2
    assert await parts.broker.depth(m.EVENTS) == 0

    # job a ran to the end; b is still queued: a redelivery of the event (its ack lost)
    await succeed(parts.store, "github:d-1:a")
    with capture_logs() as second:
        await dispatcher.dispatch([event])
    assert [e for e in second if e["event"] == NOT_QUEUED_AGAIN] == [
        {"event": NOT_QUEUED_AGAIN, "log_level": "info", "jobs": 1}
    ]
    jobs = {j.applet: j.status for j in await parts.store.list_jobs(delivery_id="d-1")}
    assert jobs == {"a": JobStatus.SUCCEEDED, "b": JobStatus.QUEUED}  # a is not queued again
    assert await parts.broker.depth(m.JOBS) == 2  # b's message again is a duplicate


async def test_the_bodies_of_deliveries_with_jobs_are_cached_for_the_worker(
    parts: Parts,
) -> None:
    bodies = BodyCache(parts.store)
    dispatcher = Dispatcher(parts.broker, parts.store, parts.matcher, bodies=bodies)
    matched = await parts.publish("d-1")
    await parts.publish("d-2", "com.github.push")  # no applet: no job, nothing to cache
    await dispatcher.dispatch(await parts.fetch(dispatcher, 2))
    assert (await parts.store.get_delivery("d-2")).jobs_total == 0
    parts.store.reads = 0
    assert (len(bodies), bodies.size) == (1, len(matched))
    assert await bodies.get("github", "d-1") == matched
    assert parts.store.reads == 0  # from memory, under the delivery's source and id


async def test_without_a_body_cache_dispatch_still_records_and_queues(parts: Parts) -> None:
    dispatcher = Dispatcher(parts.broker, parts.store, parts.matcher)
    assert dispatcher.bodies is None
    await parts.publish("d-1")
    await dispatcher.dispatch(await parts.fetch(dispatcher, 1))
    assert (await parts.store.get_delivery("d-1")).jobs_total == 2
    assert await parts.broker.depth(m.JOBS) == 2


async def test_stop_ends_the_dispatch_loop_within_half_a_second(parts: Parts) -> None:
    """The loop looks for events half a second at a time and checks for a stop in between:
    a stop just after a batch ends it within about half a second. The bound leaves a loaded
    machine most of a second of slack, and still fails a loop that waits 1.5 s a time."""
    dispatcher = Dispatcher(parts.broker, parts.store, parts.matcher)
    task = asyncio.create_task(dispatcher.run())
    try:
        await parts.publish("d-1")

        async def acked() -> bool:
            return await parts.broker.depth(m.EVENTS) == 0

        await until(acked, "the event dispatched")  # the loop waits for the next batch now
        stopped = time.monotonic()
        dispatcher.stop()
        await asyncio.wait_for(asyncio.shield(task), timeout=5)
        took = time.monotonic() - stopped
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert took < 1.4, f"the loop ended {took:.2f} s after stop()"
