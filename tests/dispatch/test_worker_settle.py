"""How the worker settles a job message delivered again, on real components
(:mod:`tests.dispatch.engine`): a job the store has no record of is not taken for a finished
one, so its message is not acknowledged unrun; it runs again, and runs to success."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import orjson
import pytest
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from ghapplets.broker.base import Message
from ghapplets.crashpoints import CrashPoint, reached
from ghapplets.dispatch import messages as m
from ghapplets.dispatch.messages import JOBS
from ghapplets.events import CloudEvent
from ghapplets.exceptions import BrokerUnavailable, NotFound, SecretKeyMismatch
from ghapplets.metrics import Metrics
from ghapplets.store.records import DeliveryRecord, DeliveryStatus, JobRecord, JobStatus
from tests.conftest import LeaseClock, ProjectBuilder
from tests.dispatch.engine import EVENT_TYPE, Engine, running, runs, runs_logged, until

JOB = "github:d-1:flaky"


async def term_reasons(engine: Engine) -> list[str]:
    """Why the job messages the embedded broker holds were terminated, in publish order."""
    query = (
        "SELECT reason FROM broker_messages WHERE stream = 'jobs' AND reason IS NOT NULL"
        " ORDER BY seq"
    )
    rows = await engine.broker.db.read(lambda c: c.exec_driver_sql(query).scalars().all())
    return list(rows)


async def test_a_redelivered_job_unknown_to_the_store_runs_again(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    """The job's message is there, its delivery too, but no job record (say, it was lost with
    a store restored from a backup): its first attempt fails, and when the message comes back
    after the backoff the worker runs it again rather than settling it as done."""
    log = tmp_path / "runs.log"
    runs_logged(
        project,
        "flaky",
        log,
        succeed_at=2,
        manifest="retry: {max_attempts: 3, initial_delay: 5, jitter: false}\n",
    )
    clock = LeaseClock()
    engine = Engine(project.build(), tmp_path / "g.db", clock)
    event = CloudEvent(id="d-1", source="https://github.com/o/r", type=EVENT_TYPE)
    body = orjson.dumps({"action": "opened"})
    headers = event.binary_headers()
    delivery = DeliveryRecord(
        "github",
        "d-1",
        EVENT_TYPE,
        None,
        event.time,
        time.time(),
        DeliveryStatus.DISPATCHED,
        {k[3:]: v for k, v in headers.items() if k.startswith("ce-")},
        {},
        body,
        1,
    )
    async with running(engine):
        await engine.store.record_dispatch([delivery], [])  # the delivery, without its job
        await engine.broker.publish(m.job_message(headers, "github", "d-1", "flaky"))

        async def first_failed() -> bool:
            assert engine.worker is not None
            return runs(log) == [(JOB, 1)] and engine.worker.inflight == 0

        await until(first_failed, "the first attempt failed and nakked")
        assert await engine.job(JOB) is None

        clock.now += 5  # the backoff is over: the message is delivered a second time

        async def second_ran() -> bool:
            assert engine.worker is not None
            return len(runs(log)) == 2 and engine.worker.inflight == 0

        await until(second_ran, "the second attempt", timeout=5)

        async def acked() -> bool:
            return await engine.broker.depth(JOBS) == 0

        await until(acked, "the job message acknowledged")
    assert runs(log) == [(JOB, 1), (JOB, 2)]


# -- what the worker reports for each outcome: records, metrics, logs, crash points ----------
FLAKY = f"""
import asyncio
from ghapplets import Applet, Context, RetryableError
app = Applet("flaky")

@app.on({EVENT_TYPE!r})
async def handle(ctx: Context) -> str:
    if ctx.attempt < 2:
        raise RetryableError("busy, try later", type="Busy", retry_after=7.123456)
    await asyncio.sleep(0.2)  # long enough for its duration in ms to show a 0.1 % error
    return "ok"
