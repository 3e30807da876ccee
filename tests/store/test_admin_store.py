"""The admin API's part of the store on both backends: tokens (a live name is unique, a revoked
one can be reused, revocation sticks), the audit log (newest first, filtered, pruned by age),
and on SQLite the query plans of the deliveries' pages (index range scans, the subject search
on its covering index, never the table)."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ghapplets.exceptions import AlreadyExists, NotFound
from ghapplets.store import admin, listing
from ghapplets.store.base import Store
from ghapplets.store.records import (
    ACTOR_MAX,
    TARGET_MAX,
    TOKEN_NAME_MAX,
    ApiTokenRecord,
    AttemptOutcome,
    AttemptRecord,
    AuditOutcome,
    AuditRecord,
    JobRecord,
    JobStatus,
    JobUpdate,
    Role,
    RunRecord,
    RunStatus,
)
from ghapplets.store.sqlite import SqliteHistoryStore
from tests.store import test_conformance
from tests.store.test_conformance import Stores, delivery, job
from tests.store.test_sqlite_store import query_plan

stores = test_conformance.stores  # the conformance suite's fixture: each backend


@pytest.fixture
def admin_store(stores: Stores) -> Store:
    assert isinstance(stores.history, Store)
    return stores.history


def token(name: str, token_id: str, role: Role = Role.VIEWER) -> ApiTokenRecord:
    return ApiTokenRecord(id=token_id, name=name, role=role, hash="h" * 64, created_at=1.0)


async def test_tokens(admin_store: Store) -> None:
    await admin_store.create_api_token(token("ci", "a" * 16, Role.OPERATOR))
    with pytest.raises(AlreadyExists, match=re.escape("a token named 'ci' exists (revoke it")):
        await admin_store.create_api_token(token("ci", "b" * 16))
    found = await admin_store.api_token("a" * 16)
    assert (found.name, found.role, found.revoked_at) == ("ci", Role.OPERATOR, None)
    await admin_store.touch_api_token("a" * 16, 50.0)
    await admin_store.touch_api_token("a" * 16, 40.0)  # an older time changes nothing
    assert (await admin_store.api_token("a" * 16)).last_used_at == 50.0
    revoked = await admin_store.revoke_api_token("ci", 60.0)
    assert revoked.revoked_at == 60.0
    assert (await admin_store.revoke_api_token("ci", 70.0)).revoked_at == 60.0  # kept
    with pytest.raises(NotFound, match=r"^no token named 'nobody'$"):
        await admin_store.revoke_api_token("nobody", 1.0)
    with pytest.raises(NotFound, match=r"^no token named 'x{65}'$"):
        await admin_store.revoke_api_token("x" * 65, 1.0)  # longer than a name may be
    with pytest.raises(NotFound, match=r"^no token of id 'c{16}'$"):
        await admin_store.api_token("c" * 16)
    # a revoked name may be used again: the new token replaces the old record
    await admin_store.create_api_token(token("ci", "d" * 16))
    assert [(t.id, t.revoked_at) for t in await admin_store.api_tokens()] == [("d" * 16, None)]
    with pytest.raises(NotFound):
        await admin_store.api_token("a" * 16)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("id", "a" * 33, "a token's id is 33 bytes of UTF-8, longer than the 32"),
        ("id", "", "a token's id must be a non-empty string"),
        ("name", "n" * 65, "a token's name is 65 bytes of UTF-8, longer than the 64"),
        ("name", "", "a token's name must be a non-empty string"),
        ("hash", "h" * 65, "a token's hash is 65 bytes of UTF-8, longer than the 64"),
        ("hash", None, "a token's hash must be a non-empty string"),
        ("created_at", "noon", "a token's created_at must be a number"),
        ("role", "root", "'root' is not a valid Role"),
    ],
)
async def test_a_token_that_cannot_be_stored_is_refused_by_name(
    admin_store: Store, field: str, value: object, error: str
) -> None:
    bad = dataclasses.replace(token("ci", "a" * 16), **{field: value})
    with pytest.raises(ValueError, match=re.escape(error)):  # InvalidRecord is a ValueError
        await admin_store.create_api_token(bad)
    assert await admin_store.api_tokens() == []  # nothing was kept


async def test_the_longest_fields_a_token_may_have_are_kept(admin_store: Store) -> None:
    longest = token("n" * TOKEN_NAME_MAX, "a" * 32)
    await admin_store.create_api_token(longest)
    assert await admin_store.api_token("a" * 32) == longest


def audit_line(**fields: Any) -> AuditRecord:
    line = AuditRecord(
        id="line-1",
        at=10.0,
        actor="ops",
        action="job.replay",
        target="job-1",
        outcome=AuditOutcome.OK,
        detail={"n": 1},
    )
    return dataclasses.replace(line, **fields)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("id", "i" * 33, "an audit line's id is 33 bytes of UTF-8, longer than the 32"),
        ("id", "", "an audit line's id must be a non-empty string"),
        ("at", "noon", "an audit line's time must be a number"),
        ("actor", "", "an audit line's actor must be a non-empty string"),
        ("action", "a" * 65, "an audit line's action is 65 bytes of UTF-8, longer than the 64"),
        ("action", "", "an audit line's action must be a non-empty string"),
        ("target", "a\x00b", "an audit line's target has a NUL character"),
        ("detail", {1: "x"}, "an audit detail cannot be stored as JSON"),
        ("outcome", "maybe", "'maybe' is not a valid AuditOutcome"),
    ],
)
async def test_an_audit_line_that_cannot_be_stored_is_refused_by_name(
    admin_store: Store, field: str, value: object, error: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        await admin_store.record_audit(audit_line(**{field: value}))
    assert await admin_store.page_audit(listing.AuditFilter(), None, 10) == []


async def test_an_audit_line_keeps_its_longest_fields_and_cuts_what_a_stranger_sent(
    admin_store: Store,
) -> None:
    await admin_store.record_audit(
        audit_line(id="i" * 32, action="a" * 64, actor="x" * 300, target="t" * 2000, detail=None)
    )
    await admin_store.record_audit(audit_line(id="line-2", at=11.0, target=""))
    second, first = await admin_store.page_audit(listing.AuditFilter(), None, 10)
    assert (first.id, first.action, first.detail) == ("i" * 32, "a" * 64, None)
    assert first.actor == "x" * ACTOR_MAX and first.target == "t" * TARGET_MAX
    assert second.target == "-"  # no target: a dash, not an empty string


async def test_tokens_are_listed_by_name(admin_store: Store) -> None:
    for name, token_id in (("zeta", "a" * 16), ("alpha", "b" * 16), ("mid", "c" * 16)):
        await admin_store.create_api_token(token(name, token_id))
    assert [t.name for t in await admin_store.api_tokens()] == ["alpha", "mid", "zeta"]


async def test_audit_lines_are_pruned_in_chunks_and_all_counted(
    admin_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admin, "AUDIT_PRUNE_CHUNK", 2)
    for i in range(5):
        await admin_store.record_audit(audit_line(id=f"line-{i}", at=float(i)))
    await admin_store.record_audit(audit_line(id="kept", at=100.0))
    assert await admin_store.prune_audit(50.0) == 5  # chunks of 2, 2 and 1
    [kept] = await admin_store.page_audit(listing.AuditFilter(), None, 10)
    assert kept.id == "kept"


async def test_a_dead_letter_unknown_is_none(admin_store: Store) -> None:
    assert await admin_store.dead_letter("no-such-job") is None


async def test_audit_lines(admin_store: Store) -> None:
    now = time.time()
    for i in range(5):
        await admin_store.record_audit(
            AuditRecord(
                id=f"line-{i}",
                at=now - 100 + i,
                actor="ops" if i % 2 else "sso:ana",
                action="job.replay",
                target=f"job-{i}",
                outcome=AuditOutcome.OK,
                detail={"n": i},
            )
        )
    newest = await admin_store.page_audit(listing.AuditFilter(), None, 10)
    assert [a.id for a in newest] == ["line-4", "line-3", "line-2", "line-1", "line-0"]
    assert newest[0].detail == {"n": 4}
    mine = await admin_store.page_audit(listing.AuditFilter(actor="ops"), None, 10)
    assert [a.id for a in mine] == ["line-3", "line-1"]
    after = await admin_store.page_audit(listing.AuditFilter(), (now - 98, "line-2"), 10)
    assert [a.id for a in after] == ["line-1", "line-0"]
    assert await admin_store.prune_audit(now - 97.5) == 3
    assert [a.id for a in await admin_store.page_audit(listing.AuditFilter(), None, 10)] == [
        "line-4",
        "line-3",
    ]


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteHistoryStore]:
    from ghapplets.store.database import Database

    db = Database(tmp_path / "plans.db")
    db.open()
    yield SqliteHistoryStore(db)
    db.close()


def test_delivery_pages_are_index_scans(sqlite_store: SqliteHistoryStore) -> None:
    key = (1.0, "github", "x")

    def shown(f: listing.DeliveryFilter, after: listing.DeliveryKey | None = key) -> str:
        return query_plan(sqlite_store, listing.deliveries_page(f, after, 51, dialect="sqlite"))

    first = shown(listing.DeliveryFilter(), None)
    assert "ix_deliveries_page" in first or "ix_deliveries_search" in first, first
    assert "TEMP B-TREE" not in first.split("|")[0]
    assert "(received_at<?)" in shown(listing.DeliveryFilter()) or "received_at" in shown(
        listing.DeliveryFilter()
    )
    assert "ix_deliveries_source_received (source=?" in shown(listing.DeliveryFilter(source="a"))
    assert "ix_deliveries_type_received (type=?" in shown(listing.DeliveryFilter(type="t"))
    assert "ix_deliveries_status_received (status=?" in shown(
        listing.DeliveryFilter(status="failed")  # type: ignore[arg-type]
    )
    # the subject search reads the covering index, never the table's rows
    search = shown(listing.DeliveryFilter(q="octo"))
    assert "COVERING INDEX ix_deliveries_search" in search, search


# -- a delivery's jobs, and the applets' times ---------------------------------------------------
async def test_a_deliverys_jobs_are_its_own_oldest_first(admin_store: Store) -> None:
    def jobs(source: str, delivery_id: str, *made: tuple[str, float]) -> list[JobRecord]:
        return [
            JobRecord(f"{source}:{delivery_id}:{a}", source, delivery_id, a, JobStatus.QUEUED, t, t)
            for a, t in made
        ]

    mine = jobs("github", "d-1", ("c", 3.0), ("a", 1.0), ("z", 2.0), ("b", 2.0))
    await admin_store.record_dispatch(
        [delivery("d-1", 4), delivery("d-1", 1, source="gitlab"), delivery("d-2", 1)],
        [*mine, *jobs("gitlab", "d-1", ("a", 0.5)), *jobs("github", "d-2", ("a", 0.5))],
    )
    listed = await admin_store.delivery_jobs("github", "d-1", 10)
    # by creation, then by id; not the other source's delivery of that id, nor another delivery
    assert [j.applet for j in listed] == ["a", "b", "z", "c"]
    assert [j.applet for j in await admin_store.delivery_jobs("github", "d-1", 2)] == ["a", "b"]
    assert await admin_store.delivery_jobs("github", "d-9", 10) == []


async def test_the_applets_times_are_of_attempts_settled_since_newest_first(
    admin_store: Store,
) -> None:
    since = 1000.0
    ended = {  # job (its applet) -> status, and its attempt's start and end
        "a": (JobStatus.SUCCEEDED, 990.0, 1000.0),  # ended just at `since`: counted
        "b": (JobStatus.DEAD, 1001.0, 1003.5),
        "c": (JobStatus.RETRYING, 1004.0, 1004.25),
        "d": (JobStatus.SUCCEEDED, 998.0, 999.5),  # before `since`
    }
    outcome = {
        JobStatus.SUCCEEDED: AttemptOutcome.OK,
        JobStatus.RETRYING: AttemptOutcome.RETRYABLE,
        JobStatus.DEAD: AttemptOutcome.PERMANENT,
    }
    await admin_store.record_dispatch(
        [delivery("d-1", 5)], [job("d-1", applet) for applet in (*ended, "e")]
    )
    for applet, (status, started, finished) in ended.items():
        job_id = f"github:d-1:{applet}"
        attempt = AttemptRecord(job_id, 1, started, finished, outcome[status])
        await admin_store.job_finished(JobUpdate(job_id, status, attempt, next_attempt_at=2e9))
    # e: an attempt ended since, but it runs again now: left out until it settles
    e = "github:d-1:e"
    await admin_store.job_finished(
        JobUpdate(
            e, JobStatus.RETRYING, AttemptRecord(e, 1, 1001.0, 1002.0, AttemptOutcome.RETRYABLE)
        )
    )
    await admin_store.job_started(e, 2, 1005.0)
    times = await admin_store.attempt_times(since, 10)
    assert [(t.applet, t.finished_at, t.seconds) for t in times] == [
        ("c", 1004.25, 0.25),
        ("b", 1003.5, 2.5),
        ("a", 1000.0, 10.0),
    ]
    assert [t.applet for t in await admin_store.attempt_times(since, 2)] == ["c", "b"]


def test_the_applets_times_read_the_jobs_by_status_and_time(
    sqlite_store: SqliteHistoryStore,
) -> None:
    plan = query_plan(sqlite_store, listing.attempt_times(1000.0, 501))
    # a range of each settled status, by the time each job was last updated: not every job
    assert "ix_jobs_status (status=? AND updated_at>?)" in plan, plan


async def test_deliveries_by_a_type_prefix_match_it_literally(admin_store: Store) -> None:
    types = ["com.github.push", "com.github.issues", "com.gitxub.push"]
    await admin_store.record_dispatch(
        [delivery(f"d-{i}", 0, 100.0 + i, type=t) for i, t in enumerate(types)], []
    )

    async def ids(type_filter: str) -> list[str]:
        f = listing.DeliveryFilter(type=type_filter)
        return [d.id for d in await admin_store.page_deliveries(f, None, 10)]

    assert await ids("com.github.p*") == ["d-0"]  # the prefix, all of it
    assert await ids("com.github.*") == ["d-1", "d-0"]
    assert await ids("com.git_ub.*") == []  # _ and % are characters here, not wildcards
    assert await ids("com.github.push") == ["d-0"]


async def test_deliveries_with_a_job_of_an_applet_page_by_page(admin_store: Store) -> None:
    """The applet's deliveries, newest first, page after page; a delivery of another source
    with the same id does not lend its job to this one."""
    deliveries, jobs = [], []
    for i in range(7):
        deliveries.append(delivery(f"d-{i}", 1, 100.0 + i))
        jobs.append(job(f"d-{i}", "triage" if i % 2 else "other"))
    deliveries.append(delivery("d-2", 1, 50.0, source="gitlab"))  # d-2 of github is "other"'s
    jobs.append(job("d-2", "triage", source="gitlab"))
    await admin_store.record_dispatch(deliveries, jobs)
    f = listing.DeliveryFilter(applet="triage")
    first = await admin_store.page_deliveries(f, None, 2)
    assert [(d.source, d.id) for d in first] == [("github", "d-5"), ("github", "d-3")]
    last = first[-1]
    rest = await admin_store.page_deliveries(f, (last.received_at, last.source, last.id), 2)
    assert [(d.source, d.id) for d in rest] == [("github", "d-1"), ("gitlab", "d-2")]
    assert all(d.body == b"" and d.headers == {} for d in first + rest)  # a list's rows only
    searched = listing.DeliveryFilter(applet="triage", q="O/R")  # and the subject, any case
    assert len(await admin_store.page_deliveries(searched, None, 10)) == 4


async def test_dead_letters_and_runs_by_filter_page_by_page(admin_store: Store) -> None:
    deliveries = [delivery(f"d-{i}", 1, source=s) for i, s in enumerate(["github"] * 3)]
    deliveries.append(delivery("d-0", 1, source="gitlab"))
    jobs = [job("d-0", "a"), job("d-1", "b"), job("d-2", "a"), job("d-0", "a", source="gitlab")]
    await admin_store.record_dispatch(deliveries, jobs)
    for n, j in enumerate(jobs):
        attempt = AttemptRecord(j.id, 1, 100.0 + n, 100.0 + n, AttemptOutcome.PERMANENT, "E", "m")
        await admin_store.job_finished(JobUpdate(j.id, JobStatus.DEAD, attempt, dead_reason="x"))

    async def dead(after: listing.DeadLetterKey | None = None, **f: str) -> list[str]:
        page = await admin_store.page_dead_letters(listing.DeadLetterFilter(**f), after, 2)
        return [d.job_id for d in page]

    assert await dead(source="github", applet="a") == ["github:d-2:a", "github:d-0:a"]
    assert await dead(source="gitlab") == ["gitlab:d-0:a"]
    assert await dead(applet="b") == ["github:d-1:b"]
    first = await admin_store.page_dead_letters(listing.DeadLetterFilter(), None, 2)
    assert [d.job_id for d in first] == ["gitlab:d-0:a", "github:d-2:a"]
    assert await dead((first[-1].dead_at, first[-1].job_id)) == ["github:d-1:b", "github:d-0:a"]

    for n, (name, status) in enumerate(
        [
            ("hello", RunStatus.COMPLETED),
            ("other", RunStatus.COMPLETED),
            ("hello", RunStatus.FAULTED),
            ("hello", RunStatus.COMPLETED),
        ]
    ):
        await admin_store.create_run(
            RunRecord(
                id=f"r-{n}",
                namespace="ns",
                name=name,
                version="1",
                digest="d" * 64,
                definition={"do": []},
                status=status,
                input={},
                started_at=200.0 + n,
                updated_at=200.0 + n,
            )
        )

    async def runs(after: listing.RunKey | None = None, **f: Any) -> list[str]:
        return [r.id for r in await admin_store.page_runs(listing.RunFilter(**f), after, 2)]

    assert await runs(blueprint="hello", status=RunStatus.COMPLETED) == ["r-3", "r-0"]
    assert await runs(blueprint="other") == ["r-1"]
    assert await runs() == ["r-3", "r-2"]
    assert await runs((202.0, "r-2")) == ["r-1", "r-0"]
