"""Applets do not share what one of them could exhaust or leak: threads, slots, cookies."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ghapplets.applets.model import AppletSpec
from ghapplets.applets.python_runtime import load_applet
from ghapplets.applets.runtime import Runtime, build_runtime
from ghapplets.metrics import Metrics
from ghapplets.testing.gateway import running_gateway
from tests.conftest import ProjectBuilder, write

if TYPE_CHECKING:
    from tests.applets.conftest import MakeInvocation

STUCK = """
import threading
import time

from ghapplets import Applet, Context

app = Applet("stuck")
RELEASE = threading.Event()
ENTERED = []
RETURNED = []


@app.on("com.github.issues.opened")
def handle(ctx: Context) -> str:
    ENTERED.append(ctx.idempotency_key)
    RELEASE.wait(60)
    RETURNED.append(ctx.idempotency_key)
    return "late"
"""

QUICK = """
import time

from ghapplets import Applet, Context

app = Applet("quick")
STARTED = []


@app.on("com.github.issues.opened")
def handle(ctx: Context) -> str:
    STARTED.append(time.monotonic())
    return "quick"
"""


def python_spec(folder: Path, name: str, code: str, **kw: Any) -> AppletSpec:
    folder.mkdir(parents=True)
    (folder / "handler.py").write_text(textwrap.dedent(code))
    spec = AppletSpec(name=name, runtime="python", entry="handler.py", **kw)
    spec.folder = folder
    return spec


def module_globals(spec: AppletSpec) -> dict[str, Any]:
    return load_applet(spec).handlers[0].func.__globals__


def abandoned(metrics: Metrics, applet: str) -> float:
    value = metrics.registry.get_sample_value(
        "ghapplets_applet_calls_abandoned_total", {"applet": applet}
    )
    return value or 0.0


async def until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "gave up waiting"
        await asyncio.sleep(0.01)


async def test_a_stuck_sync_applet_stalls_only_itself(
    tmp_path: Path, invocation: MakeInvocation
) -> None:
    metrics = Metrics()
    stuck_spec = python_spec(tmp_path / "a", "stuck", STUCK, timeout=0.2, concurrency=4)
    quick_spec = python_spec(tmp_path / "b", "quick", QUICK, timeout=5, concurrency=1)
    stuck: Runtime = build_runtime(stuck_spec, metrics=metrics)
    quick: Runtime = build_runtime(quick_spec, metrics=metrics)
    await stuck.start()
    await quick.start()
    release: threading.Event = module_globals(stuck_spec)["RELEASE"]
    entered: list[str] = module_globals(stuck_spec)["ENTERED"]
    returned: list[str] = module_globals(stuck_spec)["RETURNED"]
    started: list[float] = module_globals(quick_spec)["STARTED"]
    try:
        # many calls of A, each blocked far past its timeout
        calls = [asyncio.create_task(stuck.invoke(invocation(job_id=f"a-{i}"))) for i in range(64)]
        await until(lambda: len(entered) >= 4)
        await asyncio.sleep(1.0)  # a few timeouts of A: more of its calls are admitted meanwhile

        # B's sync handler still starts at once
        asked = time.monotonic()
        outcome = await quick.invoke(invocation(job_id="b-1"))
        assert outcome.ok, outcome
        assert started[0] - asked < 1.0
        assert stuck.slot().kept == 4  # the first four hold A's slots and threads
        assert len(entered) == 4

        # A's other calls waited for a slot, then gave up: nothing else of A ran
        outcomes = await asyncio.wait_for(asyncio.gather(*calls), timeout=30)
        assert all(o.error_type == "Timeout" and o.retryable for o in outcomes)
        stalled = [o for o in outcomes if "is stalled" in (o.error_message or "")]
        assert len(stalled) == 60
        assert abandoned(metrics, "stuck") == 4
        assert abandoned(metrics, "quick") == 0
        assert stuck.slot().free == 0 and returned == []

        # the handlers return at last: their slots are free again, and A runs normally
        release.set()
        await until(lambda: stuck.slot().kept == 0)
        assert sorted(returned) == sorted(f"a-{i}" for i in range(4))
        assert stuck.slot().free == 4
        again = await stuck.invoke(invocation(job_id="a-again"))
        assert again.ok and again.result == "late", again
        assert abandoned(metrics, "stuck") == 4
    finally:
        release.set()
        await stuck.close()
        await quick.close()


async def test_a_waiting_call_is_not_given_up_while_the_slots_are_merely_busy(
    tmp_path: Path, invocation: MakeInvocation
) -> None:
    """Patience applies only to a stuck applet: a busy one queues its work as before."""
    slow = """
    import time
    from ghapplets import Applet, Context
    app = Applet("slow")

    @app.on("com.github.issues.opened")
    def handle(ctx: Context) -> str:
        time.sleep(0.15)
        return ctx.idempotency_key
    """
    runtime = build_runtime(python_spec(tmp_path / "s", "slow", slow, timeout=0.5, concurrency=1))
    try:
        outcomes = await asyncio.gather(
            *(runtime.invoke(invocation(job_id=f"s-{i}")) for i in range(6))
        )  # the last waits ~0.75 s for its slot, longer than the timeout
        assert [o.result for o in outcomes] == [f"s-{i}" for i in range(6)]
    finally:
        await runtime.close()


async def test_the_worker_sends_a_stalled_applets_jobs_back_without_running_them(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    project.python_applet(
        # a timeout a loaded machine cannot miss: the first call must have entered its handler
        # (a thread) before it is abandoned, or it keeps no slot and the second one runs
        "stuck",
        STUCK,
        "timeout: 1.5\nconcurrency: 1\nretry:\n  max_attempts: 1\n",
    )
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        spec = next(s for s in gw.platform.specs if s.name == "stuck")
        state = module_globals(spec)
        try:
            first = (await gw.send("github", "issues.opened")).json()["id"]
            [job] = await gw.wait_for_jobs(first)
            assert job.status == "dead" and "did not finish within 1.5s" in str(job.error_message)
            assert len(state["ENTERED"]) == 1
            # its handler still runs and keeps the only slot: the next job cannot start
            second = (await gw.send("github", "issues.opened")).json()["id"]
            [job] = await gw.wait_for_jobs(second)
            assert job.status == "dead" and job.attempts == 1, job
            assert job.error_type == "Timeout" and "is stalled" in str(job.error_message)
            assert len(state["ENTERED"]) == 1
            metrics = gw.platform.metrics
            assert abandoned(metrics, "stuck") == 1
        finally:
            state["RELEASE"].set()


class _CookieServer(BaseHTTPRequestHandler):
    """``/login`` sets a session cookie; every request's ``Cookie`` header is recorded."""

    seen: list[tuple[str, str | None]]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        type(self).seen.append((self.path, self.headers.get("Cookie")))
        self.send_response(200)
        if self.path == "/login":
            self.send_header("Set-Cookie", "session=applet-a-secret; Path=/")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = _answer


