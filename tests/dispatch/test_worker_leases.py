"""The worker keeps the leases of the jobs it holds (:meth:`Worker._keep_leases`), on real
components (:mod:`tests.dispatch.engine`): a job that runs far longer than the broker's ack
wait is extended every ``lease_refresh`` seconds and never delivered again meanwhile; a failed
extension is logged and the next one still happens; a drained worker extends nothing more.

The broker's clock is moved by hand, in steps shorter than the ack wait, each after the worker
extended the lease once more: a lease not extended runs out and the job runs twice."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ghapplets.broker.base import Message
from ghapplets.exceptions import BrokerUnavailable
from ghapplets.store.records import JobStatus
from tests.conftest import LeaseClock, ProjectBuilder
from tests.dispatch.engine import EVENT_TYPE, Engine, runs, until

ACK_WAIT = 0.6  # the worker extends every 0.2 s (a third of it), in real time
STEP = 0.4  # the broker's clock moves this much between two extensions (less than ACK_WAIT)

# an applet that logs its run, then holds its job until the gate file exists
HELD = """
import asyncio, os
from ghapplets import Applet, Context
app = Applet("held")

@app.on({event!r})
async def handle(ctx: Context) -> str:
    with open({runs!r}, "a") as f:
        f.write(f"{{ctx.idempotency_key}} {{ctx.attempt}}\\n")
    while not os.path.exists({gate!r}):
        await asyncio.sleep(0.01)
    return "done"
"""


def held_applet(project: ProjectBuilder, tmp_path: Path) -> tuple[Path, Path]:
    log, gate = tmp_path / "runs.log", tmp_path / "gate"
    project.python_applet("held", HELD.format(event=EVENT_TYPE, runs=str(log), gate=str(gate)))
    return log, gate


def spy_extensions(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, *, fail_first: int = 0
) -> list[int]:
    """The seq of each message whose lease the worker extended; the first ``fail_first``
    extensions fail as a broker that went away would."""
    assert engine.worker is not None
    consumer = engine.worker.consumer
    real, extended, failures = consumer.in_progress, [], [fail_first]

    async def in_progress(message: Message) -> None:
        if failures[0] > 0:
            failures[0] -= 1
            extended.append(-message.seq)
            raise BrokerUnavailable("the broker is away")
        await real(message)
        extended.append(message.seq)

    monkeypatch.setattr(consumer, "in_progress", in_progress)
    return extended


async def move_clock_past_leases(clock: LeaseClock, extended: list[int], moves: int) -> None:
    """Move the broker's clock ``moves`` times by STEP, each after one more extension."""
    for _ in range(moves):
        seen = len([s for s in extended if s > 0])

        async def extended_again(seen: int = seen) -> bool:
            return len([s for s in extended if s > 0]) > seen

        await until(extended_again, "the worker extending the job's lease")
        clock.now += STEP


@dataclass
class Held:
    """A running engine whose worker holds one job (its applet waits for ``gate``)."""

    engine: Engine
    clock: LeaseClock
    extended: list[int]  # see spy_extensions
    log: Path
    gate: Path

    async def finish(self) -> str:
        """Open the gate; the job's id once its outcome is settled."""
        self.gate.touch()
        [job] = await self.engine.store.list_jobs(limit=10)
        done = await self.engine.settled(job.id, 1)
        assert done.status == JobStatus.SUCCEEDED
        return job.id


@contextlib.asynccontextmanager
async def holding_a_job(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_first: int = 0
) -> AsyncIterator[Held]:
    log, gate = held_applet(project, tmp_path)
    clock = LeaseClock()
    engine = Engine(project.build(), tmp_path / "g.db", clock, ack_wait=ACK_WAIT)
    try:
        await engine.start(worker=False)
        extended = spy_extensions(engine, monkeypatch, fail_first=fail_first)
        engine.start_worker()
        await engine.publish_event("d-1")

        async def started() -> bool:
            return bool(runs(log))

        await until(started, "the held job started")
        yield Held(engine, clock, extended, log, gate)
    finally:
        gate.touch()
        await engine.stop()


async def test_a_job_running_past_many_ack_waits_is_extended_and_runs_once(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with holding_a_job(project, tmp_path, monkeypatch) as held:
        # 8 moves of 0.4 s: 3.2 s of broker time, more than 5 ack waits
        await move_clock_past_leases(held.clock, held.extended, 8)
        job_id = await held.finish()
    assert runs(held.log) == [(job_id, 1)]  # never delivered again while it ran
    assert len(set(held.extended)) == 1  # the one message held, again and again


async def test_a_failed_extension_is_logged_and_the_next_one_still_happens(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with capture_logs() as logs:
        async with holding_a_job(project, tmp_path, monkeypatch, fail_first=1) as held:
            await move_clock_past_leases(held.clock, held.extended, 3)
            job_id = await held.finish()
    extended = held.extended
    assert extended[0] < 0 and all(s == -extended[0] for s in extended[1:])
    assert runs(held.log) == [(job_id, 1)]
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert warnings == [
        {
            "event": "job leases not extended",
            "log_level": "warning",
            "jobs": 1,
            "error": "the broker is away",
        }
    ]


async def test_a_drained_worker_extends_no_lease_even_of_a_job_it_still_holds(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past its drain timeout the process goes away: the jobs left must come back to another
    worker when their lease runs out, not be kept by a keeper that outlived the drain."""
    async with holding_a_job(project, tmp_path, monkeypatch) as held:
        await move_clock_past_leases(held.clock, held.extended, 1)
        worker = held.engine.worker
        assert worker is not None
        assert await worker.drain(0.05) == 1  # the held job outlives the drain
        count = len(held.extended)
        await asyncio.sleep(3 * ACK_WAIT / 3)  # three refresh periods: none may extend
        assert len(held.extended) == count
