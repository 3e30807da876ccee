"""The crash matrix: kill ``serve`` at every named crash point, restart it, check the promise.

For each crash point (``ghapplets debug crash-points``) and each backend, the real server runs
with ``GHAPPLETS_CRASH_AT=<point>``, signed webhooks are sent until it dies there (SIGKILL, the
whole node), then it is started again without the variable and the work drains. Then:

- every delivery answered 2xx is stored once, and each of its jobs reached a final status;
- no job is left queued, running or waiting to retry;
- each job's side effect happened at least once, and re-runs are bounded by the work in flight
  at the crash (a job recorded as finished does not run again);
- a rejected (badly signed) delivery left nothing;
- dead letters and ``replay --job`` still work afterwards.

One row per point and backend is printed: sent, acknowledged, processed, duplicates, lost.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from ghapplets.backends import open_backends
from ghapplets.config.loader import load_config
from ghapplets.crashpoints import CRASH_ENV, POINTS, CrashPoint
from ghapplets.store.records import JobRecord
from tests.cli.helpers import clean_env, ghapplets
from tests.conftest import ProjectBuilder, free_port
from tests.test_crash_recovery import SERVE, signed, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("platform_backends")]

EVENTS = 12  # webhooks sent per point (the crash cuts the sending short)
# points a webhook flow reaches by itself; the rest have tests of their own
NOT_IN_FLOW = {CrashPoint.REPLAY_QUEUED, CrashPoint.RETENTION_BATCH, CrashPoint.MIGRATION_STEP}
FLOW_POINTS = [p.point for p in POINTS if p.point not in NOT_IN_FLOW]

EFFECT = """
    from pathlib import Path
    from ghapplets import Applet, Context
    app = Applet("effect")
    OUT = Path({out!r})

    @app.on("com.github.issues.opened")
    async def handle(ctx: Context) -> str:
        with open(OUT / "runs.log", "a") as log:
            log.write(ctx.idempotency_key + "\\n")
        return ctx.id
"""
# fails its first attempt (a retry is scheduled), succeeds on the second
FLAKY = """
    from ghapplets import Applet, Context, RetryableError
    app = Applet("flaky")

    @app.on("com.github.issues.opened")
    async def handle(ctx: Context) -> str:
        if ctx.attempt == 1:
            raise RetryableError("not yet")
        return "second time lucky"
"""
# every third event is refused for good: a dead letter
DOOMED = """
    from ghapplets import Applet, Context, PermanentError
    app = Applet("doomed")

    @app.on("com.github.issues.opened")
    async def handle(ctx: Context) -> str:
        if ctx.data["issue"]["number"] % 3 == 0:
            raise PermanentError("never")
        return "fine"
