"""One suite for every store backend: the embedded SQLite store and PostgreSQL pass the same tests.

Each test runs once per backend (``stores`` is parametrised); PostgreSQL tests get a database of
their own (``pg_url``, tests/servers.py). Backend-specific behaviour lives beside each backend's
own tests (test_database.py, test_sqlite_store.py, test_postgres_store.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ghapplets.exceptions import NotFound, StoreUnavailable
from ghapplets.store import relational
from ghapplets.store.base import HistoryStore, SecretStore
from ghapplets.store.database import Database
from ghapplets.store.postgres import PostgresDatabase, PostgresHistoryStore, PostgresSecretStore
from ghapplets.store.records import (
    AttemptOutcome,
    AttemptRecord,
    DeliveryRecord,
    DeliveryStatus,
    JobRecord,
    JobStatus,
    JobUpdate,
    ReadOutcome,
    SecretReadRecord,
    SecretRecord,
)
from ghapplets.store.sqlite import SqliteHistoryStore, SqliteSecretStore
from tests.conftest import LeaseClock as Clock

BACKENDS = ["sqlite", "postgresql"]


@dataclass
class Stores:
    history: HistoryStore
    secrets: SecretStore
    close: Callable[[], Awaitable[None]]
    # another process's view of the same database (its own connections and writer)
    other: Callable[[], Awaitable[Stores]]


async def open_sqlite(path: Path) -> Stores:
    db = Database(path)
    db.open()

    async def close() -> None:
        db.close()

    return Stores(SqliteHistoryStore(db), SqliteSecretStore(db), close, lambda: open_sqlite(path))


async def open_postgres(url: str) -> Stores:
    db = PostgresDatabase(url, pool_size=4)
    await db.open()
    return Stores(
        PostgresHistoryStore(db), PostgresSecretStore(db), db.close, lambda: open_postgres(url)
    )


@pytest.fixture(params=BACKENDS)
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    if request.param == "sqlite":
        opened = await open_sqlite(tmp_path / "store.db")
    else:
        opened = await open_postgres(request.getfixturevalue("pg_url"))
    yield opened
    await opened.close()


@pytest.fixture
def store(stores: Stores) -> HistoryStore:
    return stores.history


def delivery(
    i: str, jobs: int, received: float | None = None, *, source: str = "github", type: str = ""
) -> DeliveryRecord:
    return DeliveryRecord(
        source=source,
        id=i,
        type=type or "com.github.push",
        subject="o/r",
        time="t",
        received_at=received or time.time(),
        status=DeliveryStatus.DISPATCHED if jobs else DeliveryStatus.UNMATCHED,
        attributes={"id": i},
        headers={"x-github-event": "push"},
        body=b'{"k": "\xc3\xa9"}',
        jobs_total=jobs,
    )


def job(i: str, applet: str, source: str = "github") -> JobRecord:
    now = time.time()
    return JobRecord(f"{source}:{i}:{applet}", source, i, applet, JobStatus.QUEUED, now, now)


def attempt(job_id: str, n: int, outcome: AttemptOutcome = AttemptOutcome.OK) -> AttemptRecord:
    now = time.time()
    failed = outcome != AttemptOutcome.OK
    return AttemptRecord(
        job_id, n, now, now, outcome, "Boom" if failed else None, "no" if failed else None
    )


def succeeded(job_id: str, n: int, result: object = None) -> JobUpdate:
    return JobUpdate(job_id, JobStatus.SUCCEEDED, attempt(job_id, n), result=result)


def retrying(job_id: str, n: int) -> JobUpdate:
    return JobUpdate(
        job_id,
        JobStatus.RETRYING,
        attempt(job_id, n, AttemptOutcome.RETRYABLE),
        next_attempt_at=time.time() + 5,
    )


def dead(job_id: str, n: int) -> JobUpdate:
    return JobUpdate(
        job_id, JobStatus.DEAD, attempt(job_id, n, AttemptOutcome.PERMANENT), dead_reason="x"
    )


async def counters(store: HistoryStore, delivery_id: str) -> tuple[str, int, int, int]:
    d = await store.get_delivery(delivery_id)
    return d.status, d.jobs_total, d.jobs_succeeded, d.jobs_dead


# -- dispatch ------------------------------------------------------------------------------------
async def test_dispatch_is_idempotent(store: HistoryStore) -> None:
    for _ in range(2):  # a redelivered event records nothing new
        await store.record_dispatch([delivery("d1", 2)], [job("d1", "a"), job("d1", "b")])
    [d] = await store.list_deliveries()
    assert (d.id, d.status, d.jobs_total, d.body) == ("d1", "dispatched", 2, b'{"k": "\xc3\xa9"}')
    assert (d.attributes, d.headers) == ({"id": "d1"}, {"x-github-event": "push"})
    assert sorted(j.applet for j in await store.list_jobs(delivery_id="d1")) == ["a", "b"]


async def test_dispatch_names_the_jobs_still_to_run(store: HistoryStore) -> None:
    jobs = [job("d1", x) for x in "abcd"]
    assert await store.record_dispatch([delivery("d1", 4)], jobs) == {j.id for j in jobs}
    a, b, c, _ = (j.id for j in jobs)
    await store.job_started(a, 1, time.time())
    await store.job_finished(retrying(b, 1))
    await store.job_finished(succeeded(c, 1))
    # the event seen again: only the job that never started is handed out again
    assert await store.record_dispatch([delivery("d1", 4)], jobs) == {"github:d1:d"}
    many = [job("d2", f"x{i}") for i in range(relational.JOBS_CHUNK + 3)]  # two chunks
    assert await store.record_dispatch([delivery("d2", len(many))], many) == {j.id for j in many}
    await store.job_finished(dead(many[-1].id, 1))
    again = await store.record_dispatch([], many)
    assert again == {j.id for j in many[:-1]}


async def test_dispatch_is_idempotent_under_concurrency(store: HistoryStore) -> None:
    # 50 dispatches of overlapping events at once (redeliveries racing each other)
    def batch(k: int) -> tuple[list[DeliveryRecord], list[JobRecord]]:
        ids = [f"d{(k + n) % 10}" for n in range(3)]
        return [delivery(i, 2) for i in ids], [job(i, a) for i in ids for a in ("a", "b")]

    await asyncio.gather(*(store.record_dispatch(*batch(k)) for k in range(50)))
    deliveries = await store.list_deliveries(limit=100)
    assert sorted(d.id for d in deliveries) == sorted(f"d{n}" for n in range(10))
    assert all(d.jobs_total == 2 and d.status == "dispatched" for d in deliveries)
    assert len(await store.list_jobs(limit=100)) == 20


async def test_replayed_jobs_count_on_their_older_delivery(store: HistoryStore) -> None:
    await store.record_dispatch([delivery("d1", 1)], [job("d1", "a")])
    await store.job_finished(succeeded("github:d1:a", 1))
    assert await counters(store, "d1") == ("succeeded", 1, 1, 0)
    await store.record_dispatch([], [job("d1", "new")])  # replay matched one more applet
    assert await counters(store, "d1") == ("dispatched", 2, 1, 0)


# -- the life of a job ---------------------------------------------------------------------------
async def test_delivery_status_follows_jobs(store: HistoryStore) -> None:
    await store.record_dispatch([delivery("d1", 2)], [job("d1", "a"), job("d1", "b")])
    a, b = "github:d1:a", "github:d1:b"
    await store.job_started(a, 1, time.time())
    started = await store.get_job(a)
    assert (started.status, started.attempts) == ("running", 1)
    await store.job_finished(succeeded(a, 1, result={"x": 1}))
    assert (await store.get_delivery("d1")).status == "dispatched"
    await store.job_finished(retrying(b, 1))
    assert (await store.get_job(b)).next_attempt_at is not None
    await store.job_finished(dead(b, 2))
    assert await counters(store, "d1") == ("failed", 2, 1, 1)
    assert await store.dead_letter_count() == 1
    tries = await store.list_attempts(b)
    assert [(x.number, x.outcome, x.error_type) for x in tries] == [
        (1, "retryable", "Boom"),
        (2, "permanent", "Boom"),
    ]
    assert (await store.get_job(a)).result == {"x": 1}
    # replay lifts the dead job out of the dead letters
    requeued = await store.requeue_job(b)
    assert (requeued.status, requeued.attempts, requeued.error_type) == ("queued", 2, None)
    assert await store.get_job(b) == requeued
    assert await store.dead_letter_count() == 0
    assert await counters(store, "d1") == ("dispatched", 2, 1, 0)
    await store.job_finished(succeeded(b, 3))
    assert await counters(store, "d1") == ("succeeded", 2, 2, 0)


async def test_counters_after_retries_dead_and_success(store: HistoryStore) -> None:
    await store.record_dispatch([delivery("d1", 3)], [job("d1", x) for x in "abc"])
    a, b, c = (f"github:d1:{x}" for x in "abc")
    for n in (1, 2):
        await store.job_finished(retrying(a, n))
        await store.job_finished(retrying(c, n))
    assert await counters(store, "d1") == ("dispatched", 3, 0, 0)  # retries count as nothing
    await store.job_finished(succeeded(a, 3))
    await store.job_finished(dead(b, 1))
    assert await counters(store, "d1") == ("dispatched", 3, 1, 1)  # c is still going
    await store.job_finished(dead(c, 3))
    assert await counters(store, "d1") == ("failed", 3, 1, 2)
    assert len(await store.list_jobs(status=JobStatus.DEAD)) == 2


async def test_two_processes_finishing_jobs_of_one_delivery_count_both(stores: Stores) -> None:
    other = await stores.other()
    try:
        ids = [f"d{n}" for n in range(30)]
        await stores.history.record_dispatch(
            [delivery(i, 2) for i in ids], [job(i, a) for i in ids for a in "ab"]
        )
        for i in ids:  # each delivery's two jobs end at the same moment, in two processes
            await asyncio.gather(
                stores.history.job_finished(succeeded(f"github:{i}:a", 1)),
                other.history.job_finished(dead(f"github:{i}:b", 1)),
            )
        for i in ids:
            assert await counters(stores.history, i) == ("failed", 2, 1, 1), i
    finally:
        await other.close()


async def test_a_finished_job_is_never_recorded_again(store: HistoryStore) -> None:
    await store.record_dispatch([delivery("d1", 1)], [job("d1", "a")])
    a = "github:d1:a"
    await store.job_finished(succeeded(a, 1, result="first"))
    # a redelivery after a crash reports the job again: dead, or succeeded once more
    await store.job_finished(dead(a, 2))
    await store.job_finished(succeeded(a, 3, result="second"))
    await store.job_started(a, 4, time.time())  # and a late start changes nothing either
    got = await store.get_job(a)
    assert (got.status, got.attempts, got.result) == ("succeeded", 1, "first")
    assert [x.number for x in await store.list_attempts(a)] == [1]
    assert await store.dead_letter_count() == 0
    assert await counters(store, "d1") == ("succeeded", 1, 1, 0)


async def test_late_start_of_an_older_attempt_changes_nothing(store: HistoryStore) -> None:
    await store.record_dispatch([delivery("d1", 1)], [job("d1", "a")])
    a = "github:d1:a"
    await store.job_started(a, 2, time.time())
    await store.job_started(a, 1, time.time())  # arrives after attempt 2 started
    assert (await store.get_job(a)).attempts == 2


async def test_finishing_an_unknown_job_records_nothing(store: HistoryStore) -> None:
    await store.job_finished(dead("github:nope:a", 1))
    await store.job_started("github:nope:a", 1, time.time())
    assert await store.list_attempts("github:nope:a") == []
    assert await store.dead_letter_count() == 0


# -- queries -------------------------------------------------------------------------------------
async def test_filters_order_and_limits(store: HistoryStore) -> None:
    now = time.time()
    await store.record_dispatch(
        [
            delivery("d1", 0, now - 3),
            delivery("d2", 1, now - 2, type="com.github.pull_request.opened"),
            delivery("d3", 1, now - 1, source="gitlab", type="com.gitlab.push"),
            delivery("d4", 0, now, type="com.github_x.push"),  # "_" must not match any char
        ],
        [job("d2", "a"), job("d3", "b", source="gitlab")],
    )
    ids = [d.id for d in await store.list_deliveries()]
    assert ids == ["d4", "d3", "d2", "d1"]  # newest first
    assert [d.id for d in await store.list_deliveries(limit=2)] == ["d4", "d3"]
    assert [d.id for d in await store.list_deliveries(source="gitlab")] == ["d3"]
    unmatched = await store.list_deliveries(status=DeliveryStatus.UNMATCHED)
    assert [d.id for d in unmatched] == ["d4", "d1"]
    assert [d.id for d in await store.list_deliveries(type_prefix="com.github.")] == ["d2", "d1"]
    assert [d.id for d in await store.list_deliveries(type_prefix="com.github_")] == ["d4"]
    assert await store.list_deliveries(type_prefix="com.github%") == []
    assert [j.applet for j in await store.list_jobs(applet="a")] == ["a"]
    assert [j.applet for j in await store.list_jobs(delivery_id="d3")] == ["b"]
    assert len(await store.list_jobs(status=JobStatus.QUEUED)) == 2
    assert await store.list_jobs(status=JobStatus.RUNNING) == []
    assert len(await store.list_jobs(limit=1)) == 1


async def test_bodies_of_many_deliveries_in_one_read(store: HistoryStore) -> None:
    many = [delivery(f"b{i}", 1) for i in range(relational.BODIES_CHUNK + 5)]  # two chunks
    for i, d in enumerate(many):
        d.body = f"body-{i}".encode()
    same_id = delivery("b0", 0, source="gitlab")
    same_id.body = b"gitlab's"
    await store.record_dispatch([*many, same_id], [])
    keys = [("github", d.id) for d in many]
    bodies = await store.get_bodies([*keys, ("gitlab", "b0"), ("github", "nope"), keys[0]])
    assert bodies == {
        **{("github", d.id): d.body for d in many},
        ("gitlab", "b0"): b"gitlab's",  # the source is part of the key
    }
    assert await store.get_bodies([]) == {}


async def test_unknown_and_ambiguous_names(store: HistoryStore) -> None:
    await store.record_dispatch([delivery("same", 0), delivery("same", 0, source="gitlab")], [])
    with pytest.raises(NotFound, match="no delivery 'nope'"):
        await store.get_delivery("nope")
    with pytest.raises(NotFound, match="several sources; name one"):
        await store.get_delivery("same")
    assert (await store.get_delivery("same", "gitlab")).source == "gitlab"
    with pytest.raises(NotFound, match="no delivery"):
        await store.get_delivery("same", "jira")
    with pytest.raises(NotFound, match="no job 'nope'"):
        await store.get_job("nope")
    with pytest.raises(NotFound, match="no job 'nope'"):
        await store.requeue_job("nope")
    # whether an id was seen (what the gateway and GitHub's catch-up ask), of any or one source
    assert await store.has_delivery("same") and await store.has_delivery("same", "gitlab")
    assert not await store.has_delivery("same", "jira")
    assert not await store.has_delivery("nope") and not await store.has_delivery("nope", "github")


# -- retention -----------------------------------------------------------------------------------
async def test_prune_keeps_unfinished_and_recent_history(
    store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relational, "PRUNE_CHUNK", 2)  # several chunks
    old = time.time() - 100 * 86400
    olds = [delivery(f"old{n}", 0, old) for n in range(4)]
    await store.record_dispatch([*olds, delivery("new", 0)], [])
    await store.record_dispatch(
        [delivery("oldok", 1, old), delivery("oldfail", 1, old), delivery("oldbusy", 1, old)],
        [job("oldok", "a"), job("oldfail", "a"), job("oldbusy", "a")],
    )
    await store.job_finished(succeeded("github:oldok:a", 1))
    await store.job_finished(dead("github:oldfail:a", 1))
    await store.job_finished(retrying("github:oldbusy:a", 1))
    assert await store.prune(time.time() - 30 * 86400) == 5
    left = sorted(d.id for d in await store.list_deliveries())
    assert left == ["new", "oldbusy", "oldfail"]
    with pytest.raises(NotFound):
        await store.get_job("github:oldok:a")
    assert await store.list_attempts("github:oldok:a") == []
    assert len(await store.list_attempts("github:oldbusy:a")) == 1
    assert await store.dead_letter_count() == 1
    assert await store.prune(time.time() - 30 * 86400) == 0


async def test_dead_letters_are_pruned_after_their_own_retention(
    store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relational, "PRUNE_CHUNK", 2)  # several chunks
    now = time.time()
    ages = {"dead100a": 100, "dead100b": 100, "dead100c": 100, "dead60": 60, "mixed100": 100}
    await store.record_dispatch(
        [delivery(i, 1, now - days * 86400) for i, days in ages.items()]
        + [delivery("ok100", 1, now - 100 * 86400)],
        [job(i, "a") for i in ages] + [job("mixed100", "b"), job("ok100", "a")],
    )
    for i in ages:
        await store.job_finished(retrying(f"github:{i}:a", 1))
        await store.job_finished(dead(f"github:{i}:a", 2))
    await store.job_finished(succeeded("github:mixed100:b", 1))
    await store.job_finished(succeeded("github:ok100:a", 1))
    assert await store.dead_letter_count() == 5

    # without a dead-letter cutoff, failed deliveries stay
    assert await store.prune(now - 30 * 86400) == 1  # ok100
    assert await store.dead_letter_count() == 5

    pruned = await store.prune(now - 30 * 86400, dead_older_than=now - 90 * 86400)
    assert pruned == 4
    left = await store.list_deliveries()
    assert [(d.id, d.status) for d in left] == [("dead60", "failed")]
    assert await store.dead_letter_count() == 1
    for gone in ("github:dead100a:a", "github:mixed100:a", "github:mixed100:b"):
        with pytest.raises(NotFound):
            await store.get_job(gone)
        assert await store.list_attempts(gone) == []
    assert len(await store.list_attempts("github:dead60:a")) == 2
    assert await store.prune(now - 30 * 86400, dead_older_than=now - 90 * 86400) == 0


async def test_a_replayed_dead_letter_is_not_pruned_while_it_runs(store: HistoryStore) -> None:
    old = time.time() - 100 * 86400
    await store.record_dispatch([delivery("again", 1, old)], [job("again", "a")])
    await store.job_finished(dead("github:again:a", 1))
    await store.requeue_job("github:again:a")  # a replay: the delivery is unfinished again
    assert await store.prune(time.time(), dead_older_than=time.time()) == 0
    assert (await store.get_delivery("again")).status == "dispatched"


# -- leases --------------------------------------------------------------------------------------
async def test_lease_is_held_renewed_and_released(store: HistoryStore, lease_clock: Clock) -> None:
    assert await store.claim_lease("retention", "a", 60)
    assert not await store.claim_lease("retention", "b", 60)
    lease_clock.now += 50
    assert await store.claim_lease("retention", "a", 60)  # renewed by its holder...
    lease_clock.now += 50
    assert not await store.claim_lease("retention", "b", 60)  # ...so still a's, 100 s on
    assert await store.claim_lease("other", "b", 60)  # leases are independent
    await store.release_lease("retention", "b")  # not b's to release
    assert not await store.claim_lease("retention", "b", 60)
    await store.release_lease("retention", "a")
    assert await store.claim_lease("retention", "b", 60)


async def test_an_expired_lease_passes_to_another(store: HistoryStore, lease_clock: Clock) -> None:
    assert await store.claim_lease("retention", "a", 60)
    lease_clock.now += 59
    assert not await store.claim_lease("retention", "b", 60)
    lease_clock.now += 2  # a stopped renewing (it died): its lease ran out
    assert await store.claim_lease("retention", "b", 60)
    assert not await store.claim_lease("retention", "a", 60)


async def test_concurrent_claimers_one_wins(stores: Stores, lease_clock: Clock) -> None:
    other = await stores.other()  # a second process on the same database
    try:
        claimers = [stores.history, other.history]
        for round in range(5):
            name = f"lease-{round}"
            won = await asyncio.gather(
                *(s.claim_lease(name, f"holder-{i}", 60) for i, s in enumerate(claimers))
            )
            assert sorted(won) == [False, True], won
            loser = won.index(False)
            assert not await claimers[loser].claim_lease(name, f"holder-{loser}", 60)
        lease_clock.now += 61  # every lease has run out: now the loser wins
        assert await claimers[loser].claim_lease(name, f"holder-{loser}", 60)
        assert not await claimers[1 - loser].claim_lease(name, f"holder-{1 - loser}", 60)
    finally:
        await other.close()


# -- secrets -------------------------------------------------------------------------------------
async def test_secrets_roundtrip(stores: Stores) -> None:
    secrets = stores.secrets
    await secrets.put_secret(SecretRecord("tok", "global", b"cipher", 1.0, 1.0))
    await secrets.put_secret(SecretRecord("tok", "applet:a", b"cipher2", 5.0, 5.0))
    await secrets.put_secret(SecretRecord("abc", "global", b"\x00\xff", 2.0, 2.0))
    got = await secrets.get_secret("tok")  # replaced, keeping its created_at
    assert (got.scope, got.ciphertext, got.created_at, got.updated_at) == (
        "applet:a",
        b"cipher2",
        1.0,
        5.0,
    )
    listed = await secrets.list_secrets()
    assert [(s.name, s.ciphertext) for s in listed] == [("abc", b"\x00\xff"), ("tok", b"cipher2")]
    assert await secrets.delete_secret("tok")
    assert not await secrets.delete_secret("tok")
    with pytest.raises(NotFound, match="no secret named 'tok'"):
        await secrets.get_secret("tok")


# -- connector tokens ----------------------------------------------------------------------------
async def test_connector_tokens_roundtrip_and_replace(stores: Stores) -> None:
    secrets = stores.secrets
    key = "github:gh:https://api.github.com:2001"
    assert await secrets.get_token(key) is None
    await secrets.put_token(key, b"v2\x00\xffcipher", 1_700_000_000.5)
    assert await secrets.get_token(key) == (b"v2\x00\xffcipher", 1_700_000_000.5)
    await secrets.put_token(key, b"newer", 1_700_003_600.0)  # a new mint replaces the row
    assert await secrets.get_token(key) == (b"newer", 1_700_003_600.0)
    assert await secrets.get_token(key.replace("2001", "2002")) is None  # tokens are per key
    assert await secrets.list_secrets() == []  # tokens are not secrets


async def test_connector_tokens_are_shared_by_processes(stores: Stores) -> None:
    other = await stores.other()
    try:
        await stores.secrets.put_token("k", b"minted-by-one", 10.0)
        assert await other.secrets.get_token("k") == (b"minted-by-one", 10.0)
        await asyncio.gather(  # two processes minting at once: one row, one of theirs
            stores.secrets.put_token("k", b"a", 20.0), other.secrets.put_token("k", b"b", 20.0)
        )
        assert await stores.secrets.get_token("k") in ((b"a", 20.0), (b"b", 20.0))
    finally:
        await other.close()


# -- availability --------------------------------------------------------------------------------
async def test_ping_and_a_closed_store(stores: Stores) -> None:
    await stores.history.ping()
    await stores.close()
    closed = r"^the (PostgreSQL store|database) is closed$"
    with pytest.raises(StoreUnavailable, match=closed):
        await stores.history.ping()
    with pytest.raises(StoreUnavailable, match=closed):
        await stores.history.record_dispatch([delivery("d1", 0)], [])
    with pytest.raises(StoreUnavailable):
        await stores.secrets.get_secret("x")
    with pytest.raises(StoreUnavailable):
        await stores.secrets.get_token("x")
    with pytest.raises(StoreUnavailable):
        await stores.secrets.put_token("x", b"c", 1.0)


# -- the audit log of secret reads ---------------------------------------------------------------
def audit_line(i: int, name: str, at: float) -> SecretReadRecord:
    return SecretReadRecord(f"id-{i}", at, "applet:a", name, "openbao", ReadOutcome.OK, "global", i)


async def test_secret_reads_are_listed_newest_first_by_name_and_time(stores: Stores) -> None:
    secrets = stores.secrets
    assert await secrets.list_secret_reads() == []
    await secrets.record_secret_reads([audit_line(i, f"s{i % 2}", 1000.0 + i) for i in range(6)])
    newest = await secrets.list_secret_reads()
    assert [r.id for r in newest] == [f"id-{i}" for i in range(5, -1, -1)]
    assert newest[0] == audit_line(5, "s1", 1005.0)  # every field comes back as written
    assert [r.id for r in await secrets.list_secret_reads(name="s1")] == ["id-5", "id-3", "id-1"]
    assert [r.id for r in await secrets.list_secret_reads(since=1003.0)] == [
        "id-5",
        "id-4",
        "id-3",
    ]
    assert [r.id for r in await secrets.list_secret_reads(name="s0", limit=1)] == ["id-4"]
    # a line written again (a retried write whose answer was lost) is not repeated
    await secrets.record_secret_reads([audit_line(0, "other", 1.0)])
    assert len(await secrets.list_secret_reads()) == 6
    assert (await secrets.list_secret_reads(name="s0"))[-1].at == 1000.0
    # the other process sees them; retention deletes the old ones only
    other = await stores.other()
    try:
        assert len(await other.secrets.list_secret_reads()) == 6
    finally:
        await other.close()
    assert await secrets.prune_secret_reads(1002.0) == 2
    assert [r.id for r in await secrets.list_secret_reads()] == ["id-5", "id-4", "id-3", "id-2"]
    assert await secrets.prune_secret_reads(1002.0) == 0


async def test_secret_reads_are_pruned_in_chunks(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relational, "AUDIT_PRUNE_CHUNK", 3)
    await stores.secrets.record_secret_reads([audit_line(i, "s", float(i)) for i in range(10)])
    assert await stores.secrets.prune_secret_reads(8.0) == 8
    assert [r.id for r in await stores.secrets.list_secret_reads()] == ["id-9", "id-8"]
