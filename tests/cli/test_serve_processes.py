"""``ghapplets serve --processes N``: gateway processes sharing the port, one worker, one node.

Real processes on a real port: the supervisor's children, their shared metrics, a restart of
a child that dies, children dying with a supervisor killed by ``kill -9``, and a clean drain.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.cli.helpers import GHAPPLETS, clean_env, poll, serving
from tests.conftest import WEBHOOK_SECRET, ProjectBuilder, free_port
from tests.gateway.test_ingest import github_headers

pytestmark = pytest.mark.slow


def children_of(pid: int) -> dict[int, str]:
    """The live child processes of ``pid``: pid -> command line."""
    out: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out[int(entry.name)] = cmdline
    return out


def roles(children: dict[int, str]) -> list[str]:
    return sorted(c.split(" -m ghapplets ")[1].split()[0] for c in children.values())


def metric(text: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


async def post_many(url: str, prefix: str, count: int) -> list[int]:
    body = orjson.dumps(
        {
            "action": "opened",
            "issue": {"number": 1, "title": "t"},
            "repository": {"full_name": "o/r"},
        }
    )
    async with httpx.AsyncClient(timeout=30) as client:

        async def one(i: int) -> int:
            headers = github_headers(body, f"{prefix}-{i}", WEBHOOK_SECRET)
            return (
                await client.post(f"{url}/hooks/github", content=body, headers=headers)
            ).status_code

        return list(await asyncio.gather(*(one(i) for i in range(count))))


def build(project: ProjectBuilder) -> Path:
    project.python_applet(
        "count",
        """
        from ghapplets import Applet, Context
        app = Applet("count")

        @app.on("com.github.issues.opened")
        async def handle(ctx: Context) -> str:
            return ctx.event.id
        """,
    )
    return project.build()


def test_gateways_share_the_port_and_the_worker_runs_every_job(project: ProjectBuilder) -> None:
    root = build(project)
    with serving(root, "--processes", "2") as server:
        kids = children_of(server.proc.pid)
        assert roles(kids) == ["gateway", "gateway", "worker"]
        codes = asyncio.run(post_many(server.url, "multi", 60))
        assert codes == [202] * 60

        def all_ran() -> str | None:
            text = httpx.get(f"{server.url}/metrics").text
            # the worker's histogram and the gateways' counters, summed, on either gateway
            ran = metric(text, "ghapplets_job_start_latency_seconds_count")
            received = metric(text, "ghapplets_webhooks_received_total")
            return text if ran == 60 and received == 60 else None

        text = poll(all_ran, timeout=30)
        assert 'ghapplets_queue_depth{stream="events"}' in text


def test_a_dead_gateway_is_restarted_and_kill_9_of_the_supervisor_takes_all(
    project: ProjectBuilder,
) -> None:
    root = build(project)
    with serving(root, "--processes", "2") as server:
        before = children_of(server.proc.pid)
        victim = next(pid for pid, cmd in before.items() if " gateway " in cmd)
        os.kill(victim, signal.SIGKILL)
        poll(
            lambda: (
                len(children_of(server.proc.pid)) == 3
                and victim not in children_of(server.proc.pid)
            )
        )
        # the node still answers, whichever gateway takes the connection
        assert asyncio.run(post_many(server.url, "after", 20)) == [202] * 20
        survivors = children_of(server.proc.pid)
        server.proc.kill()  # kill -9 of the supervisor alone
        server.proc.wait()

        def gone() -> bool:
            return not any(
                Path(f"/proc/{pid}").exists()
                and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                for pid in survivors
            )

        poll(gone, timeout=10)


def test_sigterm_drains_every_process_and_exits_0(project: ProjectBuilder) -> None:
    root = build(project)
    with serving(root, "--processes", "2") as server:
        assert asyncio.run(post_many(server.url, "drain", 10)) == [202] * 10
        kids = children_of(server.proc.pid)
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=60) == 0
        assert time.monotonic() - started < 30
        assert not any(Path(f"/proc/{pid}").exists() for pid in kids)


def test_metrics_on_their_own_address_sum_every_process(project: ProjectBuilder) -> None:
    metrics_port = free_port()
    project.extra = f"server:\n  metrics_address: 127.0.0.1:{metrics_port}\n"
    root = build(project)
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    with serving(root, "--processes", "2") as server:
        kids = children_of(server.proc.pid)
        assert roles(kids) == ["gateway", "gateway", "worker"]
        assert asyncio.run(post_many(server.url, "metrics", 40)) == [202] * 40

        def all_counted() -> str | None:
            text = httpx.get(metrics_url).text
            ran = metric(text, "ghapplets_job_start_latency_seconds_count")
            received = metric(text, "ghapplets_webhooks_received_total")
            return text if ran == 40 and received == 40 else None

        poll(all_counted, timeout=30)
        # only /metrics there, and no /metrics on the webhook port, whichever gateway answers
        for _ in range(6):
            assert httpx.get(f"{server.url}/metrics").status_code == 404
            assert httpx.get(f"{server.url}/healthz").status_code == 200
        assert httpx.get(metrics_url.replace("/metrics", "/readyz")).status_code == 404
        assert httpx.post(metrics_url.replace("/metrics", "/hooks/github")).status_code == 404


def test_a_single_gateway_binds_the_metrics_address_itself(project: ProjectBuilder) -> None:
    port, metrics_port = free_port(), free_port()
    project.extra = f"server:\n  metrics_address: 127.0.0.1:{metrics_port}\n"
    root = build(project)
    log = root.parent / "gateway.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*GHAPPLETS, "gateway", "--processes", "1", "--host", "127.0.0.1", "--port", str(port)],
            cwd=root,
            env=clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").status_code == 200
            except httpx.HTTPError:
                return False

        poll(up, timeout=30)
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 404
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
