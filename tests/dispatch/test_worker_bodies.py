"""Where the worker gets the bodies of the jobs it fetched, on real components
(:mod:`tests.dispatch.engine`): a worker that did not dispatch them (nothing in memory) reads
the bodies of a batch in one query; if that fails, it logs so and each job reads its own."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from structlog.testing import capture_logs

from ghapplets.dispatch import messages as m
from ghapplets.dispatch.bodies import BodyCache
from ghapplets.dispatch.messages import EVENTS, JOBS
from ghapplets.events import CloudEvent
from ghapplets.exceptions import StoreUnavailable
from ghapplets.store.records import DeliveryRecord, JobStatus
from ghapplets.store.sqlite import SqliteHistoryStore
from tests.conftest import LeaseClock, ProjectBuilder
from tests.dispatch.engine import EVENT_TYPE, Engine, running, runs_logged, until

DELIVERIES = ("d-1", "d-2", "d-3")


class CountingStore(SqliteHistoryStore):
    """The real store, counting its body reads: one delivery at a time, or a batch of them;
    with ``fail_batches`` set, a batch read fails (a database that went away for a moment)."""

    single: list[tuple[str, str | None]] = []  # shared with the test through the class
    batches: list[list[tuple[str, str]]] = []
    fail_batches = False

    async def get_delivery(self, delivery_id: str, source: str | None = None) -> DeliveryRecord:
        self.single.append((delivery_id, source))
        return await super().get_delivery(delivery_id, source)

    async def get_bodies(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], bytes]:
        self.batches.append(sorted(keys))
        if self.fail_batches:
            raise StoreUnavailable("the database is locked")
        return await super().get_bodies(keys)


async def run_batch(
    project: ProjectBuilder, tmp_path: Path, *, fail: bool, deliveries: Sequence[str] = DELIVERIES
) -> None:
    """Queue a job per delivery with the worker stopped, then start a worker with an empty
    body cache (a replica that did not dispatch them): it fetches them all in one batch."""
    runs_logged(project, "effect", tmp_path / "runs.log")
    CountingStore.single, CountingStore.batches, CountingStore.fail_batches = [], [], fail
    engine = Engine(project.build(), tmp_path / "g.db", LeaseClock(), store_class=CountingStore)
    async with running(engine, worker=False):
        for n, delivery_id in enumerate(deliveries):
            await engine.publish_event(delivery_id, n)

        async def queued() -> bool:
            return await engine.broker.depth(EVENTS) == 0 and await engine.broker.depth(
                JOBS
            ) == len(deliveries)

        await until(queued, "the jobs queued")
        assert engine.worker is not None
        engine.worker.bodies = BodyCache(engine.store)
        CountingStore.single.clear()
        engine.start_worker()

        async def done() -> bool:
            jobs = await engine.store.list_jobs(limit=10)
            finished = [j for j in jobs if j.status == JobStatus.SUCCEEDED]
            return len(finished) == len(deliveries) and await engine.broker.depth(JOBS) == 0

        await until(done, "the jobs succeeded")


async def test_a_batch_of_jobs_reads_its_bodies_in_one_query(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    await run_batch(project, tmp_path, fail=False)
    assert CountingStore.batches == [[("github", d) for d in DELIVERIES]]
    assert CountingStore.single == []  # no job read its body on its own


async def test_two_jobs_are_a_batch_and_one_job_reads_its_own_body(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    await run_batch(project, tmp_path / "two", fail=False, deliveries=DELIVERIES[:2])
    assert CountingStore.batches == [[("github", d) for d in DELIVERIES[:2]]]
    assert CountingStore.single == []
    await run_batch(project, tmp_path / "one", fail=False, deliveries=DELIVERIES[:1])
    assert CountingStore.batches == []  # one job: no batch query to save
    assert CountingStore.single == [("d-1", "github")]


async def test_a_failed_batch_read_is_logged_and_each_job_reads_its_own_body(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    with capture_logs() as logs:
        await run_batch(project, tmp_path, fail=True)
    assert CountingStore.batches == [[("github", d) for d in DELIVERIES]]
    assert sorted(CountingStore.single) == [(d, "github") for d in DELIVERIES]
    warnings: list[dict[str, Any]] = [e for e in logs if e["log_level"] == "warning"]
    assert warnings == [
        {
            "event": "could not read the bodies of a batch",
            "log_level": "warning",
            "jobs": 3,
            "error": "the database is locked",
        }
    ]


ECHO = f"""
from ghapplets import Applet, Context
app = Applet("echo")

@app.on({EVENT_TYPE!r})
async def handle(ctx: Context) -> str:
    return ctx.data["from"]
"""


async def test_one_delivery_id_in_two_sources_gives_each_job_its_own_body(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    project.python_applet("echo", ECHO)
    engine = Engine(project.build(), tmp_path / "g.db", LeaseClock())
    async with running(engine):
        for source in ("github", "gitlab"):
            event = CloudEvent(id="d-1", source=f"https://{source}.example/o/r", type=EVENT_TYPE)
            body = orjson.dumps({"from": source})
            await engine.broker.publish(m.event_message(source, event, body, {}, time.time()))

        async def both_done() -> dict[str, object] | None:
            jobs = await engine.store.list_jobs(delivery_id="d-1")
            done = {j.id: j.result for j in jobs if j.status == JobStatus.SUCCEEDED}
            return done if len(done) == 2 else None

        results = await until(both_done, "both jobs succeeded", timeout=5)
    assert results == {"github:d-1:echo": "github", "gitlab:d-1:echo": "gitlab"}
