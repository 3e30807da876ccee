"""Retention as the platform runs it (:meth:`Platform.retention`), on SQLite and PostgreSQL:
deliveries whose jobs all succeeded (or that matched nothing) go after ``retention_days``, those
with dead letters after their own ``dead_letter_retention_days``, unfinished ones never, the
audit lines of secret reads after ``audit_retention_days``; everything younger than its cutoff
stays."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ghapplets.config.loader import LoadedConfig
from ghapplets.config.models import ProjectConfig
from ghapplets.exceptions import NotFound
from ghapplets.platform import Platform
from ghapplets.store.records import ReadOutcome, SecretReadRecord
from tests.store.test_conformance import dead, delivery, job, retrying, succeeded

DAY = 86400
RETENTION = {"retention_days": 10, "dead_letter_retention_days": 60, "audit_retention_days": 30}


@pytest.fixture(params=["sqlite", "postgresql"])
async def platform(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Platform]:
    storage: dict[str, object] = dict(RETENTION)
    if request.param == "postgresql":
        storage.update(backend="postgresql", url=request.getfixturevalue("pg_url"), pool_size=3)
    config = ProjectConfig(storage=storage)
    p = Platform(LoadedConfig(config, {}, tmp_path / "ghapplets.yaml"), tmp_path / "data")
    await p.backends.start()
    yield p
    await p.backends.close()


async def test_retention_keeps_each_delivery_until_its_own_cutoff(platform: Platform) -> None:
    store = platform.backends.store
    now = time.time()
    ages = {  # delivery: (days since received, how its one job ends)
        "ok-11": (11, "succeeded"),  # past the 10 days: pruned
        "ok-9": (9, "succeeded"),  # within them: kept
        "ok-0": (0, "succeeded"),
        "dead-61": (61, "dead"),  # past the dead letters' 60 days: pruned
        "dead-30": (30, "dead"),  # past 10 days, but within its own 60: kept
        "busy-100": (100, "retrying"),  # unfinished: kept, however old
    }
    await store.record_dispatch(
        [delivery(i, 1, now - days * DAY) for i, (days, _) in ages.items()]
        + [delivery("none-11", 0, now - 11 * DAY), delivery("none-9", 0, now - 9 * DAY)],
        [job(i, "a") for i in ages],
    )
    ends = {"succeeded": succeeded, "dead": dead, "retrying": retrying}
    for i, (_, end) in ages.items():
        await store.job_finished(ends[end](f"github:{i}:a", 1))

    assert await platform.retention() == 3
    left = sorted(d.id for d in await store.list_deliveries(limit=100))
    assert left == ["busy-100", "dead-30", "none-9", "ok-0", "ok-9"]
    for gone in ("ok-11", "dead-61"):
        with pytest.raises(NotFound):
            await store.get_job(f"github:{gone}:a")
        assert await store.list_attempts(f"github:{gone}:a") == []
    assert (await store.get_job("github:ok-9:a")).status == "succeeded"
    assert await store.dead_letter_count() == 1  # dead-30's
    assert await platform.retention() == 0  # nothing more is due


async def test_retention_deletes_audit_lines_past_their_own_cutoff(platform: Platform) -> None:
    secrets = platform.backends.secret_store
    now = time.time()
    await secrets.record_secret_reads(
        [
            SecretReadRecord(
                f"read-{days}", now - days * DAY, "cli", "s", "embedded", ReadOutcome.OK
            )
            for days in (31, 29, 0)
        ]
    )
    assert await platform.retention() == 0  # no delivery, but the audit is pruned all the same
    assert [r.id for r in await secrets.list_secret_reads()] == ["read-0", "read-29"]
