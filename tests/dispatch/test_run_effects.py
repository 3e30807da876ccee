"""What a blueprint run reaches in the worker (``worker_effects``): applets with their own
declared secrets, the blueprint's label and the connectors; connector actions; HTTP;
processes; subflows; the blueprint's own secrets. The embedded backends, in process."""

from __future__ import annotations

import secrets as pysecrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

import ghapplets
import ghapplets.logging as ghlog
from ghapplets.backends import open_backends
from ghapplets.config.models import ProjectConfig
from ghapplets.crashpoints import CrashPoint, reached
from ghapplets.fakes.config import HecToken
from ghapplets.secrets.crypto import KEY_ENV
from ghapplets.store.records import RunRecord, RunStatus
from ghapplets.testing.gateway import running_gateway
from tests.cli.helpers import logging_restored
from tests.conftest import ProjectBuilder
from tests.dispatch.engine import until
from tests.dispatch.test_blueprint_runs import wait_for_run

KEEPER = """
from ghapplets import Applet, Context

app = Applet("keeper")


@app.on("ghapplets.blueprint.call")
async def handle(ctx: Context) -> dict:
    sent = await ctx.action("splunk.send_event", {"event": {"from": "keeper", "n": ctx.data["n"]}})
    return {
        "token": ctx.secrets["tok"][::-1],  # reversed: the value itself is redacted
        "source": ctx.event.source,
        "key": ctx.idempotency_key,
        "sent": sent is not None,
    }
"""

CALLS = """
document: {dsl: '1.0.0', namespace: test, name: effects, version: '0.1.0'}
schedule:
  on:
    one:
      with:
        type: com.github.issues.opened
use:
  secrets: [conf, plain]
do:
  - own:
      set:
        region: ${ $secrets.conf.region }
        plain: ${ $secrets.plain | explode | reverse | implode }
        runtime: ${ $runtime.version }
  - ask:
      call: keeper
      with:
        n: 7
  - report:
      call: splunk.send_event
      with:
        event:
          from: blueprint
  - health:
      call: http
      with:
        method: get
        endpoint:
          uri: SPLUNK/services/collector/health
  - shell:
      run:
        shell:
          command: printf '%s' "$1"
          arguments: [from a process]
  - child:
      run:
        workflow: {namespace: test, name: child, version: '0.1.0'}
      input:
        from: '${ {n: 20} }'
"""

CHILD = """
document: {dsl: '1.0.0', namespace: test, name: child, version: '0.1.0'}
do:
  - half:
      set:
        half: ${ .n / 2 }
"""


async def finished(store: Any, name: str) -> RunRecord:
    """The run of ``name`` once it has ended (completed, faulted or cancelled)."""

    async def probe() -> RunRecord | None:
        runs = await store.list_runs(name=name)
        return runs[0] if runs and runs[0].status.final else None

    return await until(probe, f"a finished run of {name}", timeout=15)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No key from the shell, nothing registered for redaction by earlier tests."""
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setattr(ghlog, "_SECRETS", set())
    monkeypatch.setattr(ghlog, "_ORDERED", ())
    with logging_restored():
        yield


def crash_points(monkeypatch: pytest.MonkeyPatch) -> list[CrashPoint]:
    """The crash points the runs reach, in order (the real ``reached`` is still called)."""
    seen: list[CrashPoint] = []

    def record(point: CrashPoint) -> None:
        seen.append(point)
        reached(point)

    monkeypatch.setattr("ghapplets.dispatch.runs.reached", record)
    return seen


async def store_secrets(data: Path, values: dict[str, tuple[str, str]]) -> None:
    async with open_backends(ProjectConfig(), data) as b:
        for name, (value, scope) in values.items():
            await b.vault.set(name, value, scope=scope)


def with_splunk(project: ProjectBuilder, url: str) -> None:
    project.extra = (
        f"connectors:\n  splunk:\n    kind: splunk\n    url: {url}\n    token: {HecToken().token}\n"
    )


async def test_a_run_calls_an_applet_with_its_secrets_and_an_action(
    project: ProjectBuilder, tmp_path: Path, ghapplets_fakes: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    points = crash_points(monkeypatch)
    splunk = ghapplets_fakes.splunk
    with_splunk(project, splunk.base_url)
    project.python_applet("keeper", KEEPER, "secrets: [tok]\nconnectors: [splunk]\n")
    project.blueprint("effects", CALLS.replace("SPLUNK", splunk.base_url))
    project.blueprint("child", CHILD)
    data = tmp_path / "data"
    tok, plain = f"tok-{pysecrets.token_hex(8)}", f"plain-{pysecrets.token_hex(8)}"
    await store_secrets(
        data,
        {
            "tok": (tok, "applet:keeper"),
            "conf": ('{"region": "eu-1"}', "blueprint:effects"),  # an object: read as one
            "plain": (plain, "blueprint:effects"),
        },
    )
    with capture_logs(processors=[merge_contextvars]) as logs:
        async with running_gateway(project.build(), data) as gw:
            await gw.send("github", "issues.opened")
            store = gw.platform.backends.store
            run = await finished(store, "effects")
            assert run.status == RunStatus.COMPLETED, run.error
            steps = {s["name"]: s for s in await store.steps(run.id)}
    assert [e for e in logs if e["log_level"] in ("warning", "error")] == []
    assert {"event": "run completed", "log_level": "info", "run_id": run.id}.items() <= next(
        e for e in logs if e["event"] == "run completed"
    ).items()
    taken, recorded, returned = (
        CrashPoint.RUN_TAKEN,
        CrashPoint.RUN_STEP_RECORDED,
        CrashPoint.RUN_STEP_RETURNED,
    )
    assert points == [
        taken,
        recorded,  # own
        returned,  # ask: the applet returned
        recorded,
        returned,  # report: the action returned
        recorded,
        recorded,  # health
        recorded,  # shell
        recorded,  # child: its step, then itself
        recorded,
        CrashPoint.RUN_ENDED,
    ]
    assert steps["own"]["output"] == {
        "region": "eu-1",
        "plain": plain[::-1],
        "runtime": ghapplets.__version__,
    }
    assert steps["ask"]["output"] == {
        "token": tok[::-1],
        "source": "/blueprints/test/effects",
        "key": f"{run.id}/do/1/ask",
        "sent": True,
    }
    assert steps["report"]["output"] is not None
    assert steps["health"]["output"] is not None
    assert steps["shell"]["output"] == "from a process"
    assert steps["child"]["output"] == {"half": 10}
    assert [r.path for r in splunk.requests()][-1] == "/services/collector/health"
    events = sorted((e.event for e in splunk.events), key=lambda e: e["from"])
    assert events == [{"from": "blueprint"}, {"from": "keeper", "n": 7}]


GONE = """
document: {dsl: '1.0.0', namespace: test, name: later, version: '0.1.0'}
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
              type: com.github.issue_comment.created
  - ask:
      call: gone
