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
from pathlib import Path

import httpx
import pytest

from ghapplets.crashpoints import CrashPoint
from tests.conftest import ProjectBuilder, free_port
from tests.faults import (
    FLOW_POINTS,
    NOT_IN_FLOW,
    Node,
    backend_overrides,
    build_project,
    dead_letters,
    drained,
    forge,
    inspect,
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
