"""A job whose handling fails on the platform's side (the store is down when its outcome is
recorded), on real components (:mod:`tests.dispatch.engine`): the worker puts it back for a
redelivery 5 s later, logs why with the job's correlation fields, and, when even the put-back
fails, logs that too and leaves the job to its lease."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from ghapplets.broker.base import Message
from ghapplets.dispatch.messages import JOBS
from ghapplets.exceptions import BrokerUnavailable, StoreUnavailable
from ghapplets.store.records import JobStatus, JobUpdate
from ghapplets.store.sqlite import SqliteHistoryStore
from tests.conftest import LeaseClock, ProjectBuilder
from tests.dispatch.engine import Engine, runs, runs_logged, until

JOB = "github:d-1:effect"


class StoreDownForOutcomes(SqliteHistoryStore):
    """The real store, except that recording the first ``failures`` job outcomes fails."""

    failures = 1  # set by each test
    failed: list[str] = []

    async def job_finished(self, update: JobUpdate) -> None:
        if len(self.failed) < self.failures:
            self.failed.append(update.job_id)
            raise StoreUnavailable("the database is locked")
        await super().job_finished(update)


def store_down(failures: int) -> type[StoreDownForOutcomes]:
    StoreDownForOutcomes.failures, StoreDownForOutcomes.failed = failures, []
    return StoreDownForOutcomes


def effect_engine(project: ProjectBuilder, tmp_path: Path) -> tuple[Path, LeaseClock, Engine]:
    """The applet ``effect`` (it logs its runs), on a store down for the first outcome."""
    log = tmp_path / "runs.log"
    runs_logged(project, "effect", log)
    clock = LeaseClock()
    engine = Engine(
        project.build(), tmp_path / "g.db", clock, store_class=store_down(1), ack_wait=30.0
    )
    return log, clock, engine


async def failed_times(engine: Engine, count: int) -> None:
    async def probe() -> bool:
        assert engine.worker is not None
        return len(StoreDownForOutcomes.failed) >= count and engine.worker.inflight == 0

    await until(probe, f"{count} failed outcome record(s)")


async def succeeded(engine: Engine) -> None:
    async def probe() -> bool:
        job = await engine.job(JOB)
        return job is not None and job.status == JobStatus.SUCCEEDED

    await until(probe, "the job redelivered and succeeded")


async def test_a_failed_handling_is_put_back_for_five_seconds_and_logged(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    log, clock, engine = effect_engine(project, tmp_path)
    with capture_logs(processors=[merge_contextvars]) as logs:
        try:
            await engine.start()
            await engine.publish_event("d-1")
            await failed_times(engine, 1)
            clock.now += 4.9  # not before its 5 s
            await engine.quiet_looks(JOBS, 3)
            assert runs(log) == [(JOB, 1)]
            clock.now += 0.2
            await succeeded(engine)
        finally:
            await engine.stop()
    assert runs(log) == [(JOB, 1), (JOB, 2)]
    errors = [e for e in logs if e["log_level"] == "error"]
    assert errors == [
        {
            "event": "job handling failed; it will be redelivered",
            "log_level": "error",
            "error": "the database is locked",
            "delivery_id": "d-1",
            "applet": "effect",
            "job_id": JOB,
        }
    ]


async def test_a_failed_put_back_is_logged_and_the_lease_brings_the_job_back(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log, clock, engine = effect_engine(project, tmp_path)
    with capture_logs(processors=[merge_contextvars]) as logs:
        try:
            await engine.start(worker=False)
            assert engine.worker is not None
            consumer = engine.worker.consumer
            real_nak = consumer.nak

            async def nak(message: Message, delay: float) -> None:
                monkeypatch.setattr(consumer, "nak", real_nak)  # only the first one fails
                raise BrokerUnavailable("the broker is gone")

            monkeypatch.setattr(consumer, "nak", nak)
            engine.start_worker()
            await engine.publish_event("d-1")
            await failed_times(engine, 1)
            clock.now += 29  # neither a nak nor the lease brings it back yet
            await engine.quiet_looks(JOBS, 3)
            assert runs(log) == [(JOB, 1)]
            clock.now += 2  # the lease ran out
            await succeeded(engine)
        finally:
            await engine.stop()
    errors = [e for e in logs if e["log_level"] == "error"]
    assert errors[1] == {
        "event": "could not nak job",
        "log_level": "error",
        "error": "the broker is gone",
        "delivery_id": "d-1",
        "applet": "effect",
        "job_id": JOB,
    }
    assert runs(log) == [(JOB, 1), (JOB, 2)]
