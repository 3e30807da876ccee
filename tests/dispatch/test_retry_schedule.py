"""Retries by behaviour, on a clock the test moves: a failed job waits for its backoff (and no
longer), its consumer waits rather than spins meanwhile, delays grow exponentially within their
jitter bounds up to the cap, and the last failure is dead-lettered.

The worker, dispatcher and embedded broker are the real ones (:mod:`tests.dispatch.engine`);
only the broker's clock is the test's. It stands still unless the test moves it, so "not yet"
is checked by letting the consumer look for due jobs a few times at a moment just short of the
due time, and "now" by moving the clock to it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ghapplets.dispatch import retry
from ghapplets.dispatch.messages import JOBS
from tests.conftest import LeaseClock, ProjectBuilder
from tests.dispatch.engine import POLL_INTERVAL, Engine, running, runs, runs_logged, until

JOB = "github:d-1:flaky"
EARLY = 0.01  # seconds short of a due time: a retry must not run yet


async def attempt_runs(engine: Engine, log: Path, count: int) -> None:
    """Wait until the applet has run ``count`` times and that attempt is settled."""

    async def ran() -> bool:
        return len(runs(log)) >= count

    await until(ran, f"{count} runs")
    await engine.settled(JOB, count)


async def test_a_retry_waits_for_its_due_time_and_the_consumer_does_not_spin_meanwhile(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    runs_logged(
        project,
        "flaky",
        log,
        succeed_at=2,
        manifest="retry: {max_attempts: 3, initial_delay: 60, jitter: false}\n",
    )
    clock = LeaseClock()
    engine = Engine(project.build(), tmp_path / "g.db", clock)
    async with running(engine):
        await engine.publish_event("d-1")
        await attempt_runs(engine, log, 1)
        failed_at = clock.now  # the clock stands still: the first attempt failed "now"
        job = await engine.job(JOB)
        assert job is not None and (job.status, job.attempts) == ("retrying", 1)

        clock.now = failed_at + 60 - 1  # a second short of the backoff
        looks = await engine.quiet_looks(JOBS, 11)
        assert runs(log) == [(JOB, 1)]  # not run again before it is due
        assert not any(p.leased for p in looks)
        # the consumer waits between looks (POLL_INTERVAL, or until the fetch's own timeout),
        # it does not spin: ten gaps take at least half their nominal time
        span = looks[10].at - looks[0].at
        assert span >= 10 * POLL_INTERVAL / 2, f"11 looks in {span:.4f} s: spinning"

        clock.now = failed_at + 60  # due
        await attempt_runs(engine, log, 2)
        job = await engine.job(JOB)
        assert job is not None and (job.status, job.attempts) == ("succeeded", 2)
    assert runs(log) == [(JOB, 1), (JOB, 2)]


async def test_attempts_back_off_exponentially_up_to_the_cap_then_dead_letter(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    """initial 10 s, factor 3, cap 100 s, five attempts: the retries are due 10, 30, 90 and
    100 (capped, not 270) seconds after each failure; the fifth failure is a dead letter."""
    log = tmp_path / "runs.log"
    runs_logged(
        project,
        "flaky",
        log,
        succeed_at=99,  # never succeeds
        manifest="retry: {max_attempts: 5, initial_delay: 10, factor: 3, max_delay: 100,"
        " jitter: false}\n",
    )
    clock = LeaseClock()
    engine = Engine(project.build(), tmp_path / "g.db", clock)
    async with running(engine):
        await engine.publish_event("d-1")
        await attempt_runs(engine, log, 1)
        for k, delay in enumerate([10, 30, 90, 100], start=1):
            failed_at = clock.now
            job = await engine.job(JOB)
            assert job is not None and (job.status, job.attempts) == ("retrying", k)
            last = (await engine.store.list_attempts(JOB))[-1]
            assert job.next_attempt_at is not None
            assert abs(job.next_attempt_at - last.finished_at - delay) < 1e-3, (k, job)

            clock.now = failed_at + delay - EARLY
            assert not any(p.leased for p in await engine.quiet_looks(JOBS, 3))
            assert len(runs(log)) == k, f"attempt {k + 1} ran before its backoff of {delay} s"
            clock.now = failed_at + delay
            await attempt_runs(engine, log, k + 1)

        job = await engine.job(JOB)
        assert job is not None
        assert (job.status, job.attempts, job.error_type) == ("dead", 5, "NotYet")
        assert await engine.store.dead_letter_count() == 1
        assert await engine.broker.depth(JOBS) == 0  # terminated: never delivered again
        clock.now += 86400
        assert not any(p.leased for p in await engine.quiet_looks(JOBS, 3))
    assert runs(log) == [(JOB, n) for n in range(1, 6)]


class Extremes:
    """The worker's random source, drawing the ends of each range in turn: low, high, low..."""

    def __init__(self) -> None:
        self.asked: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.asked.append((a, b))
        return a if len(self.asked) % 2 else b


async def test_jittered_delays_fall_within_half_and_all_of_their_ceiling(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With jitter, the retry after failure k is due between ceiling/2 and ceiling, where the
    ceiling is initial * factor^(k-1) up to the cap: 8 s, 16 s, then 20 s (capped). The random
    source draws the ends of each range, so each bound is met exactly: due at 4 s (not
    before), then at 16 s (not before, and not later), then at 10 s."""
    rng = Extremes()
    monkeypatch.setattr(retry, "random", rng)
    log = tmp_path / "runs.log"
    runs_logged(
        project,
        "flaky",
        log,
        succeed_at=4,
        manifest="retry: {max_attempts: 4, initial_delay: 8, factor: 2, max_delay: 20}\n",
    )
    clock = LeaseClock()
    engine = Engine(project.build(), tmp_path / "g.db", clock)
    async with running(engine):
        await engine.publish_event("d-1")
        await attempt_runs(engine, log, 1)
        for k, due in enumerate([4, 16, 10], start=1):
            failed_at = clock.now
            job = await engine.job(JOB)
            last = (await engine.store.list_attempts(JOB))[-1]
            assert job is not None and job.next_attempt_at is not None
            assert abs(job.next_attempt_at - last.finished_at - due) < 1e-3, (k, job)

            clock.now = failed_at + due - EARLY
            assert not any(p.leased for p in await engine.quiet_looks(JOBS, 3))
            assert len(runs(log)) == k, f"attempt {k + 1} ran before its delay of {due} s"
            clock.now = failed_at + due
            await attempt_runs(engine, log, k + 1)
        job = await engine.job(JOB)
        assert job is not None and (job.status, job.attempts) == ("succeeded", 4)
    assert rng.asked == [(4, 8), (8, 16), (10, 20)]
