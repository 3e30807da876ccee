"""The blueprint timers (:class:`RunTimers`), on the embedded store and broker, in process, with
the store's lease clock moved by hand: one replica at a time ticks (its lease outlives ten
ticks, then another takes over), and each wake of a run is a message of its own, the same one
for the same wake, so replicas and repeated ticks do not wake a run twice."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from ghapplets.backends import Backends
from ghapplets.broker.base import OutboundMessage
from ghapplets.config.models import ProjectConfig
from ghapplets.dispatch.runs import Blueprints, Effects, RunDriver, RunTimers
from ghapplets.store.records import RunRecord, RunStatus
from tests.conftest import LeaseClock

EVERY = 2.0  # the timers' period: their lease lasts 10 ticks and 5 s more


def no_effects(run: RunRecord) -> Effects:
    raise AssertionError("the timers run no task")


@pytest.fixture
async def backends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Backends]:
    b = Backends(ProjectConfig(), tmp_path / "data", consume=True)  # as a worker's
    await b.start()
    try:
        real = b.broker.publish_many
        sent: list[str] = []

        async def publish_many(messages: Sequence[OutboundMessage]) -> Any:
            sent.extend(msg.msg_id for msg in messages)
            return await real(messages)

        monkeypatch.setattr(b.broker, "publish_many", publish_many)
        b.sent = sent  # type: ignore[attr-defined]
        yield b
    finally:
        await b.close()


def timers(b: Backends, instance: str) -> RunTimers:
    driver = RunDriver(b.store, b.broker, Blueprints([]), no_effects, instance=instance)
    return RunTimers(b.store, b.broker, driver, instance=instance, every=EVERY)


async def waiting_run(b: Backends, wake_at: float) -> RunRecord:
    run = RunRecord(
        id="run-1",
        namespace="test",
        name="sleepy",
        version="0.1.0",
        digest="d" * 64,
        definition={"do": []},
        status=RunStatus.WAITING,
        input={},
        started_at=wake_at - 100,
        updated_at=wake_at - 100,
        wake_at=wake_at,
    )
    assert await b.store.create_run(run)
    return run


async def test_one_replica_ticks_until_its_lease_runs_out(
    backends: Backends, lease_clock: LeaseClock
) -> None:
    now = lease_clock.now
    await waiting_run(backends, now - 1)
    first, second = timers(backends, "replica-1"), timers(backends, "replica-2")
    assert await first.tick(now) == 1  # it woke the due run
    assert await second.tick(now) == 0  # the other one holds the lease: it does nothing
    lease_clock.now += 10 * EVERY + 5 - 0.01
    assert await second.tick(now) == 0
    assert len(backends.sent) == 1  # type: ignore[attr-defined]
    lease_clock.now += 0.02  # the first one's lease has run out (it stopped ticking)
    assert await second.tick(now) == 1
    assert await first.tick(now) == 0  # and now it is the second one's


async def test_each_wake_of_a_run_is_its_own_message(
    backends: Backends, lease_clock: LeaseClock
) -> None:
    now = time.time()
    run = await waiting_run(backends, now - 1)
    ticking = timers(backends, "replica-1")
    await ticking.tick(now)
    await ticking.tick(now)  # the same wake again (the run has not been taken up yet)
    # taken up, it found its time not come by its own clock and waits again for the same
    # time (a clock behind the timers'): that is another wake all the same
    assert await backends.store.update_run(
        run.id, status=RunStatus.WAITING, wake_at=run.wake_at, resumed=True
    )
    await ticking.tick(now)
    sent: list[str] = backends.sent  # type: ignore[attr-defined]
    assert len(sent) == 3 and sent[0] == sent[1] != sent[2]
    assert all(s.startswith("run:run-1:wake:") for s in sent)
