"""High availability: a 3-node JetStream cluster (R3), PostgreSQL, two gateways behind HAProxy
and two workers, under a continuous signed load, while one gateway, one worker and the events
stream's leader node are killed with ``kill -9``.

Every webhook answered 2xx must be processed, once in effect, and the load balancer must stop
sending to the dead gateway. The senders behave like a vendor: a request that fails (a refused
connection, a 5xx) is sent again with the same delivery id, so duplicates are suppressed, never
processed twice.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest

from ghapplets.backends import open_backends
from ghapplets.config.loader import load_config
from ghapplets.store.records import JobStatus
from tests.cli.helpers import GHAPPLETS, clean_env
from tests.conftest import WEBHOOK_SECRET, ProjectBuilder, free_port
from tests.gateway.test_ingest import github_headers
from tests.haproxy import HAProxy
from tests.servers import NatsCluster

pytestmark = pytest.mark.slow

LOAD_SECONDS = 24.0
SENDERS = 12
KILL_GATEWAY_AT, KILL_WORKER_AT, KILL_LEADER_AT = 5.0, 9.0, 13.0


@dataclass
class LoadReport:
    sent: int = 0
    acknowledged: set[str] = field(default_factory=set)
    duplicates: int = 0  # resends answered "already stored"
    failures_while_watched: int = 0  # failed sends once the balancer had seen the gateway go
    ack_times: list[float] = field(default_factory=list)

    def longest_stall(self) -> float:
        times = sorted(self.ack_times)
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def build_project(project: ProjectBuilder, effects: Path) -> Path:
    project.python_applet(
        "effect",
        f"""
        import os
        from ghapplets import Applet, Context
        app = Applet("effect")

        @app.on("com.github.issues.opened")
        async def handle(ctx: Context) -> str:
            # the effect: one line per run, keyed by the idempotency key
            fd = os.open({str(effects)!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (ctx.idempotency_key + "\\n").encode())
            finally:
                os.close(fd)
            return "done"
        """,
    )
    return project.build()


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [*GHAPPLETS, *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"not ready in {timeout}s:\n{log.read_text()[-4000:]}")


async def load(url: str, report: LoadReport, t0: float, watched: asyncio.Event) -> None:
    body = orjson.dumps(
        {
            "action": "opened",
            "issue": {"number": 7, "title": "ha"},
            "repository": {"full_name": "o/r"},
        }
    )
    deadline = t0 + LOAD_SECONDS

    async def sender(n: int, client: httpx.AsyncClient) -> None:
        i = 0
        while time.monotonic() < deadline:
            i += 1
            delivery = f"ha-{n}-{i}"
            for _ in range(40):  # the vendor retries the same delivery
                report.sent += 1
                try:
                    r = await client.post(
                        f"{url}/hooks/github",
                        content=body,
                        headers=github_headers(body, delivery, WEBHOOK_SECRET),
                    )
                except httpx.HTTPError:
                    r = None
                if r is not None and r.status_code == 202:
                    if r.json().get("duplicate"):
                        report.duplicates += 1
                    report.acknowledged.add(delivery)
                    report.ack_times.append(time.monotonic())
                    break
                if watched.is_set():
                    report.failures_while_watched += 1
                await asyncio.sleep(0.25)
            await asyncio.sleep(0.02)

    async with httpx.AsyncClient(timeout=15) as client:
        await asyncio.gather(*(sender(n, client) for n in range(SENDERS)))


def test_ha_nothing_acknowledged_is_lost_when_a_gateway_a_worker_and_the_leader_die(
    project: ProjectBuilder, tmp_path: Path, pg_url: str
) -> None:
    effects = tmp_path / "effects.log"
    root = build_project(project, effects)
    logs = tmp_path / "logs"
    logs.mkdir()
    with NatsCluster(3, tmp_path / "nats") as cluster:
        env = clean_env(
            GHAPPLETS_BROKER__BACKEND="nats",
            GHAPPLETS_BROKER__URL=cluster.urls,
            GHAPPLETS_BROKER__REPLICAS="3",
            GHAPPLETS_BROKER__ACK_WAIT="5",
            GHAPPLETS_STORAGE__BACKEND="postgresql",
            GHAPPLETS_STORAGE__URL=pg_url,
            GHAPPLETS_SECRET_KEY=base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            GHAPPLETS_LOGGING__FORMAT="json",
            GHAPPLETS_SERVER__DRAIN_TIMEOUT="5",
        )
        common = ["--project", str(root), "--data-dir", str(tmp_path / "data")]
        ports = [free_port(), free_port()]
        gateways = [
            start(
                ["gateway", "--processes", "1", "--port", str(p), *common], env, logs / f"gw{i}.log"
            )
            for i, p in enumerate(ports)
        ]
        for i, (p, g) in enumerate(zip(ports, gateways, strict=True)):
            wait_ready(f"http://127.0.0.1:{p}", g, logs / f"gw{i}.log")
        workers = [start(["worker", *common], env, logs / f"w{i}.log") for i in range(2)]
        procs = gateways + workers
        try:
            with HAProxy(tmp_path / "haproxy", [("127.0.0.1", p) for p in ports]) as lb:
                deadline = time.monotonic() + 10
                while set(lb.server_status().values()) != {"UP"}:
                    assert time.monotonic() < deadline, lb.server_status()
                    time.sleep(0.1)
                report = LoadReport()
                leader_killed: list[int] = []

                async def chaos(watched: asyncio.Event) -> None:
                    await asyncio.sleep(KILL_GATEWAY_AT)
                    os.kill(gateways[0].pid, signal.SIGKILL)
                    # two failed health checks (200 ms apart) take the gateway out of rotation;
                    # from then until the leader dies, no send may fail
                    await asyncio.sleep(2.0)
                    watched.set()
                    await asyncio.sleep(KILL_WORKER_AT - KILL_GATEWAY_AT - 2.0)
                    os.kill(workers[0].pid, signal.SIGKILL)
                    await asyncio.sleep(KILL_LEADER_AT - KILL_WORKER_AT)
                    watched.clear()
                    leader = cluster.stream_leader("GHAPPLETS_EVENTS")
                    assert leader is not None
                    cluster.kill(leader)
                    leader_killed.append(leader)

                async def run() -> None:
                    t0 = time.monotonic()
                    watched = asyncio.Event()
                    await asyncio.gather(load(lb.url, report, t0, watched), chaos(watched))

                asyncio.run(run())
                status = lb.server_status()
            assert status["gw1"] != "UP" and status["gw2"] == "UP", status
            assert leader_killed, "the stream leader was not killed"

            # every acknowledged delivery is processed by the surviving worker
            config = load_config(root, env).config

            async def succeeded() -> set[str]:
                async with open_backends(config, tmp_path / "data") as b:
                    jobs = await b.store.list_jobs(status=JobStatus.SUCCEEDED, limit=1_000_000)
                return {j.delivery_id for j in jobs}

            deadline = time.monotonic() + 90
            done = asyncio.run(succeeded())
            while not report.acknowledged <= done and time.monotonic() < deadline:
                time.sleep(1)
                done = asyncio.run(succeeded())
            runs = effects.read_text().split()
            effect_ids = {r.split(":")[1] for r in runs}
            print(
                f"\nHA: sent {report.sent}, acknowledged {len(report.acknowledged)}, "
                f"processed {len(report.acknowledged & done)}, "
                f"duplicates suppressed {report.duplicates}, "
                f"applet re-runs {len(runs) - len(set(runs))}, "
                f"longest stall {report.longest_stall():.2f} s, "
                f"failed sends with the balancer warned {report.failures_while_watched}"
            )
            lost = report.acknowledged - done
            assert not lost, (
                f"{len(lost)} acknowledged deliveries never processed: {sorted(lost)[:10]}"
            )
            assert report.acknowledged <= effect_ids
            assert len(report.acknowledged) > 200  # the load really ran through the failures
            assert report.failures_while_watched == 0  # the balancer stopped using the dead one
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
