"""From a signed webhook to applet results: all three runtimes, retries, dead letters, replay."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ghapplets.applets.matching import Matcher
from ghapplets.config.loader import load_config
from ghapplets.dispatch.messages import EVENTS, JOBS, event_message
from ghapplets.dispatch.replay import replay_delivery, replay_job
from ghapplets.platform import Platform
from ghapplets.sources.common import to_inbound
from ghapplets.testing.events import signed_request
from ghapplets.testing.gateway import GatewayClient, running_gateway
from tests.conftest import ProjectBuilder, free_port

# every test here runs on the embedded backends and on NATS JetStream
pytestmark = pytest.mark.usefixtures("platform_backends")


@contextlib.asynccontextmanager
async def http_applet_server() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A real HTTP function endpoint, like a Fission/Knative/OpenFaaS function."""
    seen: list[dict[str, str]] = []

    async def handle(request: Request) -> JSONResponse:
        seen.append(dict(request.headers))
        data = orjson.loads(await request.body())
        return JSONResponse({"got": request.headers["ce-type"], "repo": data["repository"]["name"]})

    port = free_port()
    config = uvicorn.Config(
        Starlette(routes=[Route("/fn", handle, methods=["POST"])]),
        host="127.0.0.1",
        port=port,
        log_level="error",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/fn", seen
    finally:
        server.should_exit = True
        await task


async def test_python_exec_and_http_applets_run_on_a_signed_webhook(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    project.python_applet(
        "py",
        """
        from ghapplets import Applet, Context
        app = Applet("py")

        @app.on("com.github.issues.opened")
        async def handle(ctx: Context) -> dict:
            return {"title": ctx.data["issue"]["title"], "key": ctx.idempotency_key}
    """,
    )
    project.exec_applet(
        "sh",
        """
        #!/bin/sh
        read -r first || true
        printf '{"lang": "sh", "type": "%s", "attempt": %s}' \\
            "$GHAPPLETS_EVENT_TYPE" "$GHAPPLETS_ATTEMPT"
    """,
        "on: [com.github.issues.*]\n",
    )
    async with http_applet_server() as (url, seen):
        folder = project.root / "applets" / "fn"
        folder.mkdir(parents=True)
        (folder / "applet.yaml").write_text(
            f"name: fn\nruntime: http\nurl: {url}\non: ['com.github.issues.opened']\n"
        )
        async with running_gateway(project.build(), tmp_path / "data") as gw:
            response = await gw.send("github", "issues.opened", delivery_id="evt-1")
            assert response.status_code == 202
            jobs = {j.applet: j for j in await gw.wait_for_jobs("evt-1", count=3)}
            other = await gw.send("github", "push", delivery_id="evt-2")
            assert other.status_code == 202
            delivery = await gw.platform.backends.store.get_delivery("evt-1")
            await asyncio.sleep(0.2)
            unmatched = await gw.platform.backends.store.get_delivery("evt-2")
    assert {a: j.status for a, j in jobs.items()} == {
        "py": "succeeded",
        "sh": "succeeded",
        "fn": "succeeded",
    }
    assert jobs["py"].result["key"] == "github:evt-1:py"
    assert jobs["sh"].result == {"lang": "sh", "type": "com.github.issues.opened", "attempt": 1}
    assert jobs["fn"].result["got"] == "com.github.issues.opened"
    assert seen[0]["idempotency-key"] == "github:evt-1:fn"
    assert seen[0]["ce-id"] == "evt-1"
    assert delivery.status == "succeeded" and delivery.jobs_total == 3
    assert (unmatched.status, unmatched.jobs_total) == ("unmatched", 0)


async def test_failing_applet_backs_off_dead_letters_and_succeeds_on_replay(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    marker = tmp_path / "fixed"
    project.python_applet(
        "flaky",
        f"""
        from pathlib import Path
        from ghapplets import Applet, Context, RetryableError
        app = Applet("flaky")

        @app.on("com.github.issues.opened")
        async def handle(ctx: Context) -> str:
            if not Path({str(marker)!r}).exists():
                raise RetryableError("downstream is down", type="Upstream503")
            return "done"
    """,
        "retry:\n  max_attempts: 4\n  initial_delay: 0.05\n  factor: 2\n",
    )
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        store = gw.platform.backends.store
        assert (await gw.send("github", "issues.opened", delivery_id="f-1")).status_code == 202
        [job] = await gw.wait_for_jobs("f-1", count=1)
        assert job.status == "dead" and job.attempts == 4
        attempts = await store.list_attempts(job.id)
        assert [a.outcome for a in attempts] == ["retryable"] * 4
        assert all(a.error_type == "Upstream503" for a in attempts)
        gaps = [b.started_at - a.finished_at for a, b in itertools.pairwise(attempts)]
        assert gaps[0] >= 0.025 and gaps[1] >= gaps[0] * 0.9 and gaps[2] >= 0.1, gaps
        assert (await store.get_delivery("f-1")).status == "failed"
        assert await store.dead_letter_count() == 1
        metrics = gw.platform.metrics.render().decode()
        assert 'ghapplets_job_retries_total{applet="flaky"} 3.0' in metrics
        assert 'ghapplets_dead_letters_total{applet="flaky"} 1.0' in metrics

        marker.write_text("ok")
        broker = gw.platform.backends.broker
        await replay_job(store, broker, job.id)
        for _ in range(200):
            job = await store.get_job(job.id)
            if job.status == "succeeded":
                break
            await asyncio.sleep(0.02)
        assert job.status == "succeeded" and job.result == "done"
        assert [a.number for a in await store.list_attempts(job.id)] == [1, 2, 3, 4, 5]
        assert (await store.get_delivery("f-1")).status == "succeeded"
        assert await store.dead_letter_count() == 0

        # replaying the whole delivery runs it again (a new attempt of the same job)
        queued = await replay_delivery(store, broker, Matcher(gw.platform.specs), "f-1")
        assert [j.applet for j in queued] == ["flaky"]
        deadline = time.monotonic() + 10
        while len(await store.list_attempts(job.id)) < 6:  # fails if it never runs again
            assert time.monotonic() < deadline, "the replayed delivery's job did not run again"
            await asyncio.sleep(0.02)
        assert [a.number for a in await store.list_attempts(job.id)] == [1, 2, 3, 4, 5, 6]
        assert (await store.get_job(job.id)).status == "succeeded"


async def test_permanent_error_is_dead_at_once(project: ProjectBuilder, tmp_path: Path) -> None:
    project.exec_applet(
        "broken", "#!/bin/sh\necho 'bad config' >&2\nexit 3\n", "on: [com.github.*]\n"
    )
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        await gw.send("github", "push", delivery_id="p-1")
        [job] = await gw.wait_for_jobs("p-1", count=1)
        assert (job.status, job.attempts) == ("dead", 1)
        assert "bad config" in (job.error_message or "")


def issue(number: int, title: str) -> dict[str, object]:
    return {
        "action": "opened",
        "issue": {"number": number, "title": title, "user": {"login": "u"}},
        "repository": {"full_name": "o/r"},
        "sender": {"login": "u"},
    }


async def test_jq_condition_selects_events(project: ProjectBuilder, tmp_path: Path) -> None:
    project.exec_applet(
        "only-bugs",
        "#!/bin/sh\necho '\"bug\"'\n",
        """
        on:
          - type: com.github.issues.opened
            when: '.data.issue.title | test("bug")'
    """,
    )
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        store = gw.platform.backends.store
        await gw.send(
            "github", "issues.opened", delivery_id="q-1", payload=issue(1, "feature request")
        )
        await gw.send("github", "issues.opened", delivery_id="q-2", payload=issue(2, "a bug here"))
        jobs = await gw.wait_for_jobs("q-2", count=1)
        assert jobs[0].result == "bug"
        first = await store.get_delivery("q-1")
        assert (first.status, first.jobs_total) == ("unmatched", 0)


async def test_missing_declared_secret_is_a_permanent_error(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    project.exec_applet(
        "needs-token", "#!/bin/sh\necho 1\n", "on: [com.github.*]\nsecrets: [not-stored]\n"
    )
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        await gw.send("github", "push", delivery_id="s-1")
        [job] = await gw.wait_for_jobs("s-1", count=1)
    assert (job.status, job.attempts, job.error_type) == ("dead", 1, "SecretUnavailable")
    assert "not-stored" in (job.error_message or "")


async def test_an_applet_never_runs_more_jobs_at_once_than_its_concurrency(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    project.python_applet(
        "single",
        """
        import asyncio
        from ghapplets import Applet, Context
        app = Applet("single")
        running = 0

        @app.on("com.github.push")
        async def handle(ctx: Context) -> int:
            global running
            running += 1
            peak = running
            await asyncio.sleep(0.05)
            running -= 1
            return peak
    """,
        "concurrency: 1\n",
    )
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        ids = [f"c-{i}" for i in range(4)]
        for i in ids:
            await gw.send("github", "push", delivery_id=i)
        jobs = [j for i in ids for j in await gw.wait_for_jobs(i, count=1)]
        attempts = [a for j in jobs for a in await gw.platform.backends.store.list_attempts(j.id)]
    assert [j.result for j in jobs] == [1, 1, 1, 1]
    spans = sorted((a.started_at, a.finished_at) for a in attempts)
    assert all(b[0] >= a[1] - 0.005 for a, b in itertools.pairwise(spans))  # one after another


async def test_jobs_that_outlast_the_ack_wait_run_once(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job's lease runs out after the broker's ack wait; the worker extends the leases of the
    jobs it holds (running, or waiting for the applet's concurrency slot), so none runs twice."""
    runs = tmp_path / "runs.log"
    project.python_applet(
        "slow",
        f"""
        import asyncio
        from ghapplets import Applet, Context
        app = Applet("slow")

        @app.on("com.github.push")
        async def handle(ctx: Context) -> str:
            with open({str(runs)!r}, "a") as log:
                log.write(ctx.id + "\\n")
            await asyncio.sleep(0.5)
            return "done"
    """,
        "concurrency: 1\n",
    )
    monkeypatch.setenv(
        "GHAPPLETS_BROKER__ACK_WAIT", "0.3"
    )  # jobs last longer: extended every 0.1 s
    platform = Platform(load_config(project.build()), tmp_path / "data")
    await platform.start()
    try:
        transport = httpx.ASGITransport(app=platform.asgi(), client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            gw = GatewayClient(platform, client)
            ids = [f"s-{i}" for i in range(3)]  # one after another: the last waits ~1 s
            for i in ids:
                assert (await gw.send("github", "push", delivery_id=i)).status_code == 202
            jobs = [j for i in ids for j in await gw.wait_for_jobs(i, count=1)]
    finally:
        await platform.stop()
    assert [j.status for j in jobs] == ["succeeded"] * 3
    assert [j.attempts for j in jobs] == [1, 1, 1]
    assert sorted(runs.read_text().split()) == ids  # each ran exactly once


# an applet that logs each run's job key to a file: how many times each job ran
RUNS_LOGGED = """
from ghapplets import Applet
app = Applet("once")

@app.on("{event}")
async def handle(ctx):
    with open({runs!r}, "a") as f:
        f.write(ctx.idempotency_key + "\\n")
    return "ran"
"""


async def test_an_event_seen_again_after_the_duplicate_window_runs_nothing_again(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JetStream forgets message ids after its duplicate window (two minutes by default; one
    second here), job ids included; the store remembers the delivery and its finished job, so
    the applet does not run again. (The embedded broker keeps the ids as long as the history.)"""
    monkeypatch.setenv("GHAPPLETS_BROKER__DUPLICATE_WINDOW", "1")
    runs = tmp_path / "runs.log"
    project.python_applet(
        "once", RUNS_LOGGED.format(event="com.github.issues.opened", runs=str(runs))
    )
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        src = gw.platform.sources["github"]
        _, signed = signed_request(src.kind, "issues.opened", source=src, delivery_id="again-1")
        assert (await gw.send("github", "issues.opened", delivery_id="again-1")).status_code == 202
        [job] = await gw.wait_for_jobs("again-1", count=1)
        event = src.ingest(to_inbound(signed, "github"))
        message = event_message("github", event, signed.body, {}, time.time())
        await asyncio.sleep(1.5)  # past the window
        # the same event under a message id the broker has not seen: past its window
        ack = await gw.platform.backends.broker.publish(replace(message, msg_id="after-window"))
        assert not ack.duplicate
        store = gw.platform.backends.store
        deadline = time.monotonic() + 10
        while await gw.platform.backends.broker.depth(EVENTS):  # the dispatcher took it
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # time for a job message, had one been published, to run
        assert await gw.platform.backends.broker.depth(JOBS) == 0
        assert len(await store.list_attempts(job.id)) == 1
        assert (await store.get_job(job.id)).status == "succeeded"
    assert len(runs.read_text().splitlines()) == 1  # the applet ran once


async def test_a_finished_job_whose_ack_was_lost_is_not_run_again(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outcome is recorded, then the ack is lost (as when the worker dies between the two):
    the broker delivers the job again after its ack wait, and the worker settles it unrun."""
    runs = tmp_path / "runs.log"
    project.python_applet("once", RUNS_LOGGED.format(event="com.github.push", runs=str(runs)))
    monkeypatch.setenv("GHAPPLETS_BROKER__ACK_WAIT", "0.3")
    async with running_gateway(project.build(), tmp_path / "data") as gw:
        consumer = gw.platform.worker.consumer
        real_ack = consumer.ack
        acks: list[int] = []

        async def lose_the_first_ack(message: Any) -> None:
            if acks:
                await real_ack(message)
            acks.append(message.delivered)  # once done: the test then reads the depth

        monkeypatch.setattr(consumer, "ack", lose_the_first_ack)
        assert (await gw.send("github", "push", delivery_id="lost-ack")).status_code == 202
        [job] = await gw.wait_for_jobs("lost-ack", count=1)
        deadline = time.monotonic() + 10
        while len(acks) < 2:  # delivered again once the lease ran out, then acked
            assert time.monotonic() < deadline, acks
            await asyncio.sleep(0.05)
        assert acks[:2] == [1, 2]
        assert await gw.platform.backends.broker.depth(JOBS) == 0
    assert job.status == "succeeded"
    assert len(runs.read_text().splitlines()) == 1  # the applet ran once
