"""The crash points a worker reaches on each path of a job, in order, on real components
(:mod:`tests.dispatch.engine`): a success, a retry then a success, a dead letter and an applet
that is not installed. The crash matrix (tests/test_crash_matrix.py) kills processes at these
points; this says each is reached where the registry says, after what it says is durable."""

from __future__ import annotations

from pathlib import Path

import pytest

from ghapplets.crashpoints import CrashPoint, reached
from tests.conftest import LeaseClock, ProjectBuilder
from tests.dispatch.engine import Engine, running, runs_logged

P = CrashPoint
SUCCESS = [P.WORKER_CLAIMED, P.WORKER_APPLET_RETURNED, P.WORKER_RESULT_RECORDED,
           P.WORKER_ACKNOWLEDGED]  # fmt: skip
RETRY = [P.WORKER_CLAIMED, P.WORKER_APPLET_RETURNED, P.RETRY_SCHEDULED]
DEAD = [P.WORKER_CLAIMED, P.WORKER_APPLET_RETURNED, P.DEAD_LETTERED]


@pytest.fixture
def points(monkeypatch: pytest.MonkeyPatch) -> list[CrashPoint]:
    """The points the worker reaches, in order (it still calls the real ``reached``)."""
    seen: list[CrashPoint] = []

    def record(point: CrashPoint) -> None:
        seen.append(point)
        reached(point)

    monkeypatch.setattr("ghapplets.dispatch.worker.reached", record)
    return seen


async def one_job(project: ProjectBuilder, tmp_path: Path, *, attempts: int) -> None:
    """Run the job of the applet ``effect`` on one event, to its ``attempts``-th attempt."""
    clock = LeaseClock()
    engine = Engine(project.build(), tmp_path / "g.db", clock)
    async with running(engine):
        await engine.publish_event("d-1")
        for attempt in range(1, attempts + 1):
            job = await engine.settled("github:d-1:effect", attempt)
            clock.now += 10  # past any backoff
    assert job.attempts == attempts


async def test_a_job_that_succeeds(
    project: ProjectBuilder, tmp_path: Path, points: list[CrashPoint]
) -> None:
    runs_logged(project, "effect", tmp_path / "runs.log")
    await one_job(project, tmp_path, attempts=1)
    assert points == [P.WORKER_FETCHED, *SUCCESS]


async def test_a_job_that_fails_once_then_succeeds(
    project: ProjectBuilder, tmp_path: Path, points: list[CrashPoint]
) -> None:
    manifest = "retry: {max_attempts: 3, initial_delay: 1, jitter: false}\n"
    runs_logged(project, "effect", tmp_path / "runs.log", succeed_at=2, manifest=manifest)
    await one_job(project, tmp_path, attempts=2)
    assert points == [P.WORKER_FETCHED, *RETRY, P.WORKER_FETCHED, *SUCCESS]


async def test_a_job_that_fails_for_good(
    project: ProjectBuilder, tmp_path: Path, points: list[CrashPoint]
) -> None:
    manifest = "retry: {max_attempts: 1}\n"
    runs_logged(project, "effect", tmp_path / "runs.log", succeed_at=9, manifest=manifest)
    await one_job(project, tmp_path, attempts=1)
    assert points == [P.WORKER_FETCHED, *DEAD]


async def test_a_job_of_an_applet_not_installed_is_dead_lettered_at_once(
    project: ProjectBuilder, tmp_path: Path, points: list[CrashPoint]
) -> None:
    """The dispatcher knows the applet, this worker does not (another version of the project):
    nothing is claimed or run, the dead letter is recorded, then the message terminated."""
    runs_logged(project, "effect", tmp_path / "runs.log")
    engine = Engine(project.build(), tmp_path / "g.db", LeaseClock())
    async with running(engine, worker=False):
        assert engine.worker is not None
        del engine.worker.runtimes["effect"]
        engine.start_worker()
        await engine.publish_event("d-1")
        job = await engine.settled("github:d-1:effect", 1)
    assert job.status == "dead"
    assert points == [P.WORKER_FETCHED, P.DEAD_LETTERED]
