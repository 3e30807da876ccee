"""Replays against the records, on the real embedded broker and store: the stored event comes
back whole (its JSON data and content type), a replay takes the delivery of the source it names
(one delivery id can exist in two sources) and that delivery's own jobs, every job of a delivery
with more jobs than a page of the store's listings, and each replay reaches its crash point."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from ghapplets.applets.loader import discover
from ghapplets.applets.matching import Matcher
from ghapplets.broker.base import Message
from ghapplets.broker.sqlite import SqliteBroker
from ghapplets.crashpoints import CrashPoint, reached
from ghapplets.dispatch import messages as m
from ghapplets.dispatch.dispatcher import Dispatcher
from ghapplets.dispatch.replay import delivery_event, replay_delivery, replay_job
from ghapplets.events import CloudEvent
from ghapplets.exceptions import NotFound
from ghapplets.store.database import Database
from ghapplets.store.records import AttemptOutcome, AttemptRecord, JobStatus, JobUpdate
from ghapplets.store.sqlite import SqliteHistoryStore
from tests.conftest import LeaseClock, ProjectBuilder
from tests.dispatch.engine import EVENT_TYPE

ORIGINS = {"github": "https://github.com/o/r", "gitlab": "https://gitlab.example/o/r"}


def add_applets(project: ProjectBuilder, *names: str) -> None:
    for name in names:
        project.python_applet(
            name,
            f"from ghapplets import Applet\napp = Applet({name!r})\n\n"
            f"@app.on({EVENT_TYPE!r})\nasync def handle(ctx):\n    return 'ok'\n",
        )


class Records:
    """The broker and store of one data folder; events dispatched by the real dispatcher."""

    def __init__(self, root: Path, broker: SqliteBroker, store: SqliteHistoryStore) -> None:
        self.root, self.broker, self.store = root, broker, store

    def matcher(self) -> Matcher:
        """The applets installed now."""
        return Matcher(discover([self.root / "applets"]))

    async def dispatch(self, *keys: tuple[str, str]) -> None:
        """Publish an ``issues.opened`` event per (source, delivery id), dispatch them all,
        and run each job to success (one attempt)."""
        dispatcher = Dispatcher(self.broker, self.store, self.matcher())
        for source, delivery_id in keys:
            data = {"action": "opened", "source": source, "delivery": delivery_id}
            event = CloudEvent(id=delivery_id, source=ORIGINS[source], type=EVENT_TYPE)
            message = m.event_message(source, event, orjson.dumps(data), {}, time.time())
            assert not (await self.broker.publish(message)).duplicate
        await dispatcher.dispatch(await fetch(dispatcher.consumer, len(keys)))
        for job in await self.store.list_jobs(limit=10_000):
            now = time.time()
            attempt = AttemptRecord(job.id, 1, now, now, AttemptOutcome.OK)
            await self.store.job_finished(JobUpdate(job.id, JobStatus.SUCCEEDED, attempt))

    async def job_messages(self, count: int) -> list[Message]:
        """The next ``count`` job messages (leased, never settled: the test only looks)."""
        return await fetch(self.broker.consumer(m.JOBS), count)


async def fetch(consumer: object, count: int) -> list[Message]:
    got: list[Message] = []
    deadline = time.monotonic() + 10
    while len(got) < count:
        assert time.monotonic() < deadline, f"only {len(got)} of {count} messages"
        got.extend(await consumer.next_batch(count - len(got), timeout=0.5))  # type: ignore[attr-defined]
    return got


@pytest.fixture
async def records(project: ProjectBuilder, tmp_path: Path) -> AsyncIterator[Records]:
    add_applets(project, "a", "b")
    root = project.build()
    db = Database(tmp_path / "g.db")
    await asyncio.to_thread(db.open)
    broker = SqliteBroker(db, consume=True, poll_interval=0.05, clock=LeaseClock())
    await broker.start()
    try:
        yield Records(root, broker, SqliteHistoryStore(db))
    finally:
        await broker.close()
        await asyncio.to_thread(db.close)


async def test_the_stored_event_comes_back_with_its_json_data(records: Records) -> None:
    await records.dispatch(("github", "d-1"))
    event = delivery_event(await records.store.get_delivery("d-1"))
    assert (event.id, event.source, event.type) == ("d-1", ORIGINS["github"], EVENT_TYPE)
    assert event.datacontenttype == "application/json"
    assert event.data == {"action": "opened", "source": "github", "delivery": "d-1"}

    job = await replay_job(records.store, records.broker, "github:d-1:a")
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 1)
    [_, _, replayed] = await records.job_messages(3)  # after the first run's two
    assert replayed.headers["content-type"] == "application/json"
    assert replayed.headers["ce-id"] == "d-1"
    assert replayed.headers[m.H_ATTEMPT_OFFSET] == "1"
    assert replayed.msg_id.startswith("github:d-1:a#replay-")


async def test_a_replay_takes_the_delivery_of_the_source_it_names(records: Records) -> None:
    """The same delivery id from two sources: a replay naming one touches only its jobs, and
    a job's replay carries its own delivery's event."""
    await records.dispatch(("github", "d-1"), ("gitlab", "d-1"))
    with pytest.raises(NotFound, match="several sources"):
        await replay_delivery(records.store, records.broker, records.matcher(), "d-1")

    queued = await replay_delivery(
        records.store, records.broker, records.matcher(), "d-1", source="gitlab"
    )
    assert sorted((j.id, j.status, j.attempts) for j in queued) == [
        ("gitlab:d-1:a", JobStatus.QUEUED, 1),
        ("gitlab:d-1:b", JobStatus.QUEUED, 1),
    ]
    replayed = (await records.job_messages(6))[4:]  # after the first runs' four
    assert sorted((r.headers[m.H_JOB_ID], r.headers["ce-source"]) for r in replayed) == [
        ("gitlab:d-1:a", ORIGINS["gitlab"]),
        ("gitlab:d-1:b", ORIGINS["gitlab"]),
    ]
    jobs = {j.id: j.status for j in await records.store.list_jobs(delivery_id="d-1")}
    assert jobs == {
        "github:d-1:a": JobStatus.SUCCEEDED,  # the other source's jobs are left as they were
        "github:d-1:b": JobStatus.SUCCEEDED,
        "gitlab:d-1:a": JobStatus.QUEUED,
        "gitlab:d-1:b": JobStatus.QUEUED,
    }

    job = await replay_job(records.store, records.broker, "github:d-1:b")
    assert (job.source, job.attempts) == ("github", 1)
    [message] = await records.job_messages(1)
    assert (message.headers[m.H_SOURCE], message.headers["ce-source"]) == (
        "github",
        ORIGINS["github"],
    )


async def test_a_replay_requeues_its_deliverys_own_jobs(records: Records) -> None:
    await records.dispatch(("github", "d-1"), ("github", "d-2"))
    for delivery_id in ("d-1", "d-2"):
        queued = await replay_delivery(
            records.store, records.broker, records.matcher(), delivery_id
        )
        assert sorted((j.id, j.attempts) for j in queued) == [
            (f"github:{delivery_id}:a", 1),
            (f"github:{delivery_id}:b", 1),
        ]
    assert await records.broker.depth(m.JOBS) == 8  # four first runs, four replays


async def test_a_replay_requeues_every_job_of_a_delivery_with_more_than_fifty(
    project: ProjectBuilder, records: Records
) -> None:
    """More jobs than a page of the store's job listing (50 by default): each is replayed as
    the job it is (its attempts kept, a fresh message), none is taken for a new one."""
    add_applets(project, *(f"extra-{i:02}" for i in range(50)))
    await records.dispatch(("github", "d-1"))
    assert (await records.store.get_delivery("d-1")).jobs_total == 52
    queued = await replay_delivery(records.store, records.broker, records.matcher(), "d-1")
    assert len(queued) == 52
    assert {(j.status, j.attempts) for j in queued} == {(JobStatus.QUEUED, 1)}
    assert await records.broker.depth(m.JOBS) == 2 * 52  # each job's message, and its replay


async def test_each_replay_reaches_its_crash_point(
    project: ProjectBuilder, records: Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replaying a delivery requeues each existing job (a point each) and then, having
    recorded the jobs of applets installed since, reaches the point once for them."""
    await records.dispatch(("github", "d-1"))
    add_applets(project, "c")  # installed after the delivery was handled: a new job
    seen: list[object] = []

    def record(point: CrashPoint) -> None:
        seen.append(point)
        reached(point)

    monkeypatch.setattr("ghapplets.dispatch.replay.reached", record)
    queued = await replay_delivery(records.store, records.broker, records.matcher(), "d-1")
    assert sorted((j.applet, j.attempts) for j in queued) == [("a", 1), ("b", 1), ("c", 0)]
    assert seen == [CrashPoint.REPLAY_QUEUED] * 3