@contextlib.contextmanager
def cookie_server() -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    seen: list[tuple[str, str | None]] = []
    handler = type("Handler", (_CookieServer,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


async def test_a_cookie_set_for_one_applet_is_never_sent_by_another(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    with cookie_server() as (url, seen):
        project.python_applet(
            "login",
            f"""
            from ghapplets import Applet, Context
            app = Applet("login")

            @app.on("com.github.issues.opened")
            async def login(ctx: Context) -> None:
                (await ctx.http.get("{url}/login")).raise_for_status()

            @app.on("com.github.issues.reopened")
            async def again(ctx: Context) -> None:
                (await ctx.http.get("{url}/login-again")).raise_for_status()
            """,
        )
        project.python_applet(
            "peek",
            f"""
            from ghapplets import Applet, Context
            app = Applet("peek")

            @app.on("com.github.issues.closed")
            async def peek(ctx: Context) -> None:
                (await ctx.http.get("{url}/peek")).raise_for_status()
            """,
        )
        write(
            project.root / "applets" / "fn" / "applet.yaml",
            f"name: fn\nruntime: http\nurl: {url}/fn\non: com.github.issues.closed\n",
        )
        async with running_gateway(project.build(), tmp_path / "data") as gw:
            for action in ("opened", "closed", "reopened"):
                sent = await gw.send("github", f"issues.{action}")
                jobs = await gw.wait_for_jobs(sent.json()["id"])
                assert all(j.status == "succeeded" for j in jobs), jobs
    cookies = dict(seen)
    assert cookies["/login"] is None
    assert cookies["/peek"] is None  # another applet's request: no cookie of "login"
    assert cookies["/fn"] is None  # nor on an http applet's call
    assert cookies["/login-again"] == "session=applet-a-secret"  # its own jar keeps it
