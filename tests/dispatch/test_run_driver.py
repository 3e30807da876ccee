"""How the worker's run driver starts, feeds and wakes blueprint runs: a run started by an
event is named by it, ``schedule.on`` filters apply their data expressions, each listener gets
the events of its types, and the messages that wake the runs name the event that woke them.
The embedded backends, in process."""

from __future__ import annotations

import itertools
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from ghapplets.broker.base import OutboundMessage
from ghapplets.dispatch import runs
from ghapplets.dispatch.messages import JOBS
from ghapplets.events import CloudEvent
from ghapplets.exceptions import StoreUnavailable
from ghapplets.store.records import RunRecord, RunStatus
from ghapplets.testing.gateway import GatewayClient, running_gateway
from tests.conftest import ProjectBuilder
from tests.dispatch.engine import until
from tests.dispatch.test_blueprint_runs import wait_for_run


def started_by(name: str, on: str) -> str:
    return f"""
document: {{dsl: '1.0.0', namespace: test, name: {name}, version: '0.1.0'}}
schedule:
  on:
    {on}
do:
  - seen:
      set:
        action: ${{ .[0].data.action }}
"""


async def finished(store: Any, name: str) -> RunRecord:
    async def probe() -> RunRecord | None:
        runs = await store.list_runs(name=name)
        return runs[0] if runs and runs[0].status.final else None

    return await until(probe, f"a finished run of {name}", timeout=15)


