"""The body cache: bounded by bytes, least recently used out first, the store behind it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ghapplets.dispatch.bodies import BodyCache
from ghapplets.exceptions import NotFound
from ghapplets.store.database import Database
from ghapplets.store.records import DeliveryRecord, DeliveryStatus
from ghapplets.store.sqlite import SqliteHistoryStore


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    db = Database(tmp_path / "b.db")
    db.open()
    yield SqliteHistoryStore(db)
    db.close()


def delivery(i: int, body: bytes) -> DeliveryRecord:
    return DeliveryRecord(
        "github", f"d-{i}", "t", None, "", 1.0, DeliveryStatus.DISPATCHED, {}, {}, body, 1
    )


async def test_bodies_come_from_the_store_when_not_cached(store: SqliteHistoryStore) -> None:
    await store.record_dispatch([delivery(1, b"stored-1")], [])
    cache = BodyCache(store, budget=100)
    assert len(cache) == 0
    assert await cache.get("github", "d-1") == b"stored-1"
    assert len(cache) == 1  # kept for the next job of the same delivery
    store.get_delivery = None  # type: ignore[assignment]  # any further read would fail
    assert await cache.get("github", "d-1") == b"stored-1"


async def test_the_budget_bounds_memory_least_recently_used_first(
    store: SqliteHistoryStore,
) -> None:
    cache = BodyCache(store, budget=100)
    for i in range(4):
        cache.put("github", f"d-{i}", bytes([65 + i]) * 20)
    assert cache.size == 80
    await cache.get("github", "d-0")  # now the most recently used
    cache.put("github", "d-9", b"z" * 24)
    assert cache.size <= 100
    assert await cache.get("github", "d-0") == b"A" * 20  # kept: it was used
    await store.record_dispatch([delivery(1, b"from-store")], [])
    assert await cache.get("github", "d-1") == b"from-store"  # evicted: read again


async def test_a_huge_body_is_not_cached(store: SqliteHistoryStore) -> None:
    cache = BodyCache(store, budget=100)
    cache.put("github", "big", b"x" * 60)
    assert len(cache) == 0 and cache.size == 0


async def test_prefetch_reads_only_what_is_missing_and_skips_unknown(
    store: SqliteHistoryStore,
) -> None:
    await store.record_dispatch([delivery(i, f"stored-{i}".encode()) for i in range(3)], [])
    cache = BodyCache(store, budget=1000)
    cache.put("github", "d-0", b"cached")  # already in memory: not read again
    await cache.prefetch([("github", "d-0"), ("github", "d-1"), ("github", "d-2"), ("github", "x")])
    assert len(cache) == 3
    store.get_bodies = None  # type: ignore[assignment]  # any further read would fail
    assert await cache.get("github", "d-0") == b"cached"
    assert await cache.get("github", "d-1") == b"stored-1"
    assert await cache.get("github", "d-2") == b"stored-2"
    await cache.prefetch([("github", "d-1")])  # nothing missing: no read


async def test_prefetched_bodies_are_served_from_memory(store: SqliteHistoryStore) -> None:
    """What a prefetch read is kept under its source and delivery id: getting it reads nothing."""
    await store.record_dispatch([delivery(i, f"stored-{i}".encode()) for i in range(2)], [])
    cache = BodyCache(store, budget=1000)
    await cache.prefetch([("github", "d-0"), ("github", "d-1")])
    store.get_delivery = None  # type: ignore[assignment]  # any read of one body would fail
    assert await cache.get("github", "d-0") == b"stored-0"
    assert await cache.get("github", "d-1") == b"stored-1"


async def test_a_body_of_a_quarter_of_the_budget_is_cached(store: SqliteHistoryStore) -> None:
    """The limit is a quarter of the budget, that quarter included."""
    cache = BodyCache(store, budget=100)
    cache.put("github", "quarter", b"q" * 25)
    cache.put("github", "more", b"m" * 26)
    assert len(cache) == 1 and cache.size == 25
    store.get_delivery = None  # type: ignore[assignment]  # any read would fail
    assert await cache.get("github", "quarter") == b"q" * 25


async def test_bodies_that_fill_the_budget_exactly_are_all_kept(
    store: SqliteHistoryStore,
) -> None:
    cache = BodyCache(store, budget=100)
    for i in range(4):
        cache.put("github", f"d-{i}", bytes([65 + i]) * 25)
    assert len(cache) == 4 and cache.size == 100
    cache.put("github", "d-4", b"E")  # one byte over: the least recently used goes
    assert len(cache) == 4 and cache.size == 76
    store.get_delivery = None  # type: ignore[assignment]
    assert await cache.get("github", "d-1") == b"B" * 25


async def test_putting_a_body_again_replaces_it_and_makes_it_the_most_recent(
    store: SqliteHistoryStore,
) -> None:
    cache = BodyCache(store, budget=100)
    cache.put("github", "d-0", b"a" * 20)
    cache.put("github", "d-1", b"b" * 15)
    cache.put("github", "d-0", b"A" * 10)  # the same delivery again: counted once, newest
    assert len(cache) == 2 and cache.size == 25  # 15 + 10: the old 20 bytes no longer count
    cache.put("github", "d-2", b"c" * 25)
    cache.put("github", "d-3", b"d" * 25)
    cache.put("github", "d-4", b"e" * 25)
    assert cache.size == 100  # full, not over
    cache.put("github", "d-5", b"f" * 5)  # 105 bytes: d-1, now the oldest, goes
    assert cache.size == 90
    store.get_delivery = None  # type: ignore[assignment]
    assert await cache.get("github", "d-0") == b"A" * 10
    with pytest.raises(TypeError):  # not in memory: the (disabled) store is asked
        await cache.get("github", "d-1")


async def test_the_same_delivery_id_of_two_sources_is_two_bodies(
    store: SqliteHistoryStore,
) -> None:
    cache = BodyCache(store, budget=100)
    cache.put("github", "d-0", b"from github")
    cache.put("gitlab", "d-0", b"from gitlab")
    store.get_delivery = None  # type: ignore[assignment]
    assert await cache.get("github", "d-0") == b"from github"
    assert await cache.get("gitlab", "d-0") == b"from gitlab"


async def test_an_unknown_delivery_is_not_found(store: SqliteHistoryStore) -> None:
    with pytest.raises(NotFound):
        await BodyCache(store, budget=100).get("github", "d-404")
