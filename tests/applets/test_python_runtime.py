"""The python runtime with a real applet module written into tmp_path."""

from __future__ import annotations

import asyncio
import textwrap
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ghapplets.applets.loader import discover, load_manifest
from ghapplets.applets.model import AppletSpec, Subscription
from ghapplets.applets.python_runtime import EntryError, load_applet
from ghapplets.applets.runtime import build_runtime
from ghapplets.exceptions import ConfigError

if TYPE_CHECKING:
    from tests.applets.conftest import MakeEvent, MakeInvocation, Server

HANDLER = """
import asyncio
import time

from ghapplets import Applet, Context, PermanentError, RetryableError

from . import helpers

with open({marker!r}, "a") as f:
    f.write("imported\\n")

app = Applet("triage")
CALLS = 0


@app.on("com.github.issues.opened")
async def opened(ctx: Context) -> dict:
    global CALLS
    CALLS += 1
    ctx.log.info("triaging", number=ctx.data["issue"]["number"])
    return {{
        "calls": CALLS,
        "token": ctx.secrets["token"],
        "label": helpers.label_for(ctx.data["issue"]["title"]),
        "key": ctx.idempotency_key,
        "attempt": ctx.attempt,
        "type": ctx.type,
        "id": ctx.id,
        "subject": ctx.subject,
    }}


@app.on("com.github.issues.*", when='.data.action == "labeled"')
def labeled(ctx: Context) -> str:
    return threading_name()


def threading_name() -> str:
    import threading

    return "thread" if threading.current_thread() is not threading.main_thread() else "main"


@app.on("test.retry")
async def retry(ctx: Context) -> None:
    raise RetryableError("Jira is down", retry_after=30)


@app.on("test.permanent")
async def permanent(ctx: Context) -> None:
    raise PermanentError("no such project", type="JiraProjectMissing")


@app.on("test.boom")
async def boom(ctx: Context) -> None:
    raise ValueError("kaboom")


@app.on("test.slow")
async def slow(ctx: Context) -> None:
    await asyncio.sleep(30)


@app.on("test.slow-sync")
def slow_sync(ctx: Context) -> None:
    time.sleep(1.5)


@app.on("test.undeclared")
async def undeclared(ctx: Context) -> str:
    return ctx.secrets["github_app_key"]


@app.on("test.http")
async def call_http(ctx: Context) -> dict:
    response = await ctx.http.post(ctx.data["url"], json={{"hello": "world"}})
    return {{"status": response.status_code, "echo": response.json()["received"]}}


@app.on("test.multi")
async def first(ctx: Context) -> int:
    return 1


@app.on("test.multi", "test.other")
async def second(ctx: Context) -> int:
    return 2


@app.on("test.object")
async def not_json(ctx: Context) -> object:
    return object()
"""

MANIFEST = """
name: triage
runtime: python
entry: {entry}
secrets: [token]
timeout: {timeout}
"""


@pytest.fixture
def applet_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "applets" / "triage"
    folder.mkdir(parents=True)
    marker = tmp_path / "imports.txt"
    (folder / "handler.py").write_text(HANDLER.format(marker=str(marker)))
    (folder / "helpers.py").write_text(
        "def label_for(title: str) -> str:\n    return 'bug' if 'Bug' in title else 'other'\n"
    )
    (folder / "applet.yaml").write_text(MANIFEST.format(entry="handler.py", timeout=0.5))
    return folder


@pytest.fixture
def spec(applet_dir: Path) -> AppletSpec:
    [found] = discover([applet_dir.parent])
    return found


def test_discover_fills_subscriptions_from_decorators(spec: AppletSpec) -> None:
    types = [s.type for s in spec.on]
    assert types[:2] == ["com.github.issues.opened", "com.github.issues.*"]
    assert spec.on[1].when == '.data.action == "labeled"'
    assert "test.multi" in types and types.count("test.multi") == 1