"""
BROKEN = f"""
from ghapplets import Applet, Context, RetryableError
app = Applet("broken")

@app.on({EVENT_TYPE!r})
async def handle(ctx: Context) -> str:
    raise RetryableError("still down", type="Down")
"""


def points(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The crash points the worker reaches, in order (it still calls the real ``reached``)."""
    seen: list[object] = []

    def record(point: CrashPoint) -> None:
        seen.append(point)
        reached(point)

    monkeypatch.setattr("ghapplets.dispatch.worker.reached", record)
    return seen


async def publish(engine: Engine, delivery_id: str, received_at: float) -> None:
    """An event as the gateway stores it, received at ``received_at``."""
    event = CloudEvent(id=delivery_id, source="https://github.com/o/r", type=EVENT_TYPE)
    body = orjson.dumps({"action": "opened"})
    await engine.broker.publish(m.event_message("github", event, body, {}, received_at))


def delivery_of(event: CloudEvent) -> DeliveryRecord:
    headers = event.binary_headers()
    attributes = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
    return DeliveryRecord(
        "github",
        event.id,
        event.type,
        None,
        event.time,
        time.time(),
        DeliveryStatus.DISPATCHED,
        attributes,
        {},
        b"{}",
        1,
    )


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def started_with_metrics(engine: Engine) -> Metrics:
    await engine.start(worker=False)
    assert engine.worker is not None
    metrics = engine.worker.metrics = Metrics()
    engine.start_worker()
    return metrics


