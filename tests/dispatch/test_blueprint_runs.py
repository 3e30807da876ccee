"""Blueprint runs in the platform: started by a signed webhook (``schedule.on``), calling an
applet, waiting for a correlated webhook, resumed by a worker that was not there when it
started waiting. The embedded backends, in process."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from ghapplets.store.records import RunRecord, RunStatus
from ghapplets.testing.gateway import running_gateway
from tests.conftest import ProjectBuilder

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
