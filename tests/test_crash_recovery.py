"""Guaranteed delivery through ``kill -9`` and graceful drain on SIGTERM, on a real server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ghapplets.backends import open_backends
from ghapplets.config.loader import load_config
from ghapplets.exceptions import NotFound
from ghapplets.store.records import JobStatus
from tests.conftest import ProjectBuilder, free_port
from tests.faults import GRACEFUL, SERVE, signed, wait_ready

# each test runs on the embedded backends and on NATS JetStream (the server inherits the choice)
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("platform_backends")]


def start_server(root: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*SERVE, "--project", str(root), "--port", str(port), "--log-format", "json"],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


@pytest.fixture
def server_procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


EFFECT_APPLET = """
    import asyncio, os
    from pathlib import Path
    from ghapplets import Applet, Context
    app = Applet("effect")
    OUT = Path({out!r})

    @app.on("com.github.issues.opened")
    async def handle(ctx: Context) -> str:
        await asyncio.sleep(0.01)
        with open(OUT / "runs.log", "a") as log:  # every execution, to count re-runs
            log.write(ctx.idempotency_key + "\\n")
        try:  # the effect, made idempotent by the job's key
            fd = os.open(OUT / ctx.idempotency_key.replace(":", "_"), os.O_CREAT | os.O_EXCL)
            os.close(fd)
        except FileExistsError:
            pass
        return ctx.id
"""


def test_kill_9_with_500_events_in_flight_loses_nothing(
    project: ProjectBuilder, tmp_path: Path, server_procs: list[subprocess.Popen[bytes]]
) -> None:
    out = tmp_path / "effects"
    out.mkdir()
    project.python_applet("effect", EFFECT_APPLET.format(out=str(out)), "concurrency: 16\n")
    root = project.build()
    port = free_port()
    log = tmp_path / "server.log"
    server_procs.append(start_server(root, port, log))
    wait_ready(port, server_procs[-1])

    acked: set[str] = set()
    attempted = 500

    async def blast() -> None:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(timeout=5, limits=limits) as client:
            sem = asyncio.Semaphore(32)

            async def one(i: int) -> None:
                body, headers = signed(f"crash-{i}", i)
                async with sem:
                    try:
                        r = await client.post(
                            f"http://127.0.0.1:{port}/hooks/github", content=body, headers=headers
                        )
                    except httpx.HTTPError:
                        return
                if r.status_code == 202:
                    acked.add(f"crash-{i}")

            async def killer() -> None:
                while len(acked) < 200:
                    await asyncio.sleep(0.001)
                os.kill(server_procs[-1].pid, signal.SIGKILL)  # mid-flight, no warning

            await asyncio.gather(killer(), *(one(i) for i in range(attempted)))

    asyncio.run(blast())
    server_procs[-1].wait()
    assert 200 <= len(acked) < attempted, len(acked)

    async def finished_at_the_kill() -> set[str]:
        async with open_backends(load_config(root).config, root / ".ghapplets") as b:
            jobs = await b.store.list_jobs(limit=100_000)
        return {j.id for j in jobs if j.status in (JobStatus.SUCCEEDED, JobStatus.DEAD)}

    finished = asyncio.run(finished_at_the_kill())
    runs_log = out / "runs.log"
    ran_before = len(runs_log.read_text().split()) if runs_log.exists() else 0

    server_procs.append(start_server(root, port, log))
    wait_ready(port, server_procs[-1])

    async def settled() -> tuple[dict[str, str], dict[str, int]]:
        async with open_backends(load_config(root).config, root / ".ghapplets") as b:
            deadline = time.monotonic() + 60
            while True:
                ds = {d.id: d.status for d in await b.store.list_deliveries(limit=10_000)}
                if all(ds.get(i) == "succeeded" for i in acked) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            jobs: dict[str, int] = {}
            for j in await b.store.list_jobs(limit=100_000):
                jobs[j.delivery_id] = jobs.get(j.delivery_id, 0) + 1
            return ds, jobs

    deliveries, jobs = asyncio.run(settled())
    missing = sorted(i for i in acked if deliveries.get(i) != "succeeded")
    assert not missing, f"{len(missing)} acknowledged events not processed: {missing[:5]}"
    assert all(jobs[i] == 1 for i in acked)  # one job per event and applet
    effects = {p.name for p in out.iterdir() if p.name != "runs.log"}
    assert {f"github_{i}_effect" for i in acked} <= effects
    runs = runs_log.read_text().split()
    # only the work in flight at the kill ran again: no job recorded as finished by then
    again = set(runs[ran_before:]) & finished
    assert not again, f"{len(again)} jobs finished before the kill ran again: {sorted(again)[:5]}"
    assert len(runs) - len(set(runs)) <= 256  # at most the worker's in-flight limit
    server_procs[-1].send_signal(signal.SIGTERM)
    assert server_procs[-1].wait(timeout=30) in GRACEFUL


def test_sigterm_drains_jobs_in_flight(
    project: ProjectBuilder, tmp_path: Path, server_procs: list[subprocess.Popen[bytes]]
) -> None:
    project.python_applet(
        "slow",
        """
        import asyncio
        from ghapplets import Applet, Context
        app = Applet("slow")

        @app.on("com.github.issues.opened")
        async def handle(ctx: Context) -> str:
            await asyncio.sleep(1.5)
            return "finished"
    """,
    )
    root = project.build()
    port = free_port()
    server_procs.append(start_server(root, port, tmp_path / "server.log"))
    wait_ready(port, server_procs[-1])
    body, headers = signed("slow-1", 1)
    r = httpx.post(f"http://127.0.0.1:{port}/hooks/github", content=body, headers=headers)
    assert r.status_code == 202

    async def status() -> str:
        async with open_backends(load_config(root).config, root / ".ghapplets") as b:
            try:
                return (await b.store.get_job("github:slow-1:slow")).status
            except NotFound:
                return "absent"

    deadline = time.monotonic() + 10
    while asyncio.run(status()) != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    server_procs[-1].send_signal(signal.SIGTERM)
    assert server_procs[-1].wait(timeout=30) in GRACEFUL
    assert time.monotonic() - started > 0.5  # it waited for the job
    assert asyncio.run(status()) == "succeeded"
