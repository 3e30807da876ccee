"""The admin API on both backends (embedded, and NATS + PostgreSQL) with a running platform:
lists with filters and keyset pages, one delivery / job / run, replays through the API seen to
run (a failed job that then succeeds), bulk replay of dead letters with a filter, run controls,
and the audit log of every change."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from ghapplets.store import admin as admin_store
from ghapplets.store.records import (
    AttemptOutcome,
    AttemptRecord,
    DeliveryStatus,
    JobStatus,
    JobUpdate,
    Role,
    RunStatus,
)
from tests.admin.harness import Admin, build_project, delivery, job_of, running_admin
from tests.conftest import ProjectBuilder
from tests.dispatch.test_blueprint_runs import WAITS_FOR_A_COMMENT, wait_for_run


async def wait_for(admin: Admin, path: str, check: Any, timeout: float = 20, **params: Any) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        doc = await admin.ok(path, **params)
        if check(doc):
            return doc
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} {params}: {doc}")
        await asyncio.sleep(0.05)


async def dead_picky_job(admin: Admin, delivery_id: str) -> dict[str, Any]:
    sent = await admin.gateway.send("github", "issues.opened", delivery_id=delivery_id)
    assert sent.status_code == 202, sent.text
    await admin.gateway.wait_for_jobs(delivery_id, count=2, timeout=20)
    job_id = f"github:{delivery_id}:picky"
    doc = await admin.ok(f"/api/v1/jobs/{job_id}", Role.VIEWER)
    assert doc["status"] == "dead", doc
    return doc  # type: ignore[no-any-return]


async def test_a_failed_job_replayed_through_the_api_then_succeeds(
    admin: Admin, marker: Path
) -> None:
    job = await dead_picky_job(admin, "replay-me")
    (attempt,) = job["attempt_log"]
    assert attempt["outcome"] == "permanent" and "not ready yet" in attempt["error_message"]
    assert job["dead_letter"]["reason"]
    dead = await admin.ok("/api/v1/jobs", Role.VIEWER, status="dead")
    assert [j["id"] for j in dead["items"]] == [job["id"]]
    letters = await admin.ok("/api/v1/dead-letters", Role.VIEWER)
    assert [d["job_id"] for d in letters["items"]] == [job["id"]]
    # a viewer may look, not replay
    refused = await admin.call("POST", f"/api/v1/jobs/{job['id']}/replay", Role.VIEWER)
    assert refused.status_code == 403
    marker.write_text("go")
    replayed = await admin.call("POST", f"/api/v1/jobs/{job['id']}/replay", Role.OPERATOR)
    assert replayed.status_code == 202, replayed.text
    assert [j["id"] for j in replayed.json()["jobs"]] == [job["id"]]
    done = await wait_for(admin, f"/api/v1/jobs/{job['id']}", lambda d: d["status"] == "succeeded")
    assert [a["outcome"] for a in done["attempt_log"]] == ["permanent", "ok"]
    assert done["dead_letter"] is None and done["result"] == {"ok": True}
    assert (await admin.ok("/api/v1/dead-letters"))["items"] == []
    shown = await admin.ok("/api/v1/deliveries/github/replay-me", Role.VIEWER)
    assert shown["status"] == "succeeded" and len(shown["jobs"]) == 2
    (line,) = (await admin.ok("/api/v1/audit", action="job.replay"))["items"]
    assert (line["actor"], line["target"], line["outcome"]) == ("t-operator", job["id"], "ok")


async def test_a_delivery_replayed_through_the_api_runs_its_applets_again(admin: Admin) -> None:
    sent = await admin.gateway.send("github", "issues.opened", delivery_id="again")
    assert sent.status_code == 202
    await admin.gateway.wait_for_jobs("again", count=2, timeout=20)
    answer = await admin.call("POST", "/api/v1/deliveries/github/again/replay", Role.OPERATOR)
    assert answer.status_code == 202, answer.text
    assert sorted(j["applet"] for j in answer.json()["jobs"]) == ["echo", "picky"]
    echo = await wait_for(
        admin,
        "/api/v1/jobs/github:again:echo",
        lambda d: d["status"] == "succeeded" and len(d["attempt_log"]) == 2,
    )
    assert echo["attempts"] == 2
    missing = await admin.call("POST", "/api/v1/deliveries/github/nope/replay", Role.OPERATOR)
    assert missing.status_code == 404
    outcomes = [
        (a["target"], a["outcome"])
        for a in (await admin.ok("/api/v1/audit", action="delivery.replay"))["items"]
    ]
    assert outcomes == [("github/nope", "not_found"), ("github/again", "ok")]


async def test_bulk_replay_of_the_dead_letters_a_filter_selects(admin: Admin, marker: Path) -> None:
    first = await dead_picky_job(admin, "bulk-0")
    later = time.time()
    for i in (1, 2, 3):
        await dead_picky_job(admin, f"bulk-{i}")
    marker.write_text("go")
    # the filter (dead since `later`) selects three; limit 2 replays the newest two
    answer = await admin.call(
        "POST",
        "/api/v1/dead-letters/replay",
        Role.OPERATOR,
        json={"since": later, "applet": "picky", "limit": 2},
    )
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["replayed"] == ["github:bulk-3:picky", "github:bulk-2:picky"]
    assert body["failed"] == [] and body["more"] is True
    again = await admin.call(
        "POST", "/api/v1/dead-letters/replay", Role.OPERATOR, json={"since": later}
    )
    assert again.json()["replayed"] == ["github:bulk-1:picky"] and not again.json()["more"]
    for i in (1, 2, 3):
        await wait_for(
            admin, f"/api/v1/jobs/github:bulk-{i}:picky", lambda d: d["status"] == "succeeded"
        )
    left = await admin.ok("/api/v1/dead-letters")
    assert [d["job_id"] for d in left["items"]] == [first["id"]]
    lines = (await admin.ok("/api/v1/audit", action="dead_letters.replay"))["items"]
    assert [line["detail"]["replayed"] for line in lines] == [1, 2]
    refused = await admin.call("POST", "/api/v1/dead-letters/replay", Role.VIEWER, json={})
    assert refused.status_code == 403


async def walk(admin: Admin, path: str, limit: int, arrive: Any, **params: Any) -> list[str]:
    """Every id of a list, page by page, with ``arrive()`` between pages."""
    seen: list[str] = []
    cursor: str | None = None
    while True:
        doc = await admin.ok(
            path, Role.VIEWER, limit=limit, **params, **({"cursor": cursor} if cursor else {})
        )
        assert doc["limit"] == limit and len(doc["items"]) <= limit
        seen += [d.get("id") or d.get("job_id") for d in doc["items"]]
        await arrive()
        cursor = doc["next_cursor"]
        if cursor is None:
            return seen


async def test_pages_neither_skip_nor_repeat_while_deliveries_arrive(admin: Admin) -> None:
    store = admin.store
    base = time.time() - 1000
    # 130 deliveries, three received at each moment (the key breaks the ties)
    old = [delivery(i, at=base + i // 3) for i in range(130)]
    await store.record_dispatch(old, [job_of(d, "echo", d.received_at) for d in old])
    counter = iter(range(1000, 2000))

    async def arrive() -> None:  # new deliveries and jobs, newer than any page left
        new = [delivery(next(counter)) for _ in range(3)]
        await store.record_dispatch(new, [job_of(d, "echo", time.time()) for d in new])

    newest_first = sorted(old, key=lambda d: (d.received_at, d.source, d.id), reverse=True)
    seen = await walk(admin, "/api/v1/deliveries", 17, arrive, source="github")
    assert len(seen) == len(set(seen))
    assert seen[-len(old) :] == [d.id for d in newest_first]
    jobs = await walk(admin, "/api/v1/jobs", 23, arrive)
    assert len(jobs) == len(set(jobs))
    assert jobs[-len(old) :] == [f"github:{d.id}:echo" for d in newest_first]


async def test_filters(admin: Admin, monkeypatch: pytest.MonkeyPatch) -> None:
    # PostgreSQL's search looks among the newest few first, then the whole window: both ways
    monkeypatch.setattr(admin_store, "SEARCH_SCAN", 2)
    store, now = admin.store, time.time()
    rows = [
        delivery(1, subject="Octo/Widgets#12", at=now - 50),
        delivery(2, subject="octo/widgets#13", at=now - 40, status=DeliveryStatus.FAILED),
        delivery(3, subject="other/thing#1", at=now - 30, type="com.github.push"),
        delivery(
            4,
            subject="100%_done",
            at=now - 20,
            source="jira",
            type="com.atlassian.jira.issue_updated",
        ),
        delivery(5, subject="misc", at=now - 10),
    ]
    await store.record_dispatch(rows, [])

    async def ids(**params: Any) -> list[str]:
        doc = await admin.ok("/api/v1/deliveries", Role.VIEWER, **params)
        return [d["id"][:8] for d in doc["items"]]

    assert await ids(source="jira") == ["d-000004"]
    assert await ids(type="com.github.push") == ["d-000003"]
    assert await ids(type="com.github.*") == ["d-000005", "d-000003", "d-000002", "d-000001"]
    assert await ids(q="WIDGETS") == ["d-000002", "d-000001"]
    assert await ids(q="O") == ["d-000004", "d-000003", "d-000002", "d-000001"]
    assert await ids(q="%_") == ["d-000004"]  # wildcards are literal
    assert await ids(q="_") == ["d-000004"]
    assert await ids(subject="octo/widgets#13") == ["d-000002"]
    assert await ids(status="failed") == ["d-000002"]
    assert await ids(since=now - 35, until=now - 15) == ["d-000004", "d-000003"]
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 35)) + "Z"
    assert "d-000003" in await ids(since=iso)
    assert await ids(source="github", q="octo", status="succeeded") == ["d-000001"]
    # a search page by page (a full page among the newest, then the rest of the window)
    first = await admin.ok("/api/v1/deliveries", Role.VIEWER, q="octo/", limit=1)
    assert [d["id"][:8] for d in first["items"]] == ["d-000002"]
    second = await admin.ok(
        "/api/v1/deliveries", Role.VIEWER, q="octo/", limit=1, cursor=first["next_cursor"]
    )
    assert [d["id"][:8] for d in second["items"]] == ["d-000001"]
    assert second["next_cursor"] is None
    # jobs: by status, applet, delivery
    jobs = [
        job_of(rows[0], "echo", now - 5),
        job_of(rows[0], "picky", now - 4),
        job_of(rows[1], "echo", now - 3),
    ]
    await store.record_dispatch([], jobs)
    got = await admin.ok("/api/v1/jobs", Role.VIEWER, applet="echo")
    assert [j["delivery_id"] for j in got["items"]] == [rows[1].id, rows[0].id]
    got = await admin.ok("/api/v1/jobs", Role.VIEWER, delivery=rows[0].id, status="queued")
    assert [j["applet"] for j in got["items"]] == ["picky", "echo"]
    assert (await admin.ok("/api/v1/jobs", Role.VIEWER, status="dead"))["items"] == []
    # deliveries by the applets of their jobs
    assert await ids(applet="picky") == ["d-000001"]
    assert await ids(applet="echo") == ["d-000002", "d-000001"]
    assert await ids(applet="echo", q="#13") == ["d-000002"]
    assert await ids(applet="nobody") == []
    # a page found among the newest (SEARCH_SCAN of them), and one that needs the rest too
    # (a page of 1 asks the store for 2: is there a next one?)
    monkeypatch.setattr(admin_store, "SEARCH_SCAN", 3)
    await store.record_dispatch(
        [],
        [
            job_of(rows[4], "echo", now - 1),
            job_of(rows[3], "picky", now),
            job_of(rows[2], "picky", now),
        ],
    )
    assert await ids(applet="picky", limit=1) == ["d-000004"]  # d-000004 and 3: the newest 3
    assert await ids(applet="echo", limit=1) == ["d-000005"]  # then d-000002: further down
    assert await ids(applet="echo") == ["d-000005", "d-000002", "d-000001"]
    assert await ids(applet="echo", q="octo") == ["d-000002", "d-000001"]


async def test_applet_times_are_the_attempts_own_durations(admin: Admin) -> None:
    store, now = admin.store, time.time()
    d1, d2, d3 = delivery(1, at=now - 600), delivery(2, at=now - 500), delivery(3, at=now - 400)
    jobs = [job_of(d1, "echo", now - 600), job_of(d2, "echo", now - 500), job_of(d3, "slow", now)]
    await store.record_dispatch([d1, d2, d3], jobs)

    async def attempt(job: str, number: int, ran: tuple[float, float], status: JobStatus) -> None:
        outcome = AttemptOutcome.OK if status == JobStatus.SUCCEEDED else AttemptOutcome.RETRYABLE
        record = AttemptRecord(job, number, ran[0], ran[1], outcome)
        await store.job_finished(JobUpdate(job, status, record))

    # queued long before they ran: the time is the attempt's, not the wait in the queue
    await attempt(jobs[0].id, 1, (now - 300, now - 299.5), JobStatus.RETRYING)
    await attempt(jobs[0].id, 2, (now - 200, now - 198), JobStatus.SUCCEEDED)
    await attempt(jobs[1].id, 1, (now - 100, now - 99.75), JobStatus.SUCCEEDED)
    await attempt(jobs[2].id, 1, (now - 7200, now - 7100), JobStatus.SUCCEEDED)  # long ago

    doc = await admin.ok("/api/v1/applet-times", Role.VIEWER, since=now - 3600)
    got = [(i["applet"], round(i["seconds"], 3)) for i in doc["items"]]
    assert got == [("echo", 0.25), ("echo", 2.0), ("echo", 0.5)]  # newest first
    assert doc["capped"] is False
    doc = await admin.ok("/api/v1/applet-times", Role.VIEWER, since=now - 3600, limit=2)
    assert len(doc["items"]) == 2 and doc["capped"] is True
    doc = await admin.ok("/api/v1/applet-times", Role.VIEWER, since=now - 250)
    assert [i["seconds"] for i in doc["items"]] == [0.25, 2.0]
    missing = await admin.call("GET", "/api/v1/applet-times", Role.VIEWER)
    assert missing.status_code == 400 and "since" in missing.text


APPROVAL = WAITS_FOR_A_COMMENT.replace(
    "  - approval:\n      listen:",
    "  - approval:\n      timeout:\n        after: PT1H\n      listen:",
)


async def test_a_run_is_shown_with_its_listeners_and_steered(
    platform_backends: str, project: ProjectBuilder, tmp_path: Path
) -> None:
    project.blueprint("approval", APPROVAL)
    root = build_project(project, tmp_path / "marker")
    async with running_admin(root, tmp_path / "data") as admin:
        await admin.gateway.send("github", "issues.opened")
        run = await wait_for_run(admin.store, name="approval", status=RunStatus.WAITING)
        listed = await admin.ok("/api/v1/runs", Role.VIEWER, blueprint="approval")
        assert [r["id"] for r in listed["items"]] == [run.id]
        assert (await admin.ok("/api/v1/runs", Role.VIEWER, status="completed"))["items"] == []
        shown = await admin.ok(f"/api/v1/runs/{run.id}", Role.VIEWER)
        assert [s["name"] for s in shown["steps"]][:1] == ["remember"]
        (listener,) = shown["listeners"]
        assert listener["event_types"] == ["com.github.issue_comment.created"]
        assert not listener["any_type"]
        assert listener["until"] is not None and listener["until"] > time.time() + 3000
        blueprints = await admin.ok("/api/v1/blueprints", Role.VIEWER)
        (b,) = blueprints["items"]
        assert (b["name"], b["tasks"]) == ("approval", ["remember", "approval"])
        one = await admin.ok("/api/v1/blueprints/test/approval/latest", Role.VIEWER)
        assert one["definition"]["document"]["name"] == "approval"
        # steer it: a viewer may not; an operator suspends, resumes, cancels; a rerun
        path = f"/api/v1/runs/{run.id}"
        assert (await admin.call("POST", f"{path}/suspend", Role.VIEWER)).status_code == 403
        suspended = await admin.call("POST", f"{path}/suspend", Role.OPERATOR)
        assert suspended.json() == {"id": run.id, "status": "suspended"}
        again = await admin.call("POST", f"{path}/suspend", Role.OPERATOR)
        assert again.status_code == 409
        resumed = await admin.call("POST", f"{path}/resume", Role.OPERATOR)
        assert resumed.status_code == 200, resumed.text
        await wait_for_run(admin.store, name="approval", status=RunStatus.WAITING)
        cancelled = await admin.call("POST", f"{path}/cancel", Role.OPERATOR)
        assert cancelled.json()["status"] == "cancelled"
        rerun = await admin.call("POST", f"{path}/rerun", Role.OPERATOR, json={"from": "approval"})
        assert rerun.status_code == 202, rerun.text
        assert rerun.json()["rerun_of"] == run.id and rerun.json()["from"] == "approval"
        no_task = await admin.call("POST", f"{path}/rerun", Role.OPERATOR, json={"from": "zz"})
        assert no_task.status_code == 404
        missing = await admin.call("POST", f"{path}/rerun", Role.OPERATOR, json={})
        assert missing.status_code == 400 and missing.json()["parameter"] == "from"
        actions = [
            (a["action"], a["outcome"])
            for a in reversed((await admin.ok("/api/v1/audit", limit=20))["items"])
        ]
        assert actions == [
            ("run.suspend", "ok"),
            ("run.suspend", "refused"),
            ("run.resume", "ok"),
            ("run.cancel", "ok"),
            ("run.rerun", "ok"),
            ("run.rerun", "not_found"),
        ]


async def test_health_and_catalog(admin: Admin) -> None:
    health = await admin.ok("/api/v1/health", Role.VIEWER)
    assert health["status"] == "ok" and health["checks"] == {"broker": "ok", "store": "ok"}
    assert set(health["queues"]) == {"events", "jobs"}
    assert all(isinstance(v, int) for v in health["queues"].values())
    assert health["dead_letters"] == 0
    applets = await admin.ok("/api/v1/applets", Role.VIEWER)
    assert sorted(a["name"] for a in applets["items"]) == ["echo", "picky"]
    picky = await admin.ok("/api/v1/applets/picky", Role.VIEWER)
    assert picky["on"] == [{"type": "com.github.issues.opened", "when": None}]
    assert (await admin.get("/api/v1/applets/none", Role.VIEWER)).status_code == 404
    sources = await admin.call("GET", "/api/v1/sources", Role.VIEWER)
    assert sources.json()["items"][0]["name"] == "github"
    assert "test-webhook-secret" not in sources.text
    secrets = await admin.ok("/api/v1/secrets", Role.ADMIN)
    assert "items" in secrets and "value" not in str(secrets)
    assert (await admin.get("/api/v1/secrets", Role.OPERATOR)).status_code == 403
