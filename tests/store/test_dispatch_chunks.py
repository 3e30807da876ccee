"""The store names the jobs still to run after looking their ids up ``JOBS_CHUNK`` (400) at a
time: a job settled (started, retrying, finished) past the first chunk of an event seen again
must not be queued again. On SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ghapplets.store.base import HistoryStore
from ghapplets.store.relational import JOBS_CHUNK
from tests.store.test_conformance import (
    delivery,
    job,
    open_postgres,
    open_sqlite,
    retrying,
    succeeded,
)


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[HistoryStore]:
    if request.param == "sqlite":
        opened = await open_sqlite(tmp_path / "store.db")
    else:
        opened = await open_postgres(request.getfixturevalue("pg_url"))
    yield opened.history
    await opened.close()


async def test_jobs_settled_past_the_first_chunk_of_ids_are_not_queued_again(
    store: HistoryStore,
) -> None:
    jobs = [job("d", f"a{i:04d}") for i in range(JOBS_CHUNK + 50)]  # ids sort as numbered
    ids = [j.id for j in jobs]
    assert await store.record_dispatch([delivery("d", len(jobs))], jobs) == set(ids)
    # settled: the last of the first chunk, and every one of the second chunk
    started, retried, done = ids[JOBS_CHUNK - 1 : JOBS_CHUNK + 10], ids[-20:-10], ids[-10:]
    started = started + ids[JOBS_CHUNK + 10 : -20]
    for job_id in started:
        await store.job_started(job_id, 1, time.time())
    for job_id in retried:
        await store.job_finished(retrying(job_id, 1))
    for job_id in done:
        await store.job_finished(succeeded(job_id, 1))
    settled = {*started, *retried, *done}
    assert settled == {ids[JOBS_CHUNK - 1], *ids[JOBS_CHUNK:]}

    # the event seen again (a redelivery): only the jobs never started are handed out
    again = await store.record_dispatch([delivery("d", len(jobs))], jobs)
    assert again == set(ids[: JOBS_CHUNK - 1])
