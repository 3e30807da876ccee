"""Races around a run in a worker: a run cancelled while its step is in flight (whatever it
does next, end or wait, is refused by the store's compare-and-set), cancelled just before a
worker takes it, and two messages of one run in one worker (only one runs it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ghapplets.broker.base import JOBS
from ghapplets.dispatch import runs
from ghapplets.store.records import RunStatus
from ghapplets.testing.gateway import running_gateway
from tests.conftest import ProjectBuilder
from tests.dispatch.engine import until

GATE = """
import asyncio
from pathlib import Path

from ghapplets import Applet, Context

app = Applet("gate")
OPEN = Path({gate!r})
STARTED = Path({started!r})


@app.on("ghapplets.blueprint.call")
async def handle(ctx: Context) -> str:
    with STARTED.open("a") as started:
        started.write(ctx.idempotency_key + "\\n")
    while not OPEN.exists():
        await asyncio.sleep(0.01)
    return "through"
"""

RUN = """
document: {{dsl: '1.0.0', namespace: test, name: gated, version: '0.1.0'}}
schedule:
  on:
    one:
      with:
        type: com.github.issues.opened
do:
  - pass:
      call: gate
{then}"""

THEN = {
    "ends": "",
    "waits": "  - night:\n      wait: PT1H\n",
}


async def step_started(started: Path) -> None:
    async def probe() -> bool:
        return started.exists()

    await until(probe, "the step running")


async def settled(gw: Any, what: str = "the run's message settled") -> None:
    """The worker has nothing in hand and the jobs stream is empty."""
    broker = gw.platform.backends.broker

    async def probe() -> bool:
        return gw.platform.worker.inflight == 0 and await broker.depth(JOBS) == 0

    await until(probe, what, timeout=15)


@pytest.mark.parametrize("then", sorted(THEN))
async def test_a_run_cancelled_while_its_step_runs_stays_cancelled(
    then: str, project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs, "LEASE_TTL", 3600.0)  # the keeper does not look again meanwhile
    gate, started = tmp_path / "open", tmp_path / "started"
    project.python_applet("gate", GATE.format(gate=str(gate), started=str(started)))
    project.blueprint("gated", RUN.format(then=THEN[then]))
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        store = gw.platform.backends.store
        await gw.send("github", "issues.opened", delivery_id="d-1")
        run_id = "github:d-1:test/gated"
        await step_started(started)
        assert await runs.cancel_run(store, run_id)
        gate.touch()  # the step returns, and the run goes on to end or to wait
        await settled(gw)
        run = await store.get_run(run_id)
        steps = await store.steps(run_id)
    assert run.status == RunStatus.CANCELLED
    assert run.output is None and run.wake_at is None
    assert [s["name"] for s in steps][:1] == ["pass"]


async def test_a_run_cancelled_just_before_a_worker_takes_it_does_not_run(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancel lands between the worker's look at the run and its taking it (while it
    claims the run's lease): the store refuses to mark it running, and no step runs."""
    gate, started = tmp_path / "open", tmp_path / "started"
    gate.touch()
    project.python_applet("gate", GATE.format(gate=str(gate), started=str(started)))
    project.blueprint("gated", RUN.format(then=""))
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        store = gw.platform.backends.store
        run_id = "github:d-1:test/gated"
        real_claim, cancelled = store.claim_lease, []

        async def claim_lease(name: str, holder: str, ttl: float) -> bool:
            if name == f"run:{run_id}" and not cancelled:
                cancelled.append(await runs.cancel_run(store, run_id))
            return await real_claim(name, holder, ttl)

        monkeypatch.setattr(store, "claim_lease", claim_lease)
        await gw.send("github", "issues.opened", delivery_id="d-1")

        async def cancel_landed() -> bool:
            return bool(cancelled)

        await until(cancel_landed, "the cancel")
        await settled(gw)
        run = await store.get_run(run_id)
        steps = await store.steps(run_id)
    assert cancelled == [True]
    assert run.status == RunStatus.CANCELLED and steps == []
    assert not started.exists()


async def test_two_messages_of_one_run_in_one_worker_run_it_once(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker holds the run's lease, so the store cannot tell its two messages apart (a
    redelivered one and a timer's, after a restart): the second waits while the first runs."""
    gate, started = tmp_path / "open", tmp_path / "started"
    project.python_applet("gate", GATE.format(gate=str(gate), started=str(started)))
    project.blueprint("gated", RUN.format(then=""))
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        store, broker = gw.platform.backends.store, gw.platform.backends.broker
        await gw.send("github", "issues.opened", delivery_id="d-1")
        run_id = "github:d-1:test/gated"
        await step_started(started)
        driver = gw.platform.worker.runs
        real_nak, naks = driver.consumer.nak, []

        async def nak(message: Any, delay: float) -> None:
            naks.append((message.headers["ghapplets-run"], delay))
            await real_nak(message, delay)

        monkeypatch.setattr(driver.consumer, "nak", nak)
        await broker.publish(runs.run_message(run_id, "again"))

        async def second_handled() -> bool:  # put back for later, or (wrongly) run beside
            return bool(naks) or len(started.read_text().splitlines()) > 1

        await until(second_handled, "the second message handled")
        gate.touch()
        await settled(gw, "both messages settled")
        run = await store.get_run(run_id)
    assert run.status == RunStatus.COMPLETED and run.output == "through"
    assert started.read_text().splitlines() == [f"{run_id}/do/0/pass"]
    assert naks == [(run_id, runs.LEASE_TTL / 5)]
