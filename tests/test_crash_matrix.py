"""The crash matrix: kill ``serve`` at every named crash point, restart it, check the promise.

For each crash point (``ghapplets debug crash-points``) and each backend, the real server runs
with ``GHAPPLETS_CRASH_AT=<point>``, signed webhooks are sent until it dies there (SIGKILL, the
whole node), then it is started again without the variable and the work drains. Then:

- every delivery answered 2xx is stored once, and each of its jobs reached a final status;
- no job is left queued, running or waiting to retry;
- each job ended as its applet dictates, and each delivery's record agrees with its jobs;
- each job's side effect happened at least once, a job runs again only if it was in flight at
  the crash (and then once), and a job recorded as finished does not run again;
- a rejected (badly signed) delivery left nothing;
- dead letters and ``replay --job`` still work afterwards.

The checks live in tests/faults.py, shared with the random fault soak (tests/soak.py).
One row per point and backend is printed: sent, acknowledged, processed, duplicates, lost.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest

from ghapplets.backends import open_backends
from ghapplets.config.loader import load_config
from ghapplets.crashpoints import CrashPoint
from tests.conftest import ProjectBuilder, free_port
from tests.faults import (
    FLOW_POINTS,
    GRACEFUL,
    NOT_IN_FLOW,
    Node,
    backend_overrides,
    build_project,
    dead_letters,
    drained,
    forge,
    inspect,
    number_of,
    replay_dead_letter,
    serve_env,
    signed,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("platform_backends")]

EVENTS = 12  # webhooks sent per point (the crash cuts the sending short)


async def _send(port: int, prefix: str) -> tuple[int, set[str], set[str]]:
    """Send until the node dies: attempted, acknowledged ids, and forged ids."""
    acked: set[str] = set()
    forged: set[str] = set()
    sent = 0
    url = f"http://127.0.0.1:{port}/hooks/github"
    async with httpx.AsyncClient(timeout=5) as client:
        for i in range(EVENTS):
            delivery = f"{prefix}-{i}"
            body, headers = signed(delivery, i)
            if i == 1:  # a forged one: refused, and must leave nothing behind
                headers = forge(headers)
                forged.add(delivery)
            sent += 1
            try:
                r = await client.post(url, content=body, headers=headers)
            except httpx.HTTPError:
                break
            if r.status_code == 202:
                acked.add(delivery)
            await asyncio.sleep(0.02)  # let the worker take part while we send
    return sent, acked, forged


@pytest.mark.parametrize("point", FLOW_POINTS, ids=str)
def test_a_crash_at_each_point_loses_nothing_acknowledged(
    point: CrashPoint, project: ProjectBuilder, tmp_path: Path, platform_backends: str
) -> None:
    out = tmp_path / "effects"
    root = build_project(project, out)
    env = serve_env(backend_overrides())
    node = Node(root, free_port(), tmp_path / "server.log", env)
    try:
        # a gateway point once two webhooks were answered (one per request, in order); the
        # others at their first arrival, which comes after at least one webhook was acknowledged
        node.start(f"{point}:3" if point.startswith("gateway.") else point)
        node.wait_ready()
        sent, acked, forged = asyncio.run(_send(node.port, "m"))
        # the node dies at the point: a crash in any child takes the whole serve down
        assert node.wait_exit(timeout=30) == -signal.SIGKILL, node.tail()
        node.start()
        node.wait_ready()
        assert asyncio.run(drained(root, env, acked)), "the work did not drain in time"
        v = asyncio.run(inspect(root, env, out, node, acknowledged=acked, forged=forged))
        print(
            f"\n[{platform_backends}] {point}: sent {sent}, acknowledged {len(acked)}, "
            f"processed {v.processed}, duplicates {v.duplicates}, lost {len(v.lost)}"
        )
        assert acked, "nothing was acknowledged before the crash"
        assert not v.problems + node.problems, "\n".join(v.problems + node.problems)
        # only the work in flight at the crash runs again, once: the jobs that ran before it
        # and were not recorded finished (how many depends on timing; none twice)
        assert v.most_runs <= 2, v.most_runs
        dead = dead_letters(v.jobs)
        assert dead, "the dead letters of the doomed applet"
        problem = asyncio.run(replay_dead_letter(root, env, dead[0]))
        assert problem is None, problem
    finally:
        node.close()


def test_the_matrix_covers_every_point() -> None:
    assert set(FLOW_POINTS) | NOT_IN_FLOW == set(CrashPoint)


# -- the points a webhook flow does not reach: retention and migrations ------------------------
def _wait_for_sigkill(node: Node, point: str) -> None:
    node.start(point)
    assert node.wait_exit(timeout=60) == -signal.SIGKILL, node.tail()


def _promise_kept(root: Path, env: dict[str, str], out: Path, node: Node, prefix: str) -> set[str]:
    """Send webhooks to the running node, wait for the work, check it: the acknowledged ids."""
    node.wait_ready()
    _, acked, forged = asyncio.run(_send(node.port, prefix))
    assert acked, "nothing was acknowledged"
    assert asyncio.run(drained(root, env, acked)), "the work did not drain in time"
    v = asyncio.run(inspect(root, env, out, node, acknowledged=acked, forged=forged))
    assert not v.problems + node.problems, "\n".join(v.problems + node.problems)
    return acked


def test_a_crash_while_pruning_loses_nothing_and_leaves_no_half_pruned_delivery(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    out = tmp_path / "effects"
    root = build_project(project, out)
    # history is old after 3 seconds, so the next start's first round of retention prunes it
    # (those with a dead letter stay: their retention is 90 days)
    env = serve_env(backend_overrides() | {"GHAPPLETS_STORAGE__RETENTION_DAYS": str(3 / 86400)})
    node = Node(root, free_port(), tmp_path / "server.log", env)
    try:
        node.start()
        before = _promise_kept(root, env, out, node, "old")
        assert node.terminate(60) in GRACEFUL  # lets go of the retention lease
        time.sleep(3.5)
        _wait_for_sigkill(node, CrashPoint.RETENTION_BATCH)  # after the first chunk, at start
        node.start()
        after = _promise_kept(root, env, out, node, "new")
        deliveries, jobs = asyncio.run(stored_ids(root, env))
        failed = {d for d in before if number_of(d) % 3 == 0}
        assert not deliveries & (before - failed), "the chunk before the crash was pruned"
        assert failed | after <= deliveries
        orphans = {d for d in jobs if d not in deliveries}
        assert not orphans, f"jobs of pruned deliveries left behind: {orphans}"
    finally:
        node.close()


def test_a_crash_between_migration_steps_is_resumed_by_the_next_start(
    project: ProjectBuilder, tmp_path: Path, platform_backends: str, request: pytest.FixtureRequest
) -> None:
    out = tmp_path / "effects"
    root = build_project(project, out)
    overrides = backend_overrides()
    if "GHAPPLETS_STORAGE__URL" in overrides:  # a database with no schema yet
        overrides["GHAPPLETS_STORAGE__URL"] = request.getfixturevalue("pg_empty_url")
    env = serve_env(overrides)
    node = Node(root, free_port(), tmp_path / "server.log", env)
    try:
        _wait_for_sigkill(node, f"{CrashPoint.MIGRATION_STEP}:3")  # a fresh store, 3 steps in
        node.start()
        _promise_kept(root, env, out, node, "m")
    finally:
        node.close()


async def stored_ids(root: Path, env: dict[str, str]) -> tuple[set[str], set[str]]:
    """The ids of the stored deliveries, and the delivery ids of the stored jobs."""
    async with open_backends(load_config(root, env).config, root / ".ghapplets") as b:
        deliveries = {d.id for d in await b.store.list_deliveries(limit=10_000)}
        jobs = {j.delivery_id for j in await b.store.list_jobs(limit=10_000)}
    return deliveries, jobs