async def test_a_retry_after_the_vendors_delay_then_success_is_recorded_measured_and_logged(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The applet's Retry-After (7.123456 s) outweighs its policy's backoff (0.5 s): the retry is
    due then and no sooner. The first attempt alone counts for the start latency."""
    job_id = "github:d-1:flaky"
    project.python_applet(
        "flaky", FLAKY, "retry: {max_attempts: 3, initial_delay: 0.5, jitter: false}\n"
    )
    seen = points(monkeypatch)
    clock = LeaseClock()
    engine = Engine(project.build(), tmp_path / "g.db", clock)
    with capture_logs() as logs:
        try:
            metrics = await started_with_metrics(engine)
            received = time.time() - 100  # the webhook came in 100 s before the job started
            await publish(engine, "d-1", received)
            job = await engine.settled(job_id, 1)
            [first] = await engine.store.list_attempts(job_id)
            assert (job.status, job.next_attempt_at) == ("retrying", first.finished_at + 7.123456)
            assert (first.outcome, first.error_type, first.error_message) == (
                "retryable",
                "Busy",
                "busy, try later",
            )

            clock.now += 7.123456 - 0.01  # short of the vendor's delay: not yet
            await engine.quiet_looks(JOBS, 3)
            assert len(await engine.store.list_attempts(job_id)) == 1
            clock.now += 0.01
            job = await engine.settled(job_id, 2)
            [_, second] = await engine.store.list_attempts(job_id)
        finally:
            await engine.stop()
    assert (job.status, job.result, second.number, second.outcome) == ("succeeded", "ok", 2, "ok")

    assert sample(metrics, "ghapplets_job_start_latency_seconds_count") == 1.0
    latency = sample(metrics, "ghapplets_job_start_latency_seconds_sum")
    assert latency is not None and 100 <= latency <= first.started_at - received
    assert sample(metrics, "ghapplets_job_retries_total", applet="flaky") == 1.0
    for outcome, attempt in (("retryable", first), ("ok", second)):
        labels = {"applet": "flaky", "outcome": outcome}
        assert sample(metrics, "ghapplets_job_duration_seconds_count", **labels) == 1.0
        took = sample(metrics, "ghapplets_job_duration_seconds_sum", **labels)
        assert took == attempt.finished_at - attempt.started_at

    worker_logs = [e for e in logs if e["event"] in ("job failed, will retry", "job succeeded")]
    assert worker_logs == [
        {
            "event": "job failed, will retry",
            "log_level": "warning",
            "attempt": 1,
            "retry_in": 7.123,
            "error_type": "Busy",
            "error": "busy, try later",
        },
        {
            "event": "job succeeded",
            "log_level": "debug",
            "attempt": 2,
            "ms": round((second.finished_at - second.started_at) * 1000, 2),
        },
    ]
    ran = [
        CrashPoint.WORKER_FETCHED,
        CrashPoint.WORKER_CLAIMED,
        CrashPoint.WORKER_APPLET_RETURNED,
    ]
    assert seen == [
        *ran,
        CrashPoint.RETRY_SCHEDULED,
        *ran,
        CrashPoint.WORKER_RESULT_RECORDED,
        CrashPoint.WORKER_ACKNOWLEDGED,
    ]


async def test_dead_letters_are_recorded_counted_per_applet_and_logged(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job out of attempts, and one of an applet that is not installed (counted as
    ``_unknown``). A webhook stamped later than the job started counts as no wait at all."""
    project.python_applet("broken", BROKEN, "retry: {max_attempts: 1}\n")
    seen = points(monkeypatch)
    engine = Engine(project.build(), tmp_path / "g.db", LeaseClock())
    with capture_logs() as logs:
        try:
            metrics = await started_with_metrics(engine)
            await publish(engine, "d-1", time.time() + 100)  # the gateway's clock runs ahead
            job = await engine.settled("github:d-1:broken", 1)
            gone = CloudEvent(id="d-2", source="https://github.com/o/r", type=EVENT_TYPE)
            now = time.time()  # dispatched while "gone" was installed: its job is recorded
            await engine.store.record_dispatch(
                [delivery_of(gone)],
                [JobRecord("github:d-2:gone", "github", "d-2", "gone", JobStatus.QUEUED, now, now)],
            )
            await engine.broker.publish(
                m.job_message(gone.binary_headers(), "github", "d-2", "gone")
            )

            async def terminated() -> bool:
                assert engine.worker is not None
                return await engine.broker.depth(JOBS) == 0 and not engine.worker.inflight

            await until(terminated, "both jobs dead-lettered")
            gone_job = await engine.store.get_job("github:d-2:gone")
            gone_attempts = await engine.store.list_attempts("github:d-2:gone")
            letters = [await engine.store.dead_letter(j) for j in (job.id, gone_job.id)]
            terms = await term_reasons(engine)
            assert engine.worker is not None
            assert not engine.worker._background  # each start record, done and let go
        finally:
            await engine.stop()
    assert (job.status, job.error_type, job.error_message) == ("dead", "Down", "still down")
    assert (gone_job.status, gone_job.error_type, gone_job.error_message) == (
        "dead",
        "AppletNotFound",
        "no applet named 'gone' is installed",
    )
    [attempt] = gone_attempts
    assert (attempt.number, attempt.outcome, attempt.error_type, attempt.error_message) == (
        1,
        "permanent",
        "AppletNotFound",
        "no applet named 'gone' is installed",
    )
    assert now <= attempt.started_at <= attempt.finished_at <= time.time()
    assert [d.reason if d else None for d in letters] == [
        "Down: still down",
        "AppletNotFound: no applet named 'gone' is installed",
    ]
    assert terms == [d.reason for d in letters if d]  # each message terminated with its reason
    assert sample(metrics, "ghapplets_dead_letters_total", applet="broken") == 1.0
    assert sample(metrics, "ghapplets_dead_letters_total", applet="_unknown") == 1.0
    assert sample(metrics, "ghapplets_dead_letters_total", applet="gone") is None
    assert sample(metrics, "ghapplets_job_retries_total", applet="broken") is None
    assert sample(metrics, "ghapplets_job_start_latency_seconds_count") == 1.0
    assert sample(metrics, "ghapplets_job_start_latency_seconds_sum") == 0.0
    dead = [e for e in logs if e["event"] == "job dead-lettered"]
    assert dead == [
        {
            "event": "job dead-lettered",
            "log_level": "error",
            "attempt": 1,
            "error_type": "Down",
            "error": "still down",
        }
    ]  # the job of an applet not installed is recorded (its reason) without running
    assert seen == [
        CrashPoint.WORKER_FETCHED,
        CrashPoint.WORKER_CLAIMED,
        CrashPoint.WORKER_APPLET_RETURNED,
        CrashPoint.DEAD_LETTERED,
        CrashPoint.WORKER_FETCHED,
        CrashPoint.DEAD_LETTERED,
    ]


LOCKED = f"""
from ghapplets import Applet, Context
app = Applet("locked")

@app.on({EVENT_TYPE!r})
async def handle(ctx: Context) -> str:
    return "ran"
"""


async def test_a_secret_that_cannot_be_read_retries_only_for_a_rotated_key(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    """A key this process does not have yet may come (retry); a secret that is not there will
    not (dead letter). Either way the applet does not run, and the reason is recorded."""
    job_id = "github:d-1:locked"
    project.python_applet(
        "locked",
        LOCKED,
        "secrets: [token]\nretry: {max_attempts: 3, initial_delay: 2, jitter: false}\n",
    )
    clock = LeaseClock()
    engine = Engine(project.build(), tmp_path / "g.db", clock)
    asked: list[tuple[str, list[str]]] = []

    async def secrets_for(applet: str, names: Sequence[str]) -> Mapping[str, str]:
        asked.append((applet, list(names)))
        if len(asked) == 1:
            raise SecretKeyMismatch("the secrets are encrypted with key k2", "k2")
        raise NotFound()  # no message: the error says "not found"

    try:
        await engine.start(worker=False)
        assert engine.worker is not None
        engine.worker.secrets_for = secrets_for
        engine.start_worker()
        await engine.publish_event("d-1")
        job = await engine.settled(job_id, 1)
        assert (job.status, job.error_type) == ("retrying", "SecretUnavailable")
        clock.now += 2
        job = await engine.settled(job_id, 2)
        attempts = await engine.store.list_attempts(job_id)
    finally:
        await engine.stop()
    assert asked == [("locked", ["token"])] * 2
    assert [(a.number, a.outcome, a.error_type, a.error_message) for a in attempts] == [
        (
            1,
            "retryable",
            "SecretUnavailable",
            "a declared secret cannot be read: the secrets are encrypted with key k2",
        ),
        (2, "permanent", "SecretUnavailable", "a declared secret cannot be read: not found"),
    ]
    assert (job.status, job.result) == ("dead", None)


WAITER = f"""
import asyncio, os
from ghapplets import Applet, Context
app = Applet("waiter")

@app.on({EVENT_TYPE!r})
async def handle(ctx: Context) -> dict:
    while not os.path.exists({{go!r}}):  # held until the test has looked at the job
        await asyncio.sleep(0.01)
    return {{{{"delivery": ctx.delivery_id, "token": ctx.secrets["token"] == "t0ken-value"}}}}
"""


async def test_a_running_job_is_recorded_as_running_and_its_applet_gets_what_it_declared(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    project.python_applet("waiter", WAITER.format(go=str(go)), "secrets: [token]\n")
    engine = Engine(project.build(), tmp_path / "g.db", LeaseClock())

    async def secrets_for(applet: str, names: Sequence[str]) -> Mapping[str, str]:
        return {"token": "t0ken-value"}

    try:
        await engine.start(worker=False)
        assert engine.worker is not None
        engine.worker.secrets_for = secrets_for
        engine.start_worker()
        await engine.publish_event("d-1")

        async def running_now() -> object:
            job = await engine.job("github:d-1:waiter")
            return job if job is not None and job.status == "running" else None

        job = await until(running_now, "the job recorded as running")
        assert job.attempts == 1
        go.touch()
        job = await engine.settled("github:d-1:waiter", 1)
    finally:
        await engine.stop()
    assert (job.status, job.result) == ("succeeded", {"delivery": "d-1", "token": True})


async def test_a_job_whose_ack_was_lost_is_settled_without_running_again(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its success is recorded, then the ack fails: the message comes back (5 s later) and is
    acknowledged as it is, with a log line, without a second run."""
    log = tmp_path / "runs.log"
    runs_logged(project, "effect", log)
    clock = LeaseClock()
    engine = Engine(project.build(), tmp_path / "g.db", clock)
    with capture_logs() as logs:
        try:
            await engine.start(worker=False)
            assert engine.worker is not None
            consumer = engine.worker.consumer
            real_ack, failed = consumer.ack, []

            async def ack(message: Message) -> None:
                if not failed:
                    failed.append(message.seq)
                    raise BrokerUnavailable("the broker is gone")
                await real_ack(message)

            monkeypatch.setattr(consumer, "ack", ack)
            engine.start_worker()
            await engine.publish_event("d-1")
            job = await engine.settled("github:d-1:effect", 1)
            assert job.status == "succeeded" and failed
            clock.now += 5

            async def acked() -> bool:
                return await engine.broker.depth(JOBS) == 0

            await until(acked, "the redelivered message acknowledged")
        finally:
            await engine.stop()
    assert runs(log) == [("github:d-1:effect", 1)]
    assert [e for e in logs if e["log_level"] in ("info", "error")] == [
        {
            "event": "job handling failed; it will be redelivered",
            "log_level": "error",
            "error": "the broker is gone",
        },
        {
            "event": "job already finished; its message is settled without running it again",
            "log_level": "info",
        },
    ]


CHATTY = f"""
from ghapplets import Applet, Context
app = Applet("chatty")

@app.on({EVENT_TYPE!r})
async def handle(ctx: Context) -> str:
    for i in range(60):
        ctx.log.info(f"line {{i}}")
    return "ok"
"""


async def test_an_attempt_keeps_the_last_fifty_lines_of_its_applets_log(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    project.python_applet("chatty", CHATTY)
    engine = Engine(project.build(), tmp_path / "g.db", LeaseClock())
    async with running(engine):
        await engine.publish_event("d-1")
        await engine.settled("github:d-1:chatty", 1)
        [attempt] = await engine.store.list_attempts("github:d-1:chatty")
    assert len(attempt.logs) == 50
    assert "line 10" in attempt.logs[0] and "line 59" in attempt.logs[-1]


async def test_a_job_whose_delivery_is_not_in_the_store_is_dropped_not_put_back(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    """A job message left in the queue when the store was replaced (``restore --force``)
    names an event the store does not hold: nothing can run it, so it is terminated and
    logged, rather than put back again and again."""
    log = tmp_path / "runs.log"
    runs_logged(project, "flaky", log)
    engine = Engine(project.build(), tmp_path / "g.db", LeaseClock())
    event = CloudEvent(id="d-1", source="https://github.com/o/r", type=EVENT_TYPE)
    with capture_logs(processors=[merge_contextvars]) as logs:
        async with running(engine):
            await engine.broker.publish(
                m.job_message(event.binary_headers(), "github", "d-1", "flaky")
            )

            async def settled() -> bool:
                assert engine.worker is not None
                return await engine.broker.depth(m.JOBS) == 0 and engine.worker.inflight == 0

            await until(settled, "the orphan job message settled")
            assert await engine.job(JOB) is None  # no record made up for it
            assert await term_reasons(engine) == ["its delivery is not in the store"]
    assert runs(log) == []
    assert [e for e in logs if e["log_level"] == "error"] == [
        {
            "event": "job dropped: its delivery is not in the store",
            "log_level": "error",
            "delivery_id": "d-1",
            "applet": "flaky",
            "job_id": JOB,
        }
    ]