"""
FAST_RETRY = "retry: {max_attempts: 3, initial_delay: 0.05, max_delay: 0.1}\n"


def _project(project: ProjectBuilder, out: Path) -> Path:
    project.python_applet("effect", EFFECT.format(out=str(out)))
    project.python_applet("flaky", FLAKY, FAST_RETRY)
    project.python_applet("doomed", DOOMED, FAST_RETRY)
    return project.build()


def _env() -> dict[str, str]:
    """A clean environment that keeps the backends the platform_backends fixture chose."""
    env = clean_env()
    env.update({k: v for k, v in os.environ.items() if k.startswith("GHAPPLETS_")})
    env.pop(CRASH_ENV, None)
    return env


def _serve(root: Path, port: int, log: Path, crash_at: str | None) -> subprocess.Popen[bytes]:
    env = _env()
    if crash_at:
        env[CRASH_ENV] = crash_at
    return subprocess.Popen(
        [*SERVE, "--project", str(root), "--port", str(port), "--processes", "1",
         "--log-format", "json"],
        stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip


async def _send(port: int, prefix: str) -> tuple[int, set[str], set[str]]:
    """Send until the node dies: attempted, acknowledged ids, and rejected ids."""
    acked: set[str] = set()
    rejected: set[str] = set()
    sent = 0
    url = f"http://127.0.0.1:{port}/hooks/github"
    async with httpx.AsyncClient(timeout=5) as client:
        for i in range(EVENTS):
            delivery = f"{prefix}-{i}"
            body, headers = signed(delivery, i)
            if i == 1:  # a forged one: refused, and must leave nothing behind
                headers["x-hub-signature-256"] = "sha256=" + "0" * 64
            sent += 1
            try:
                r = await client.post(url, content=body, headers=headers)
            except httpx.HTTPError:
                break
            if r.status_code == 202:
                acked.add(delivery)
            elif r.status_code == 401:
                rejected.add(delivery)
            await asyncio.sleep(0.02)  # let the worker take part while we send
    return sent, acked, rejected


async def _drained(root: Path, acked: set[str], timeout: float = 60) -> list[JobRecord]:
    """The jobs once every acknowledged delivery's jobs are final (or the deadline passed)."""
    async with open_backends(load_config(root).config, root / ".ghapplets") as b:
        deadline = time.monotonic() + timeout
        while True:
            jobs = await b.store.list_jobs(limit=100_000)
            mine = [j for j in jobs if j.delivery_id in acked]
            done = len(mine) == 3 * len(acked) and all(j.status.final for j in jobs)
            if done or time.monotonic() > deadline:
                return jobs
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("point", FLOW_POINTS, ids=str)
def test_a_crash_at_each_point_loses_nothing_acknowledged(
    point: CrashPoint, project: ProjectBuilder, tmp_path: Path, platform_backends: str
) -> None:
    out = tmp_path / "effects"
    out.mkdir()
    root = _project(project, out)
    port = free_port()
    log = tmp_path / "server.log"
    # a gateway point once two webhooks were answered (one per request, in order); the others
    # at their first arrival, which comes after at least one webhook was acknowledged
    crashed = _serve(root, port, log, f"{point}:3" if point.startswith("gateway.") else point)
    try:
        wait_ready(port, crashed)
        sent, acked, rejected = asyncio.run(_send(port, "m"))
        # the node dies at the point: a crash in any child takes the whole serve down
        assert crashed.wait(timeout=30) == -signal.SIGKILL, log.read_text()[-3000:]
    finally:
        if crashed.poll() is None:
            crashed.kill()
            crashed.wait()
    server = _serve(root, port, log, None)
    try:
        wait_ready(port, server)
        jobs = asyncio.run(_drained(root, acked))
        by_delivery = Counter(j.delivery_id for j in jobs)
        stored = set(by_delivery)
        lost = sorted(d for d in acked if by_delivery[d] != 3)
        unfinished = [(j.id, j.status) for j in jobs if not j.status.final]
        runs = (
            Counter((out / "runs.log").read_text().split()) if (out / "runs.log").exists() else {}
        )
        effects = {f"github:{d}:effect" for d in stored}
        duplicates = sum(n - 1 for n in runs.values())
        print(
            f"\n[{platform_backends}] {point}: sent {sent}, acknowledged {len(acked)}, "
            f"processed {len(stored & acked)}, duplicates {duplicates}, lost {len(lost)}"
        )
        assert acked, "nothing was acknowledged before the crash"
        assert not lost, f"acknowledged but not processed: {lost}"
        assert not unfinished, unfinished
        assert not (rejected & stored), "a rejected delivery left a record"
        # a delivery cut off between being stored and answered may run; then it finished
        assert effects <= set(runs), "a job is final but its side effect never happened"
        assert duplicates <= 3, runs  # only the work in flight at the crash runs again
        dead = [j for j in jobs if j.applet == "doomed" and j.status == "dead"]
        assert dead, "the dead letters of the doomed applet"
        again = ghapplets("replay", "--job", dead[0].id, "-p", root, cwd=root, env=_env())
        assert again.code == 0, again
        requeued = asyncio.run(_attempts_after_replay(root, dead[0]))
        assert requeued > dead[0].attempts  # the replayed job ran again
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


async def _attempts_after_replay(root: Path, job: JobRecord, timeout: float = 20) -> int:
    async with open_backends(load_config(root).config, root / ".ghapplets") as b:
        deadline = time.monotonic() + timeout
        while True:
            now = await b.store.get_job(job.id)
            if (now.status.final and now.attempts > job.attempts) or time.monotonic() > deadline:
                return now.attempts
            await asyncio.sleep(0.1)


def test_the_matrix_covers_every_point() -> None:
    assert set(FLOW_POINTS) | NOT_IN_FLOW == set(CrashPoint)
