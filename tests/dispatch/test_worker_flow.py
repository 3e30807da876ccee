"""The worker's fetch loop and its recovery, on real components (:mod:`tests.dispatch.engine`):
it fetches again whenever a job in flight ends after it reached its in-flight limit, and a job
whose handling failed on a store error goes back to the broker and runs again later."""

from __future__ import annotations

from pathlib import Path

from ghapplets.dispatch.messages import EVENTS, JOBS
from ghapplets.exceptions import StoreUnavailable
from ghapplets.store.records import JobStatus, JobUpdate
from ghapplets.store.sqlite import SqliteHistoryStore
from tests.conftest import LeaseClock, ProjectBuilder
from tests.dispatch.engine import EVENT_TYPE, Engine, running, runs, runs_logged, until

# how many of its jobs run at once, as the applet sees it: each returns the peak it saw
PEAK = f"""
import asyncio
from ghapplets import Applet, Context
app = Applet("peak")
running = 0

@app.on({EVENT_TYPE!r})
async def handle(ctx: Context) -> int:
    global running
    running += 1
    peak = running
    await asyncio.sleep(0.05)
    running -= 1
    return peak
"""


async def test_more_jobs_than_the_inflight_limit_all_run_within_the_limit(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    project.python_applet("peak", PEAK)  # the applet's own concurrency (4) is not the limit
    engine = Engine(project.build(), tmp_path / "g.db", LeaseClock(), max_inflight=2)
    ids = [f"d-{i}" for i in range(7)]
    async with running(engine, worker=False):
        for n, delivery in enumerate(ids):
            await engine.publish_event(delivery, n)

        async def all_queued() -> bool:  # every job waits before the worker starts
            return await engine.broker.depth(EVENTS) == 0 and await engine.broker.depth(
                JOBS
            ) == len(ids)

        await until(all_queued, "the jobs of every event queued")
        engine.start_worker()  # its first fetch fills the limit; the rest must wait their turn

        async def all_done() -> list[int] | None:
            jobs = await engine.store.list_jobs(limit=100)
            if len(jobs) == len(ids) and all(j.status == JobStatus.SUCCEEDED for j in jobs):
                return [j.result for j in jobs]
            return None

        peaks = await until(all_done, f"{len(ids)} jobs succeeded")

        async def all_acked() -> bool:  # a job is recorded as finished, then acknowledged
            return await engine.broker.depth(JOBS) == 0

        await until(all_acked, "every job acknowledged")
    assert max(peaks) == 2, peaks  # the limit was reached, and never passed


class StoreFailingOnce(SqliteHistoryStore):
    """The real store, except that recording the first job outcome fails (a database that
    went away for a moment)."""

    failed: list[str] = []  # shared with the test through the class

    async def job_finished(self, update: JobUpdate) -> None:
        if not self.failed:
            self.failed.append(update.job_id)
            raise StoreUnavailable("the database is locked")
        await super().job_finished(update)


async def test_a_job_whose_outcome_could_not_be_recorded_is_redelivered_and_runs_again(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    """The worker naks the job for a redelivery soon, well before its lease would run out
    (30 s here): moving the clock 10 s on brings it back, and it runs to success."""
    log = tmp_path / "runs.log"
    runs_logged(project, "effect", log)
    StoreFailingOnce.failed = []
    clock = LeaseClock()
    engine = Engine(
        project.build(), tmp_path / "g.db", clock, store_class=StoreFailingOnce, ack_wait=30.0
    )
    job_id = "github:d-1:effect"
    async with running(engine):
        await engine.publish_event("d-1")

        async def failed() -> bool:  # ran, failed to record, and gave the message back
            assert engine.worker is not None
            return bool(StoreFailingOnce.failed) and engine.worker.inflight == 0

        await until(failed, "the store error")
        assert StoreFailingOnce.failed == [job_id]
        assert runs(log) == [(job_id, 1)]
        job = await engine.job(job_id)
        assert job is not None and not job.status.final  # nothing recorded it as done

        clock.now += 10  # within the lease's 30 s: only a nak brings it back this soon

        async def succeeded() -> bool:
            job = await engine.job(job_id)
            return job is not None and job.status == JobStatus.SUCCEEDED

        await until(succeeded, "the job redelivered and succeeded")
        assert [a.number for a in await engine.store.list_attempts(job_id)] == [2]
        assert await engine.broker.depth(JOBS) == 0
    assert runs(log) == [(job_id, 1), (job_id, 2)]  # at least once: it ran again