"""

ECHO = """
from ghapplets import Applet, Context

app = Applet("gone")


@app.on("ghapplets.blueprint.call")
def handle(ctx: Context) -> str:
    return "here"
"""


async def test_a_run_calling_an_applet_removed_while_it_waited_faults(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    points = crash_points(monkeypatch)
    folder = project.python_applet("gone", ECHO)
    project.blueprint("later", GONE)
    root, data = project.build(), tmp_path / "data"
    async with running_gateway(root, data) as gw:
        await gw.send("github", "issues.opened")
        await wait_for_run(gw.platform.backends.store, name="later", status=RunStatus.WAITING)
    assert points == [CrashPoint.RUN_TAKEN, CrashPoint.RUN_WAITING]
    points.clear()
    # the applet goes; the blueprint no longer calls it, but the waiting run is pinned to the
    # definition it started with
    shutil.rmtree(folder)
    project.blueprint("later", GONE.replace("call: gone", "set: {done: true}"))
    with capture_logs(processors=[merge_contextvars]) as logs:
        async with running_gateway(root, data) as gw:
            await gw.send("github", "issue_comment.created")
            run = await finished(gw.platform.backends.store, "later")
    assert run.status == RunStatus.FAULTED
    assert run.error is not None
    assert run.error["detail"] == "no applet named 'gone' is installed"
    assert run.error["instance"] == "/do/1/ask"
    [faulted] = [e for e in logs if e["event"] == "run faulted"]
    assert faulted == {
        "event": "run faulted",
        "log_level": "info",
        "run_id": run.id,
        "delivery_id": run.id,
        "error": "Configuration Error: no applet named 'gone' is installed (status 400, "
        "type https://serverlessworkflow.io/spec/1.0.0/errors/configuration) at /do/1/ask",
    }
    # the listen step, then no return from the applet: the run ends faulted
    assert points == [CrashPoint.RUN_TAKEN, CrashPoint.RUN_STEP_RECORDED, CrashPoint.RUN_ENDED]


LOCKED = """
document: {dsl: '1.0.0', namespace: test, name: locked, version: '0.1.0'}
schedule:
  on:
    one:
      with:
        type: com.github.issues.opened
use:
  secrets: [absent]
do:
  - read:
      set:
        n: ${ $secrets.absent | length }
"""


async def test_a_run_whose_secret_cannot_be_read_faults_before_its_first_step(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    project.blueprint("locked", LOCKED)
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        await gw.send("github", "issues.opened")
        store = gw.platform.backends.store
        run = await finished(store, "locked")
        assert await store.steps(run.id) == []
    assert run.status == RunStatus.FAULTED
    assert run.error is not None
    assert run.error["type"] == "https://serverlessworkflow.io/spec/1.0.0/errors/authorization"
    assert run.error["instance"] == "/use/secrets"
    assert run.error["detail"].startswith("a secret of use.secrets cannot be read: ")
    assert "absent" in run.error["detail"]
