"""``ghapplets runs``: list and show runs with their steps, suspend, resume, cancel and rerun,
beside a platform that runs them (the embedded backends)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from ghapplets.applets.python_runtime import _module_name
from ghapplets.store.records import RunStatus
from ghapplets.testing.events import fixture_event
from ghapplets.testing.gateway import GatewayClient, running_gateway
from tests.cli.helpers import Result, cli
from tests.conftest import ProjectBuilder
from tests.dispatch.test_blueprint_runs import DOUBLE, WAITS_FOR_A_COMMENT, wait_for_run

TWICE = """
document: {dsl: '1.0.0', namespace: test, name: twice, version: '0.1.0'}
schedule:
  on:
    one:
      with:
        type: com.github.issues.opened
input:
  from: '${ {n: .[0].data.issue.number} }'
do:
  - first:
      call: double
      with:
        n: ${ .n }
  - second:
      call: double
      with:
        n: ${ .doubled }
"""


def applet_module(gw: GatewayClient, name: str) -> Any:
    """The module of a Python applet the platform loaded."""
    spec = gw.platform.runtimes[name].spec
    return sys.modules[_module_name(spec, spec.folder / spec.entry)]  # type: ignore[operator]


def json_rows(result: Result) -> list[dict[str, Any]]:
    """The JSON lines a command printed. The platform beside it, in this process, may log to
    the same stdout meanwhile (a run it completes): those lines are left out."""
    return [json.loads(line) for line in result.out.splitlines() if line.startswith("{")]


async def runs(*args: object) -> Result:
    # a wide terminal, so the steps' table is not folded
    return await asyncio.to_thread(lambda: cli("runs", *args, env={"COLUMNS": "220"}))


def comment_on(issue: int, body: str) -> dict[str, Any]:
    payload = fixture_event("github", "issue_comment.created").data
    payload["issue"]["number"] = issue
    payload["comment"]["body"] = body
    return payload


async def started(gw: GatewayClient, name: str, status: RunStatus) -> Any:
    await gw.send("github", "issues.opened")
    return await wait_for_run(gw.platform.backends.store, name=name, status=status)


async def test_list_show_suspend_resume(project: ProjectBuilder, tmp_path: Path) -> None:
    project.blueprint("approval", WAITS_FOR_A_COMMENT)
    root, data = project.build(), tmp_path / "data"
    where = ("-p", root, "--data-dir", data)
    async with running_gateway(root, data) as gw:
        run = await started(gw, "approval", RunStatus.WAITING)
        listed = await runs("--json", *where)
        assert listed.code == 0, listed
        [row] = json_rows(listed)
        assert (row["id"], row["status"], row["blueprint"]) == (run.id, "waiting", "test/approval")
        shown = await runs("show", run.id, "--json", *where)
        [doc] = json_rows(shown)
        assert [s["name"] for s in doc["steps"]] == ["remember", "approval"]
        assert doc["steps"][0]["output"] == {"issue": run.input[0]["data"]["issue"]["number"]}
        table = await runs("show", run.id, *where)
        assert "/do/0/remember" in table.out and "completed" in table.out

        assert (await runs("suspend", run.id, *where)).code == 0
        issue = run.input[0]["data"]["issue"]["number"]
        await gw.send("github", "issue_comment.created", payload=comment_on(issue, "go"))
        await asyncio.sleep(0.5)
        store = gw.platform.backends.store
        assert (await store.get_run(run.id)).status == RunStatus.SUSPENDED
        assert (await runs("resume", run.id, *where)).code == 0
        done = await wait_for_run(store, name="approval", status=RunStatus.COMPLETED)
        assert done.output == "go"
        again = await runs("resume", run.id, *where)
        assert again.code == 1 and "suspended" in again.err


async def test_cancel_a_waiting_run(project: ProjectBuilder, tmp_path: Path) -> None:
    project.blueprint("approval", WAITS_FOR_A_COMMENT)
    root, data = project.build(), tmp_path / "data"
    where = ("-p", root, "--data-dir", data)
    async with running_gateway(root, data) as gw:
        run = await started(gw, "approval", RunStatus.WAITING)
        assert (await runs("cancel", run.id, *where)).code == 0
        issue = run.input[0]["data"]["issue"]["number"]
        await gw.send("github", "issue_comment.created", payload=comment_on(issue, "late"))
        await asyncio.sleep(0.5)
        assert (await gw.platform.backends.store.get_run(run.id)).status == RunStatus.CANCELLED
        assert (await runs("cancel", run.id, *where)).code == 1
    listed = await runs("--status", "cancelled", "--json", *where)
    assert [r["id"] for r in json_rows(listed)] == [run.id]


async def test_rerun_from_a_task_replays_the_steps_before_it(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    project.python_applet("double", DOUBLE)
    project.blueprint("twice", TWICE)
    root, data = project.build(), tmp_path / "data"
    where = ("-p", root, "--data-dir", data)
    async with running_gateway(root, data) as gw:
        run = await started(gw, "twice", RunStatus.COMPLETED)
        calls = applet_module(gw, "double").CALLS
        assert len(calls) == 2
        result = await runs("rerun", run.id, "--from", "second", "--json", *where)
        assert result.code == 0, result
        [row] = json_rows(result)
        store = gw.platform.backends.store
        for _ in range(200):
            again = await store.get_run(row["id"])
            if again.status.final:
                break
            await asyncio.sleep(0.05)
        assert again.status == RunStatus.COMPLETED
        assert again.output == run.output
        assert len(calls) == 3  # only the second call ran again
        assert again.trigger == f"rerun:{run.id}"
        missing = await runs("rerun", run.id, "--from", "nowhere", *where)
        assert missing.code == 4 and "first, second" in missing.err


async def test_an_unknown_run_exits_4(project: ProjectBuilder, tmp_path: Path) -> None:
    root = project.build()
    async with running_gateway(root, tmp_path / "data"):
        pass
    result = await runs("show", "nope", "-p", root, "--data-dir", tmp_path / "data")
    assert result.code == 4
    assert json.dumps("nope")[1:-1] in result.err
