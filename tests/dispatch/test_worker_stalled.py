"""A job of an applet whose slots are all kept by calls past their timeout (a sync handler that
does not return), through the real worker (:mod:`tests.dispatch.engine`): the job is not run, its
attempt is recorded as a retryable ``Timeout`` that says the applet is stalled, it goes back to
the queue with its backoff, and it runs once the stuck handler returned."""

from __future__ import annotations

from pathlib import Path

from ghapplets.exceptions import ErrorType
from ghapplets.store.records import AttemptOutcome, JobStatus
from tests.conftest import LeaseClock, ProjectBuilder
from tests.dispatch.engine import EVENT_TYPE, Engine, running, until

# a sync handler (run in a thread the timeout cannot stop) that blocks until a file exists
STUCK = """
import pathlib, time
from ghapplets import Applet, Context
app = Applet("stuck")

@app.on({event!r})
def handle(ctx: Context) -> str:
    with open({runs!r}, "a") as f:
        f.write(ctx.idempotency_key + "\\n")
    while not pathlib.Path({release!r}).exists():
        time.sleep(0.01)
    return "done"
"""
MANIFEST = (
    f"on: [{EVENT_TYPE}]\ntimeout: 0.3\nconcurrency: 1\n"
    "retry: {max_attempts: 5, initial_delay: 2, jitter: false}\n"
)


async def test_a_job_of_a_stalled_applet_is_retried_without_running_and_runs_later(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    runs, release = tmp_path / "runs.log", tmp_path / "release"
    project.python_applet(
        "stuck", STUCK.format(event=EVENT_TYPE, runs=str(runs), release=str(release)), MANIFEST
    )
    clock = LeaseClock()
    engine = Engine(project.build(), tmp_path / "g.db", clock)
    async with running(engine):
        await engine.publish_event("d-1")
        first = await engine.settled("github:d-1:stuck", 1)  # timed out, its thread still stuck
        assert first.status == JobStatus.RETRYING

        await engine.publish_event("d-2")
        second = await engine.settled("github:d-2:stuck", 1)
        assert second.status == JobStatus.RETRYING
        [attempt] = await engine.store.list_attempts("github:d-2:stuck")
        assert attempt.outcome == AttemptOutcome.RETRYABLE
        assert attempt.error_type == ErrorType.TIMEOUT
        assert "is stalled" in (attempt.error_message or ""), attempt.error_message
        assert attempt.number == 1
        assert attempt.started_at == attempt.finished_at  # it never started
        assert second.next_attempt_at is not None
        assert second.next_attempt_at >= attempt.finished_at + 2  # its backoff, as any retry
        assert runs.read_text().split() == ["github:d-1:stuck"]  # d-2's handler never ran

        release.touch()  # the stuck call returns: its slot is free again
        clock.now += 10  # past both backoffs
        for job_id in ("github:d-1:stuck", "github:d-2:stuck"):
            done = await engine.settled(job_id, 2)
            assert done.status == JobStatus.SUCCEEDED, done

        async def both_ran() -> bool:
            return sorted(runs.read_text().split()) == sorted(
                ["github:d-1:stuck", "github:d-1:stuck", "github:d-2:stuck"]
            )

        await until(both_ran, "the retried handlers ran")
