"""The dispatcher when something fails, on real components (:mod:`tests.dispatch.engine`): a
batch whose records could not be written is handed back to the broker for another try a second
later (and logged); an event whose hand-back fails too is logged with its sequence number and
comes back when its lease runs out. Each step reaches its crash point, in order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from ghapplets.broker.base import Message
from ghapplets.crashpoints import CrashPoint, reached
from ghapplets.dispatch.messages import EVENTS, JOBS
from ghapplets.exceptions import BrokerUnavailable, StoreUnavailable
from ghapplets.store.records import DeliveryRecord, JobRecord
from ghapplets.store.sqlite import SqliteHistoryStore
from tests.conftest import LeaseClock, ProjectBuilder
from tests.dispatch.engine import Engine, running, runs_logged, until

JOB = "github:d-1:effect"
EARLY = 0.01  # seconds short of a due time: the event must not come back yet
DISPATCH_FAILED = "dispatch failed; events will be redelivered"


class RecordingFailsOnce(SqliteHistoryStore):
    """The real store, except that the first batch of records cannot be written."""

    failed: list[list[str]] = []  # the deliveries of the batch that failed; shared via the class

    async def record_dispatch(
        self, deliveries: list[DeliveryRecord], jobs: list[JobRecord]
    ) -> set[str]:
        if not self.failed:
            self.failed.append([d.id for d in deliveries])
            raise StoreUnavailable("the database is locked")
        return await super().record_dispatch(deliveries, jobs)


def engine_for(project: ProjectBuilder, tmp_path: Path, clock: LeaseClock) -> Engine:
    runs_logged(project, "effect", tmp_path / "runs.log")
    RecordingFailsOnce.failed = []
    return Engine(
        project.build(), tmp_path / "g.db", clock, store_class=RecordingFailsOnce, ack_wait=30.0
    )


def spy_naks(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, *, fail: bool = False
) -> list[tuple[int, float]]:
    """The dispatcher's naks, as (message seq, delay); with ``fail`` each raises instead."""
    assert engine.dispatcher is not None
    consumer = engine.dispatcher.consumer
    real = consumer.nak
    naks: list[tuple[int, float]] = []

    async def nak(message: Message, delay: float) -> None:
        naks.append((message.seq, delay))
        if fail:
            raise BrokerUnavailable("the broker is gone")
        await real(message, delay)

    monkeypatch.setattr(consumer, "nak", nak)
    return naks


async def dispatched(engine: Engine, *, timeout: float = 10.0) -> None:
    """Wait until the event is recorded, its job queued and the event acknowledged."""

    async def probe() -> bool:
        return (
            await engine.job(JOB) is not None
            and await engine.broker.depth(EVENTS) == 0
            and await engine.broker.depth(JOBS) == 1
        )

    await until(probe, "the event dispatched", timeout=timeout)


async def test_a_batch_that_could_not_be_recorded_comes_back_a_second_later(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = LeaseClock()
    engine = engine_for(project, tmp_path, clock)
    with capture_logs() as logs:
        async with running(engine, worker=False):
            naks = spy_naks(engine, monkeypatch)
            await engine.publish_event("d-1")

            async def nakked() -> list[tuple[int, float]]:
                return naks

            [(seq, delay)] = await until(nakked, "the event handed back")
            assert delay == 1.0
            assert RecordingFailsOnce.failed == [["d-1"]]
            failed_at = clock.now

            clock.now = failed_at + 1.0 - EARLY  # just short of its due time
            looks = await engine.quiet_looks(EVENTS, 3)
            assert not any(p.leased for p in looks)
            assert await engine.job(JOB) is None  # not dispatched yet

            clock.now = failed_at + 1.0  # due: it comes back, well before its lease (30 s)
            await dispatched(engine, timeout=5.0)
    assert naks == [(seq, 1.0)]  # handed back once; the second try succeeded
    failures = [e for e in logs if e["event"] == DISPATCH_FAILED]
    assert failures == [
        {"event": DISPATCH_FAILED, "log_level": "error", "error": "the database is locked"}
    ]


async def test_an_event_whose_hand_back_fails_is_logged_and_comes_back_after_its_lease(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = LeaseClock()
    engine = engine_for(project, tmp_path, clock)
    with capture_logs() as logs:
        async with running(engine, worker=False):
            naks = spy_naks(engine, monkeypatch, fail=True)
            await engine.publish_event("d-1")

            async def logged() -> list[dict[str, Any]]:
                return [e for e in logs if e["event"] == "could not nak event"]

            [nak_failed] = await until(logged, "the failed nak logged")
            [(seq, _)] = naks
            assert nak_failed == {
                "event": "could not nak event",
                "log_level": "error",
                "error": "the broker is gone",
                "seq": seq,
            }
            failed_at = clock.now

            clock.now = failed_at + 30.0 - EARLY  # still leased: the hand-back did not happen
            looks = await engine.quiet_looks(EVENTS, 3)
            assert not any(p.leased for p in looks)
            assert await engine.job(JOB) is None

            clock.now = failed_at + 30.0  # the lease ran out: delivered again, and dispatched
            await dispatched(engine, timeout=5.0)
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        DISPATCH_FAILED,
        "could not nak event",
    ]


async def test_dispatching_an_event_reaches_its_crash_points_in_order(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[object] = []

    def record(point: CrashPoint) -> None:
        seen.append(point)
        reached(point)

    monkeypatch.setattr("ghapplets.dispatch.dispatcher.reached", record)
    runs_logged(project, "effect", tmp_path / "runs.log")
    engine = Engine(project.build(), tmp_path / "g.db", LeaseClock())
    async with running(engine, worker=False):
        await engine.publish_event("d-1")
        await dispatched(engine)

        async def all_points() -> bool:
            return len(seen) >= 4

        await until(all_points, "four crash points")
    assert seen == [
        CrashPoint.DISPATCH_FETCHED,
        CrashPoint.DISPATCH_RECORDED,
        CrashPoint.DISPATCH_QUEUED,
        CrashPoint.DISPATCH_ACKNOWLEDGED,
    ]