async def test_handler_result_secrets_log_and_warm_import(
    spec: AppletSpec, applet_dir: Path, invocation: MakeInvocation
) -> None:
    async with build_runtime(spec) as rt:
        outcomes = [
            await rt.invoke(invocation(job_id=f"job-{i}", attempt=i, secrets={"token": "t-1"}))
            for i in (1, 2, 3)
        ]
    assert all(o.ok for o in outcomes), outcomes
    assert [o.result["calls"] for o in outcomes] == [1, 2, 3]  # one module, kept warm
    first = outcomes[0].result
    assert first["token"] == "t-1" and first["label"] == "bug"
    assert (first["key"], first["attempt"]) == ("job-1", 1)
    assert (first["type"], first["id"], first["subject"]) == (
        "com.github.issues.opened",
        "delivery-1",
        "octo/repo#7",
    )
    assert outcomes[0].logs == ["info: triaging number=7"]
    imports = (applet_dir.parent.parent / "imports.txt").read_text().splitlines()
    assert imports == ["imported"]  # discovery and runtime share one import


async def test_sync_handler_runs_in_thread_with_when(
    spec: AppletSpec, new_event: MakeEvent, invocation: MakeInvocation
) -> None:
    async with build_runtime(spec) as rt:
        outcome = await rt.invoke(invocation(new_event("com.github.issues.labeled")))
        assert outcome.ok and outcome.result == "thread"
        edited = await rt.invoke(invocation(new_event("com.github.issues.edited")))
    assert not edited.ok and edited.error_type == "NoHandler" and not edited.retryable


async def test_errors_map_to_the_contract(
    spec: AppletSpec, new_event: MakeEvent, invocation: MakeInvocation
) -> None:
    async with build_runtime(spec) as rt:
        retry = await rt.invoke(invocation(new_event("test.retry")))
        permanent = await rt.invoke(invocation(new_event("test.permanent")))
        boom = await rt.invoke(invocation(new_event("test.boom")))
        undeclared = await rt.invoke(invocation(new_event("test.undeclared")))
        bad = await rt.invoke(invocation(new_event("test.object")))
    assert (retry.ok, retry.retryable, retry.error_type, retry.retry_after) == (
        False,
        True,
        "RetryableError",
        30,
    )
    assert retry.error_message == "Jira is down"
    assert (permanent.retryable, permanent.error_type) == (False, "JiraProjectMissing")
    assert (boom.retryable, boom.error_type, boom.error_message) == (False, "ValueError", "kaboom")
    assert undeclared.error_type == "KeyError" and "not declared" in (
        undeclared.error_message or ""
    )
    assert bad.error_type == "BadOutput"


async def test_timeouts_are_retryable(
    spec: AppletSpec, new_event: MakeEvent, invocation: MakeInvocation
) -> None:
    async with build_runtime(spec) as rt:
        outcome = await rt.invoke(invocation(new_event("test.slow")))
        sync = await rt.invoke(invocation(new_event("test.slow-sync")))
    assert (outcome.ok, outcome.retryable, outcome.error_type) == (False, True, "Timeout")
    assert (sync.ok, sync.retryable, sync.error_type) == (False, True, "Timeout")


async def test_several_handlers_give_a_list(
    spec: AppletSpec, new_event: MakeEvent, invocation: MakeInvocation
) -> None:
    async with build_runtime(spec) as rt:
        multi = await rt.invoke(invocation(new_event("test.multi")))
        other = await rt.invoke(invocation(new_event("test.other")))
    assert multi.result == [1, 2] and other.result == 2


async def test_ctx_http_is_a_working_client(
    spec: AppletSpec, new_event: MakeEvent, invocation: MakeInvocation, http_server: Server
) -> None:
    event = new_event("test.http", url=f"{http_server.url}/ok")
    async with build_runtime(spec) as rt:
        outcome = await rt.invoke(invocation(event))
    assert outcome.ok, outcome
    assert outcome.result == {"status": 200, "echo": {"hello": "world"}}


