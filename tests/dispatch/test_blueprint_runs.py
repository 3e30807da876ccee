"""Blueprint runs in the platform: started by a signed webhook (``schedule.on``), calling an
applet, waiting for a correlated webhook, resumed by a worker that was not there when it
started waiting. The embedded backends, in process."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from ghapplets.dispatch.runs import RunTimers
from ghapplets.exceptions import BrokerUnavailable, StoreUnavailable
from ghapplets.store.records import RunRecord, RunStatus
from ghapplets.testing.gateway import running_gateway
from tests.conftest import ProjectBuilder
from tests.dispatch.engine import until

DOUBLE = """
from ghapplets import Applet, Context

app = Applet("double")
CALLS = []


@app.on("ghapplets.blueprint.call")
def handle(ctx: Context) -> dict:
    CALLS.append(ctx.idempotency_key)
    return {"doubled": ctx.data["n"] * 2}
"""

STARTED_BY_AN_ISSUE = """
document: {dsl: '1.0.0', namespace: test, name: triage, version: '0.1.0'}
schedule:
  on:
    one:
      with:
        type: com.github.issues.opened
input:
  from: ${ .[0].data }
do:
  - number:
      set:
        n: ${ .issue.number }
  - double:
      call: double
      with:
        n: ${ .n }
"""

WAITS_FOR_A_COMMENT = """
document: {dsl: '1.0.0', namespace: test, name: approval, version: '0.1.0'}
schedule:
  on:
    one:
      with:
        type: com.github.issues.opened
input:
  from: ${ .[0].data }
do:
  - remember:
      set:
        issue: ${ .issue.number }
  - approval:
      listen:
        to:
          one:
            with:
              type: com.github.issue_comment.created
            correlate:
              issue:
                from: ${ .data.issue.number }
                expect: ${ .issue }
      output:
        as: ${ .[0].comment.body }
"""


async def wait_for_run(
    store: Any, *, name: str, status: RunStatus, timeout: float = 15
) -> RunRecord:
    deadline = time.monotonic() + timeout
    while True:
        runs = await store.list_runs(name=name)
        if runs and runs[0].status == status:
            return runs[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no {status} run of {name}: {runs}")
        await asyncio.sleep(0.05)


async def test_a_webhook_starts_a_run_that_calls_an_applet(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    project.python_applet("double", DOUBLE)
    project.blueprint("triage", STARTED_BY_AN_ISSUE)
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        response = await gw.send("github", "issues.opened")
        assert response.status_code == 202
        store = gw.platform.backends.store
        run = await wait_for_run(store, name="triage", status=RunStatus.COMPLETED)
        issue = (await store.steps(run.id))[0]["output"]["n"]
        assert run.output == {"doubled": issue * 2}
        assert run.trigger is not None and response.json()["id"] in run.trigger
        assert [s["name"] for s in await store.steps(run.id)] == ["number", "double"]


async def test_a_waiting_run_resumes_on_a_correlated_webhook_after_a_restart(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    project.blueprint("approval", WAITS_FOR_A_COMMENT)
    root, data = project.build(), tmp_path / "data"
    async with running_gateway(root, data) as gw:
        await gw.send("github", "issues.opened")
        store = gw.platform.backends.store
        waiting = await wait_for_run(store, name="approval", status=RunStatus.WAITING)
        issue = waiting.input[0]["data"]["issue"]["number"]
    # the worker is gone while the run waits; a new one takes it up
    async with running_gateway(root, data) as gw:
        store = gw.platform.backends.store
        other = {"issue": {"number": issue + 1}, "comment": {"body": "not this one"}}
        await gw.send("github", "issue_comment.created", payload=_comment(other))
        mine = {"issue": {"number": issue}, "comment": {"body": "approved"}}
        await gw.send("github", "issue_comment.created", payload=_comment(mine))
        run = await wait_for_run(store, name="approval", status=RunStatus.COMPLETED)
        assert run.output == "approved"
        assert run.resumes >= 1


def _comment(fields: dict[str, Any]) -> dict[str, Any]:
    from ghapplets.testing.events import fixture_event

    payload = fixture_event("github", "issue_comment.created").data
    payload["issue"]["number"] = fields["issue"]["number"]
    payload["comment"]["body"] = fields["comment"]["body"]
    return payload


def scheduled(name: str, schedule: str) -> str:
    return f"""
