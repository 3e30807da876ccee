"""A blueprint run's message on the jobs stream, when it cannot be handled: it is put back for
redelivery 5 s later (never acknowledged, never lost), with a log line bound to the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from ghapplets.broker.base import Message
from ghapplets.dispatch.messages import JOBS
from ghapplets.dispatch.runs import run_message
from ghapplets.exceptions import BrokerUnavailable, StoreUnavailable
from tests.conftest import LeaseClock, ProjectBuilder
from tests.dispatch.engine import Engine, until

RUN = "github:d-1:test/chain"


class BrokenDriver:
    """A run driver whose store is down: every run message it handles fails."""

    def __init__(self) -> None:
        self.handled: list[str] = []

    async def handle(self, message: Message) -> None:
        self.handled.append(message.headers["ghapplets-run"])
        raise StoreUnavailable("the store is down")


def spy_naks(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, float]]:
    """The worker's naks (message seq, delay), as they pass on to the real consumer."""
    assert engine.worker is not None
    consumer = engine.worker.consumer
    real_nak, naks = consumer.nak, []

    async def nak(message: Message, delay: float) -> None:
        naks.append((message.seq, delay))
        await real_nak(message, delay)

    monkeypatch.setattr(consumer, "nak", nak)
    return naks


async def handled_and_put_back(
    engine: Engine, clock: LeaseClock, count: int, *, seen: list[Any]
) -> None:
    async def settled() -> bool:
        assert engine.worker is not None
        return len(seen) >= count and engine.worker.inflight == 0

    await until(settled, f"the run message handled {count} time(s)")
    assert await engine.broker.depth(JOBS) == 1  # still queued: nothing acknowledged it


async def test_a_run_message_reaching_a_worker_without_blueprints_waits_for_one(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = LeaseClock()
    engine = Engine(project.build(), tmp_path / "g.db", clock)
    with capture_logs(processors=[merge_contextvars]) as logs:
        try:
            await engine.start(worker=False)
            assert engine.worker is not None and engine.worker.runs is None
            naks = spy_naks(engine, monkeypatch)
            engine.start_worker()
            await engine.broker.publish(run_message(RUN, "started"))
            await handled_and_put_back(engine, clock, 1, seen=naks)
            clock.now += 4.9  # not before its delay
            assert await engine.broker.depth(JOBS) == 1 and len(naks) == 1
            clock.now += 0.2
            await handled_and_put_back(engine, clock, 2, seen=naks)
        finally:
            await engine.stop()
    assert [delay for _, delay in naks] == [5.0, 5.0]
    assert len({seq for seq, _ in naks}) == 1  # the same message, delivered again
    errors = [e for e in logs if e["log_level"] == "error"]
    assert errors[0] == {
        "event": "a blueprint run message reached a worker without blueprints",
        "log_level": "error",
        "delivery_id": RUN,
        "run_id": RUN,
    }


async def test_a_run_whose_handling_fails_is_put_back_for_redelivery(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = LeaseClock()
    engine = Engine(project.build(), tmp_path / "g.db", clock)
    driver = BrokenDriver()
    with capture_logs(processors=[merge_contextvars]) as logs:
        try:
            await engine.start(worker=False)
            assert engine.worker is not None
            engine.worker.runs = driver  # type: ignore[assignment]
            naks = spy_naks(engine, monkeypatch)
            engine.start_worker()
            await engine.broker.publish(run_message(RUN, "started"))
            await handled_and_put_back(engine, clock, 1, seen=naks)
            clock.now += 5.1
            await handled_and_put_back(engine, clock, 2, seen=naks)
        finally:
            await engine.stop()
    assert driver.handled == [RUN, RUN] and [d for _, d in naks] == [5.0, 5.0]
    assert next(e for e in logs if e["log_level"] == "error") == {
        "event": "run handling failed; it will be redelivered",
        "log_level": "error",
        "error": "the store is down",
        "delivery_id": RUN,
        "run_id": RUN,
    }


async def test_a_failed_put_back_is_logged_and_the_lease_brings_the_run_back(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = LeaseClock()
    engine = Engine(project.build(), tmp_path / "g.db", clock, ack_wait=30.0)
    driver = BrokenDriver()
    with capture_logs(processors=[merge_contextvars]) as logs:
        try:
            await engine.start(worker=False)
            assert engine.worker is not None
            engine.worker.runs = driver  # type: ignore[assignment]

            async def nak(message: Message, delay: float) -> None:
                raise BrokerUnavailable("the broker is gone")

            monkeypatch.setattr(engine.worker.consumer, "nak", nak)
            engine.start_worker()
            await engine.broker.publish(run_message(RUN, "started"))
            await handled_and_put_back(engine, clock, 1, seen=driver.handled)
        finally:
            await engine.stop()
    errors = [e for e in logs if e["log_level"] == "error"]
    assert errors[1] == {
        "event": "could not nak run message",
        "log_level": "error",
        "error": "the broker is gone",
        "delivery_id": RUN,
        "run_id": RUN,
    }