async def test_explicit_object_and_plain_function_entries(
    tmp_path: Path, invocation: MakeInvocation
) -> None:
    folder = tmp_path / "fn"
    folder.mkdir()
    (folder / "mod.py").write_text(
        "from ghapplets import Applet\n"
        "a = Applet('one')\nb = Applet('two')\n"
        "@b.on('com.github.*')\nasync def h(ctx):\n    return 'from b'\n"
        "def handle(ctx):\n    return {'plain': ctx.type}\n"
    )
    spec_b = AppletSpec(name="two", runtime="python", entry="mod.py:b", folder=folder)
    async with build_runtime(spec_b) as rt:
        assert (await rt.invoke(invocation())).result == "from b"
    spec_fn = AppletSpec(
        name="fn",
        runtime="python",
        entry="mod.py:handle",
        on=[Subscription(type="com.github.*")],
        folder=folder,
    )
    async with build_runtime(spec_fn) as rt:
        assert (await rt.invoke(invocation())).result == {"plain": "com.github.issues.opened"}
    ambiguous = AppletSpec(name="x", runtime="python", entry="mod.py", folder=folder)
    with pytest.raises(EntryError, match="several Applets"):
        load_applet(ambiguous)
    outcome = await build_runtime(ambiguous).invoke(invocation())
    assert outcome.error_type == "EntryError" and not outcome.retryable


def test_import_errors_are_located_at_entry(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "handler.py").write_text("import does_not_exist_anywhere\n")
    (folder / "applet.yaml").write_text("name: broken\nruntime: python\nentry: handler.py\n")
    with pytest.raises(ConfigError) as err:
        load_manifest(folder)
    text = str(err.value)
    assert text.startswith(f"{folder / 'applet.yaml'}:3:1: entry: cannot import handler.py")
    assert "does_not_exist_anywhere" in text


def test_syntax_error_and_missing_applet(tmp_path: Path) -> None:
    for name, source, expected in [
        ("syn", "def broken(:\n", "SyntaxError at"),
        ("none", "x = 1\n", "defines no Applet"),
        ("exits", "import sys\nsys.exit(3)\n", "SystemExit: 3"),
        ("nohandlers", "from ghapplets import Applet\napp = Applet('n')\n", "no @on"),
    ]:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "h.py").write_text(source)
        (folder / "applet.yaml").write_text(f"name: {name}\nruntime: python\nentry: h.py\n")
        with pytest.raises(ConfigError, match=expected):
            load_manifest(folder)


def test_bad_when_in_decorator_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "badjq"
    folder.mkdir()
    (folder / "h.py").write_text(
        "from ghapplets import Applet\napp = Applet('badjq')\n"
        "@app.on('a.b', when='.data | [')\nasync def h(ctx):\n    return 1\n"
    )
    (folder / "applet.yaml").write_text("name: badjq\nruntime: python\nentry: h.py\n")
    with pytest.raises(ConfigError, match=r"entry: @on.*invalid jq"):
        load_manifest(folder)


async def test_concurrent_invocations_share_the_warm_module(
    spec: AppletSpec, invocation: MakeInvocation
) -> None:
    async with build_runtime(spec) as rt:
        outcomes = await asyncio.gather(
            *(rt.invoke(invocation(secrets={"token": "x"})) for _ in range(10))
        )
    assert sorted(o.result["calls"] for o in outcomes) == list(range(1, 11))
    assert threading.active_count() < 50


def test_entry_outside_folder_is_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "a"
    folder.mkdir()
    (tmp_path / "evil.py").write_text("x = 1\n")
    spec = AppletSpec(name="a", runtime="python", entry="../evil.py", folder=folder)
    with pytest.raises(EntryError, match="outside"):
        load_applet(spec)


def test_manifest_on_wins_for_routing(tmp_path: Path, applet_dir: Path) -> None:
    text = textwrap.dedent(
        """
        name: triage
        runtime: python
        entry: handler.py:app
        on: [com.github.issues.opened]
        """
    )
    (applet_dir / "applet.yaml").write_text(text)
    loaded = load_manifest(applet_dir)
    assert [s.type for s in loaded.on] == ["com.github.issues.opened"]