def published(gw: GatewayClient, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the messages the platform publishes from now on (still published)."""
    broker = gw.platform.backends.broker
    real = broker.publish_many
    ids: list[str] = []

    async def publish_many(messages: Any) -> Any:
        ids.extend(m.msg_id for m in messages if isinstance(m, OutboundMessage))
        return await real(messages)

    monkeypatch.setattr(broker, "publish_many", publish_many)
    return ids


async def test_an_event_starts_the_runs_whose_schedule_on_it_matches(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = "with: {type: com.github.issues.opened, data: '${ .action == \"opened\" }'}"
    closed = "with: {type: com.github.issues.opened, data: '${ .action == \"closed\" }'}"
    project.blueprint("wanted", started_by("wanted", f"one: {{{opened}}}"))
    project.blueprint("unwanted", started_by("unwanted", f"one: {{{closed}}}"))
    project.blueprint("anyone", started_by("anyone", f"any: [{{{closed}}}, {{{opened}}}]"))
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        store = gw.platform.backends.store
        ids = published(gw, monkeypatch)
        await gw.send("github", "issues.opened", delivery_id="d-1")
        wanted = await finished(store, "wanted")
        anyone = await finished(store, "anyone")
        assert await store.list_runs(name="unwanted") == []
    assert wanted.status == RunStatus.COMPLETED and anyone.status == RunStatus.COMPLETED
    assert wanted.id == "github:d-1:test/wanted"
    assert anyone.id == "github:d-1:test/anyone"
    assert wanted.trigger == "github:d-1"
    assert wanted.output == {"action": "opened"}
    assert "run:github:d-1:test/wanted:start" in ids  # a second start of it is a duplicate


def listens(name: str, on: str, to: str) -> str:
    return f"""
document: {{dsl: '1.0.0', namespace: test, name: {name}, version: '0.1.0'}}
schedule:
  on:
    one:
      with:
        type: {on}
do:
  - wait:
      listen:
        to:
          one:
            with:
              type: {to}
"""


def event(kind: str, event_id: str, n: int) -> CloudEvent:
    return CloudEvent(
        id=event_id, source=f"https://example.com/{kind}", type=f"com.example.{kind}", data={"n": n}
    )


async def test_events_reach_the_listeners_of_their_types_and_wake_their_runs(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.blueprint("one", listens("one", "com.github.issues.opened", "com.example.one"))
    project.blueprint("two", listens("two", "com.github.issue_comment.created", "com.example.two"))
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        store, driver = gw.platform.backends.store, gw.platform.worker.runs
        assert driver is not None
        await gw.send("github", "issues.opened")  # the listener of one is registered first
        one = await wait_for_run(store, name="one", status=RunStatus.WAITING)
        await gw.send("github", "issue_comment.created")
        two = await wait_for_run(store, name="two", status=RunStatus.WAITING)
        ids = published(gw, monkeypatch)
        # in one batch, each listener finds its event past the other listener's row
        await driver.on_events(
            [("custom", event("two", "e-2", 2)), ("custom", event("one", "e-1", 1))]
        )
        one, two = await finished(store, "one"), await finished(store, "two")
    assert (one.status, two.status) == (RunStatus.COMPLETED, RunStatus.COMPLETED)
    assert (one.output, two.output) == ([{"n": 1}], [{"n": 2}])
    # a run woken by an event: the message names it (the broker drops a second of one id)
    assert f"run:{one.id}:event:https://example.com/one:e-1" in ids
    assert f"run:{two.id}:event:https://example.com/two:e-2" in ids


PINGS = """
document: {dsl: '1.0.0', namespace: test, name: pings, version: '0.1.0'}
schedule:
  on:
    one:
      with:
        type: com.github.issues.opened
do:
  - first:
      listen:
        to:
          one:
            with:
              type: com.example.ping
  - second:
      listen:
        to:
          one:
            with:
              type: com.example.ping
"""


def ping(n: int) -> dict[str, Any]:
    return event("ping", f"p-{n}", n).to_dict()


async def test_an_event_that_came_while_the_run_went_to_wait_wakes_it(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.blueprint("pings", PINGS)
    with capture_logs(processors=[merge_contextvars]) as logs:
        async with running_gateway(project.build(), tmp_path / "data") as gw:
            store = gw.platform.backends.store
            real = store.update_run
            listening: list[list[str]] = []

            async def update_run(run_id: str, **fields: Any) -> bool:
                # between the run's look at its inbox and its ``waiting``, an event reaches the
                # listener (and nothing else wakes the run for it)
                if fields.get("status") == RunStatus.WAITING and len(listening) < 2:
                    rows = await store.listeners_for(["com.example.ping"])
                    listening.append([r.key for r in rows if r.run_id == run_id])
                    n = len(listening)
                    await store.deliver([(r.run_id, r.key, ping(n)) for r in rows])
                return await real(run_id, **fields)

            monkeypatch.setattr(store, "update_run", update_run)
            ids = published(gw, monkeypatch)
            await gw.send("github", "issues.opened")
            run = await finished(store, "pings")
            steps = {s["name"]: s["output"] for s in await store.steps(run.id)}
    assert run.status == RunStatus.COMPLETED
    assert run.output == [{"n": 2}]
    assert steps == {"first": [{"n": 1}], "second": [{"n": 2}]}
    # the first listener was gone once its event was taken
    assert listening == [["/do/0/first"], ["/do/1/second"]]
    assert len([i for i in ids if i.startswith(f"run:{run.id}:recheck:")]) == 2
    assert [e for e in logs if e["log_level"] in ("warning", "error")] == []


WANTS_TWO = """
document: {dsl: '1.0.0', namespace: test, name: picky, version: '0.1.0'}
schedule:
  on:
    one:
      with:
        type: com.github.issues.opened
do:
  - wait:
      listen:
        to:
          one:
            with:
              type: com.example.one
              data: ${ .n == 2 }
"""


async def test_a_run_that_turned_an_event_down_waits_for_the_next(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.blueprint("picky", WANTS_TWO)
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        store, driver = gw.platform.backends.store, gw.platform.worker.runs
        assert driver is not None
        await gw.send("github", "issues.opened")
        await wait_for_run(store, name="picky", status=RunStatus.WAITING)
        ids = published(gw, monkeypatch)
        await driver.on_events([("custom", event("one", "e-1", 1))])  # its data does not do

        async def turned_down() -> RunRecord | None:
            [run] = await store.list_runs(name="picky")
            return run if run.resumes == 1 and run.status == RunStatus.WAITING else None

        await until(turned_down, "the run woken by the first event, waiting again")
        await driver.on_events([("custom", event("one", "e-2", 2))])
        run = await finished(store, "picky")
    assert run.status == RunStatus.COMPLETED and run.output == [{"n": 2}]
    assert run.resumes == 2
    # it waits for the events after those it has seen: nothing it turned down wakes it again
    assert [i for i in ids if ":recheck:" in i] == []


STUCK = """
import asyncio

from ghapplets import Applet, Context

app = Applet("stuck")


@app.on("ghapplets.blueprint.call")
async def handle(ctx: Context) -> str:
    await asyncio.sleep(3600)
    return "never"
"""


STUCK_RUN = """
document: {dsl: '1.0.0', namespace: test, name: stuck, version: '0.1.0'}
schedule:
  on:
    one:
      with:
        type: com.github.issues.opened
do:
  - wait:
      call: stuck
"""


async def test_a_run_cancelled_while_a_worker_runs_it_stops_there(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs, "LEASE_TTL", 0.3)  # renewed every 0.1 s
    project.python_applet("stuck", STUCK)
    project.blueprint("stuck", STUCK_RUN)
    with capture_logs(processors=[merge_contextvars]) as logs:
        async with running_gateway(project.build(), tmp_path / "data") as gw:
            store, broker = gw.platform.backends.store, gw.platform.backends.broker
            driver = gw.platform.worker.runs
            assert driver is not None
            claims: list[tuple[str, str, float]] = []
            kept: list[Any] = []
            real_claim, real_in_progress = store.claim_lease, driver.consumer.in_progress

            renewed_at: list[float] = []

            async def claim_lease(name: str, holder: str, ttl: float) -> bool:
                claims.append((name, holder, ttl))
                if name.startswith("run:"):
                    renewed_at.append(time.monotonic())
                if len([c for c in claims if c[0] == name]) == 3 and name.startswith("run:"):
                    # the second renewal fails: the next ones are tried all the same
                    raise StoreUnavailable("the store is down for a moment")
                return await real_claim(name, holder, ttl)

            async def in_progress(message: Any) -> None:
                kept.append(message.headers.get("ghapplets-run"))
                await real_in_progress(message)

            monkeypatch.setattr(store, "claim_lease", claim_lease)
            monkeypatch.setattr(driver.consumer, "in_progress", in_progress)
            await gw.send("github", "issues.opened", delivery_id="d-9")
            run_id = "github:d-9:test/stuck"

            async def renewed() -> bool:
                mine = [c for c in claims if c[0] == f"run:{run_id}"]
                return len(mine) >= 5 and kept.count(run_id) >= 3  # past the failure

            await until(renewed, "the run's lease and message renewed while it runs")
            # renewed well within its time to live (a third of it), so it never lapses
            gaps = [b - a for a, b in itertools.pairwise(renewed_at)]
            assert statistics.median(gaps) < 0.3, gaps
            assert (await store.get_run(run_id)).status == RunStatus.RUNNING
            assert await runs.cancel_run(store, run_id)

            async def settled() -> bool:
                return gw.platform.worker.inflight == 0 and await broker.depth(JOBS) == 0

            await until(settled, "the run's message settled")
            run = await store.get_run(run_id)
    assert run.status == RunStatus.CANCELLED
    assert {(name, ttl) for name, _, ttl in claims if name.startswith("run:")} == {
        (f"run:{run_id}", 0.3)
    }
    assert {holder for name, holder, _ in claims if name.startswith("run:")} == {
        gw.platform.instance
    }
    assert [e for e in logs if e["log_level"] in ("warning", "error")] == []


async def test_run_messages_for_unknown_held_and_suspended_runs(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.blueprint("one", listens("one", "com.github.issues.opened", "com.example.one"))
    with capture_logs(processors=[merge_contextvars]) as logs:
        async with running_gateway(project.build(), tmp_path / "data") as gw:
            store, broker = gw.platform.backends.store, gw.platform.backends.broker
            driver = gw.platform.worker.runs
            assert driver is not None
            naks: list[tuple[str, float]] = []
            real_nak = driver.consumer.nak

            async def nak(message: Any, delay: float) -> None:
                naks.append((message.headers["ghapplets-run"], delay))
                await real_nak(message, delay)

            monkeypatch.setattr(driver.consumer, "nak", nak)

            async def settled() -> bool:
                return gw.platform.worker.inflight == 0 and await broker.depth(JOBS) == 0

            # a run no store holds: dropped, with a warning
            await broker.publish_many([runs.run_message("nowhere", "x")])
            await until(settled, "the message for no run dropped")
            await gw.send("github", "issues.opened")
            run = await wait_for_run(store, name="one", status=RunStatus.WAITING)
            # another worker holds the run: put back for a fifth of the lease
            assert await store.claim_lease(f"run:{run.id}", "elsewhere", 60)
            await broker.publish_many([runs.run_message(run.id, "held")])
            await until(lambda: _true(naks), "the message for a held run put back")
            assert naks == [(run.id, runs.LEASE_TTL / 5)]
            assert await store.release_lease(f"run:{run.id}", "elsewhere") is not False
            # a suspended run: its messages are dropped until it is resumed
            assert await runs.suspend_run(store, run.id)
            await broker.publish_many([runs.run_message(run.id, "suspended")])
            await until(settled, "the messages settled")
            held = await store.get_run(run.id)
    assert held.status == RunStatus.SUSPENDED and held.resumes == 0
    assert len(naks) == 1  # the suspended run's message was not put back
    warnings = [e for e in logs if e["log_level"] in ("warning", "error")]
    assert warnings == [
        {
            "event": "a message for an unknown run is dropped",
            "log_level": "warning",
            "run_id": "nowhere",
            "delivery_id": "nowhere",
        }
    ]


async def _true(items: list[Any]) -> bool:
    return bool(items)


async def test_a_run_whose_lease_cannot_be_released_still_settles_its_message(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The release is a courtesy (the lease runs out by itself): its failure must not fail the
    run's message, which would put it back and take the ended run up again."""
    project.blueprint("once", started_by("once", "one: {with: {type: com.github.issues.opened}}"))
    with capture_logs() as logs:
        async with running_gateway(project.build(), tmp_path / "data") as gw:
            store, broker = gw.platform.backends.store, gw.platform.backends.broker
            released: list[str] = []

            async def release_lease(name: str, holder: str) -> None:
                released.append(name)
                raise StoreUnavailable("the store is down for a moment")

            monkeypatch.setattr(store, "release_lease", release_lease)
            await gw.send("github", "issues.opened", delivery_id="d-1")
            run = await finished(store, "once")

            async def settled() -> bool:
                return f"run:{run.id}" in released and await broker.depth(JOBS) == 0

            await until(settled, "the run's message settled")
    assert run.status == RunStatus.COMPLETED
    assert released.count(f"run:{run.id}") == 1  # taken up once
    assert [e for e in logs if e["log_level"] == "error"] == []