document: {{dsl: '1.0.0', namespace: test, name: {name}, version: '0.1.0'}}
schedule:
  {schedule}
do:
  - tick:
      set:
        at: ${{ $workflow.startedAt.epoch.seconds }}
"""


async def runs_of(
    store: Any, name: str, count: int, *, prefix: str = "", timeout: float = 15
) -> list[RunRecord]:
    """The runs of ``name`` (whose id starts with ``prefix``) once there are ``count`` and none
    is pending or running."""
    deadline = time.monotonic() + timeout
    while True:
        runs = [r for r in await store.list_runs(name=name) if r.id.startswith(prefix)]
        settled = all(r.status not in (RunStatus.PENDING, RunStatus.RUNNING) for r in runs)
        if len(runs) >= count and settled:
            return runs
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} settled runs of {name} expected: {runs}")
        await asyncio.sleep(0.05)


async def timers_of(gw: Any) -> RunTimers:
    """The platform's timers, stopped and handed to the test, which ticks them at the times it
    likes (as the platform's replica, so it holds their lease)."""
    platform = gw.platform
    for task in platform._tasks:
        if task.get_name() == "blueprint-timers":
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return RunTimers(
        platform.backends.store,
        platform.backends.broker,
        platform.worker.runs,
        instance=platform.instance,
    )


async def test_every_starts_one_run_per_slot(project: ProjectBuilder, tmp_path: Path) -> None:
    project.blueprint("hourly", scheduled("hourly", "every: PT1H"))
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        store, timers = gw.platform.backends.store, await timers_of(gw)
        slot = 1_800_000_000 // 3600 * 3600
        for now in (slot + 10, slot + 20, slot + 3599):  # one slot, however many ticks
            await timers.tick(now)
        mine = f"schedule:test/hourly:{slot // 10**6}"  # not the slot of the real time now
        [first] = await runs_of(store, "hourly", 1, prefix=mine)
        assert first.id == f"schedule:test/hourly:{slot}"
        assert first.status == RunStatus.COMPLETED
        assert (first.trigger, first.input) == ("schedule", {})
        await timers.tick(slot + 3600)
        runs = await runs_of(store, "hourly", 2, prefix=mine)
        assert {r.id for r in runs} == {first.id, f"schedule:test/hourly:{slot + 3600}"}


async def test_cron_starts_at_its_latest_slot(project: ProjectBuilder, tmp_path: Path) -> None:
    project.blueprint("nightly", scheduled("nightly", "cron: '30 2 * * *'"))
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        store, timers = gw.platform.backends.store, await timers_of(gw)
        day = 1_800_000_000 // 86400 * 86400
        await timers.tick(day + 3 * 3600)  # 03:00: the 02:30 slot of that day
        await timers.tick(day + 20 * 3600)  # still that slot
        mine = f"schedule:test/nightly:{day // 10**6}"
        [run] = await runs_of(store, "nightly", 1, prefix=mine)
        assert run.id == f"schedule:test/nightly:{day + 2 * 3600 + 1800}"


async def test_after_starts_the_next_run_that_long_after_the_last(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    project.blueprint("again", scheduled("again", "after: PT10M"))
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        store, timers = gw.platform.backends.store, await timers_of(gw)
        await timers.tick(time.time())
        runs = await runs_of(store, "again", 2)  # the first, done; the next, waiting
        first = next(r for r in runs if r.id.endswith(":first"))
        waiting = next(r for r in runs if r is not first)
        assert first.status == RunStatus.COMPLETED
        assert (first.trigger, first.input) == ("schedule", {})
        assert waiting.status == RunStatus.WAITING
        assert waiting.wake_at is not None and first.finished_at is not None
        assert waiting.wake_at - first.finished_at == pytest.approx(600, abs=2)
        # one next run per run: its id is the blueprint and a digest of the run before it
        digest = hashlib.sha256(first.id.encode()).hexdigest()[:16]
        assert waiting.id == f"schedule:test/again:after:{digest}"
        assert (waiting.trigger, waiting.input) == (f"after:{first.id}", {})
        await timers.tick(waiting.wake_at + 1)
        runs = await runs_of(store, "again", 3)
        assert (await store.get_run(waiting.id)).status == RunStatus.COMPLETED


async def test_after_starts_a_first_run_whatever_blueprints_of_other_names_ran(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    """A blueprint's first run is started while none of that blueprint (namespace and name)
    ran: runs of others, even of one with the same name in another namespace, do not count."""
    project.blueprint("again", scheduled("again", "after: PT10M"))
    project.blueprint("other", scheduled("other", "every: PT1H"))
    other_again = scheduled("again", "every: PT1H").replace("namespace: test", "namespace: ops")
    project.blueprint("ops-again", other_again)
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        store, timers = gw.platform.backends.store, await timers_of(gw)
        known = {(b.namespace, b.name): b for b in timers.driver.blueprints.scheduled}
        for namespace, name in (("ops", "again"), ("test", "other")):
            run_id = f"r-{namespace}-{name}"
            await timers.driver.start(known[namespace, name], {}, trigger="cli", run_id=run_id)
        now = time.time()
        await timers.schedule(now)
        started = {r.id for r in await store.list_runs(limit=10)}
    assert "schedule:test/again:first" in started
    # and the blueprints after it in the list were scheduled too
    slot = int(now // 3600 * 3600)
    assert {f"schedule:ops/again:{slot}", f"schedule:test/other:{slot}"} <= started, started


async def test_after_starts_no_first_run_once_the_blueprint_ran(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    """A run of the blueprint itself, however it was started, is its first: schedule.after
    goes on from there, it does not start another first run."""
    project.blueprint("again", scheduled("again", "after: PT10M"))
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        store, timers = gw.platform.backends.store, await timers_of(gw)
        [again] = timers.driver.blueprints.scheduled
        await timers.driver.start(again, {}, trigger="cli", run_id="by-hand")
        await timers.schedule(time.time())
        await timers.schedule(time.time())
        ids = {r.id for r in await store.list_runs(name="again", limit=10)}
        assert "by-hand" in ids and "schedule:test/again:first" not in ids, ids


EXPIRES = """
document: {dsl: '1.0.0', namespace: test, name: expires, version: '0.1.0'}
schedule:
  on:
    one:
      with:
        type: com.github.issues.opened
do:
  - approval:
      try:
        - wait:
            listen:
              to:
                one:
                  with:
                    type: com.example.never
            timeout:
              after: PT3S
      catch:
        errors:
          with:
            type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout
        do:
          - expired:
              set: expired
"""


async def test_a_listener_times_out_while_the_run_waits_in_the_store(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    project.blueprint("expires", EXPIRES)
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        store = gw.platform.backends.store
        await gw.send("github", "issues.opened")
        waiting = await wait_for_run(store, name="expires", status=RunStatus.WAITING)
        assert waiting.wake_at is not None
        assert waiting.wake_at - waiting.started_at == pytest.approx(3, abs=1)
        done = await wait_for_run(store, name="expires", status=RunStatus.COMPLETED, timeout=20)
        assert done.output == "expired"


ANNOUNCES = """
document: {dsl: '1.0.0', namespace: test, name: announces, version: '0.1.0'}
schedule:
  on:
    one:
      with:
        type: com.github.issues.opened
do:
  - announce:
      emit:
        event:
          with:
            source: https://ghapplets.dev/test
            type: com.example.triaged
            data:
              issue: ${ .[0].data.issue.number }
"""

HEARS = """
from ghapplets import Applet, Context

app = Applet("hears")
HEARD = []


@app.on("com.example.triaged")
def handle(ctx: Context) -> int:
    HEARD.append(ctx.data["issue"])
    return ctx.data["issue"]
"""


async def heard(store: Any) -> list[Any]:
    """The jobs of the applet ``hears`` once one of them is final."""

    async def probe() -> list[Any] | None:
        jobs = await store.list_jobs(applet="hears")
        return jobs if jobs and jobs[0].status.final else None

    return await until(probe, "the applet hears' job", timeout=10)


async def test_an_emitted_event_reaches_applets_through_the_broker(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    project.python_applet("hears", HEARS)
    project.blueprint("announces", ANNOUNCES)
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        store = gw.platform.backends.store
        await timers_of(gw)  # stopped: nothing but the step itself publishes the event
        await gw.send("github", "issues.opened")
        run = await wait_for_run(store, name="announces", status=RunStatus.COMPLETED)
        assert await store.take_outbox() == []  # published, and dropped from the outbox
        jobs = await heard(store)
    assert jobs[0].result == run.input[0]["data"]["issue"]["number"]
    assert jobs[0].source == "blueprints"


async def test_an_emitted_event_whose_publish_failed_leaves_the_outbox_later(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker refuses the step's publish: the event is in the outbox with the step, and
    the timers publish it from there (once: the run's redelivery does not emit it again)."""
    project.python_applet("hears", HEARS)
    project.blueprint("announces", ANNOUNCES)
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        store, broker = gw.platform.backends.store, gw.platform.backends.broker
        timers = await timers_of(gw)
        real_publish, refused = broker.publish_many, []

        async def publish_many(messages: list[Any]) -> Any:
            if not refused and any(msg.msg_id.startswith("emit:") for msg in messages):
                refused.extend(messages)
                raise BrokerUnavailable("the broker is gone")
            return await real_publish(messages)

        monkeypatch.setattr(broker, "publish_many", publish_many)
        await gw.send("github", "issues.opened")

        async def kept() -> list[Any] | None:
            return await store.take_outbox() or None

        [event] = await until(kept, "the refused event in the outbox")
        assert refused and event["type"] == "com.example.triaged"
        assert await store.list_jobs(applet="hears") == []
        await timers.tick()  # the relay
        assert await store.take_outbox() == []
        jobs = await heard(store)
        assert [j.status for j in jobs] == ["succeeded"]


async def test_timers_that_fail_say_so_and_try_again(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.blueprint("hourly", scheduled("hourly", "every: PT1H"))
    with capture_logs() as logs:
        async with running_gateway(project.build(), tmp_path / "data") as gw:
            store, timers = gw.platform.backends.store, await timers_of(gw)
            tries: list[str] = []

            async def claim_lease(name: str, holder: str, ttl: float) -> bool:
                tries.append(name)
                raise StoreUnavailable("the store is down")

            monkeypatch.setattr(store, "claim_lease", claim_lease)
            timers.every = 0.01
            task = asyncio.create_task(timers.run())
            try:
                await until(lambda: _at_least(tries, 2), "the timers trying twice")
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    failed = [e for e in logs if e["event"] == "blueprint timers failed; trying again"]
    assert failed[0] == {
        "event": "blueprint timers failed; trying again",
        "log_level": "warning",
        "error": "the store is down",
    }


async def _at_least(items: list[Any], count: int) -> bool:
    return len(items) >= count


PAUSES = """
document: {dsl: '1.0.0', namespace: test, name: pauses, version: '0.1.0'}
schedule:
  on:
    one:
      with:
        type: com.github.issues.opened
do:
  - breath:
      wait: {milliseconds: 600}
  - first:
      set: {first: true}
  - night:
      wait: PT1H
  - second:
      set: {second: true}
"""


async def test_a_short_wait_is_slept_through_and_a_long_one_suspends_the_run(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    """A wait of up to 2 s is slept in the worker (the run holds on); a longer one leaves the
    run waiting in the store with its wake-up time, and the timers take it up then."""
    project.blueprint("pauses", PAUSES)
    with capture_logs() as logs:
        async with running_gateway(project.build(), tmp_path / "data") as gw:
            store = gw.platform.backends.store
            timers = await timers_of(gw)
            sent = time.time()
            await gw.send("github", "issues.opened")
            run = await wait_for_run(store, name="pauses", status=RunStatus.WAITING)
            waited = time.time()
            steps = {s["name"]: s for s in await store.steps(run.id)}
            assert steps["breath"]["status"] == "completed"
            assert steps["first"]["started_at"] - steps["breath"]["started_at"] >= 0.6
            assert run.wake_at is not None
            assert sent + 3600 <= run.wake_at <= waited + 3600
            assert await timers.tick(run.wake_at - 1) == 0  # not before its time
            assert await timers.tick(run.wake_at) == 1  # then taken up: it is the worker's clock
            # that says the hour is not over yet, so it waits again, for the same time

            async def waits_again() -> RunRecord | None:
                again = await store.get_run(run.id)
                return (
                    again
                    if again.resumes == run.resumes + 1 and again.status == "waiting"
                    else None
                )

            again = await until(waits_again, "the run waiting again")
    assert again.wake_at == run.wake_at and again.output is None
    # slept through in one go: no failure put the run back to find the wait over later
    assert [e for e in logs if e["log_level"] in ("error", "warning")] == []
