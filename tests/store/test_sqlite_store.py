"""The embedded store: dispatch records, job lifecycle, delivery status, replay, retention."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ghapplets.exceptions import NotFound
from ghapplets.store.database import Database
from ghapplets.store.records import (
    AttemptRecord,
    DeliveryRecord,
    JobRecord,
    JobStatus,
    JobUpdate,
    SecretRecord,
)
from ghapplets.store.sqlite import SqliteHistoryStore, SqliteSecretStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteHistoryStore]:
    db = Database(tmp_path / "s.db")
    db.open()
    yield SqliteHistoryStore(db)
    db.close()


def delivery(i: str, jobs: int, received: float | None = None) -> DeliveryRecord:
    return DeliveryRecord(
        source="github",
        id=i,
        type="com.github.push",
        subject="o/r",
        time="t",
        received_at=received or time.time(),
        status="dispatched" if jobs else "unmatched",
        attributes={"id": i},
        headers={"x-github-event": "push"},
        body=b"{}",
        jobs_total=jobs,
    )


def job(i: str, applet: str) -> JobRecord:
    now = time.time()
    return JobRecord(f"github:{i}:{applet}", "github", i, applet, JobStatus.QUEUED, now, now)


def attempt(job_id: str, n: int, outcome: str = "ok") -> AttemptRecord:
    now = time.time()
    return AttemptRecord(
        job_id,
        n,
        now,
        now,
        outcome,
        None if outcome == "ok" else "Boom",
        None if outcome == "ok" else "no",
    )


async def test_dispatch_is_idempotent(store: SqliteHistoryStore) -> None:
    for _ in range(2):  # a redelivered event records nothing new
        await store.record_dispatch([delivery("d1", 2)], [job("d1", "a"), job("d1", "b")])
    assert len(await store.list_deliveries()) == 1
    assert len(await store.list_jobs(delivery_id="d1")) == 2


async def test_delivery_status_follows_jobs(store: SqliteHistoryStore) -> None:
    await store.record_dispatch([delivery("d1", 2)], [job("d1", "a"), job("d1", "b")])
    a, b = "github:d1:a", "github:d1:b"
    await store.job_started(a, 1, time.time())
    assert (await store.get_job(a)).status == "running"
    await store.job_finished(JobUpdate(a, JobStatus.SUCCEEDED, attempt(a, 1), result={"x": 1}))
    assert (await store.get_delivery("d1")).status == "dispatched"
    await store.job_finished(
        JobUpdate(
            b, JobStatus.RETRYING, attempt(b, 1, "retryable"), next_attempt_at=time.time() + 5
        )
    )
    await store.job_finished(
        JobUpdate(b, JobStatus.DEAD, attempt(b, 2, "permanent"), dead_reason="x")
    )
    d = await store.get_delivery("d1")
    assert (d.status, d.jobs_succeeded, d.jobs_dead) == ("failed", 1, 1)
    assert await store.dead_letter_count() == 1
    assert [x.number for x in await store.list_attempts(b)] == [1, 2]
    assert (await store.get_job(a)).result == {"x": 1}
    # a late "started" for an attempt that already finished changes nothing
    await store.job_started(a, 1, time.time())
    assert (await store.get_job(a)).status == JobStatus.SUCCEEDED
    # replay lifts the dead job out of the dead letters
    requeued = await store.requeue_job(b)
    assert requeued.status == JobStatus.QUEUED and requeued.attempts == 2
    assert await store.dead_letter_count() == 0
    await store.job_finished(JobUpdate(b, JobStatus.SUCCEEDED, attempt(b, 3)))
    assert (await store.get_delivery("d1")).status == "succeeded"
    # a redelivered success after a crash is not recorded twice
    await store.job_finished(JobUpdate(b, JobStatus.SUCCEEDED, attempt(b, 4)))
    assert [x.number for x in await store.list_attempts(b)] == [1, 2, 3]


async def test_filters_and_unknown_ids(store: SqliteHistoryStore) -> None:
    await store.record_dispatch([delivery("d1", 0), delivery("d2", 1)], [job("d2", "a")])
    assert [d.id for d in await store.list_deliveries(status="unmatched")] == ["d1"]
    assert len(await store.list_deliveries(type_prefix="com.github.")) == 2
    assert await store.list_deliveries(type_prefix="com.gitlab.") == []
    assert [j.applet for j in await store.list_jobs(applet="a")] == ["a"]
    with pytest.raises(NotFound):
        await store.get_delivery("nope")
    with pytest.raises(NotFound):
        await store.get_job("nope")
    with pytest.raises(NotFound):
        await store.requeue_job("nope")


async def test_secrets_roundtrip(store: SqliteHistoryStore) -> None:
    secrets = SqliteSecretStore(store.db)
    await secrets.put_secret(SecretRecord("tok", "global", b"cipher", 1.0, 1.0))
    await secrets.put_secret(SecretRecord("tok", "global", b"cipher2", 5.0, 5.0))
    got = await secrets.get_secret("tok")
    assert (got.ciphertext, got.created_at, got.updated_at) == (b"cipher2", 1.0, 5.0)
    assert [s.name for s in await secrets.list_secrets()] == ["tok"]
    assert await secrets.delete_secret("tok")
    assert not await secrets.delete_secret("tok")
    with pytest.raises(NotFound):
        await secrets.get_secret("tok")


async def test_prune_removes_only_old_finished_history(store: SqliteHistoryStore) -> None:
    old = time.time() - 100 * 86400
    await store.record_dispatch([delivery("old", 0, old), delivery("new", 0)], [])
    await store.record_dispatch([delivery("oldfail", 1, old)], [job("oldfail", "a")])
    assert await store.prune(time.time() - 30 * 86400) == 1
    assert sorted(d.id for d in await store.list_deliveries()) == ["new", "oldfail"]
