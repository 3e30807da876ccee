"""Blueprint runs through ``kill -9``: crash ``serve`` at each ``run.*`` point, on both backends.

A signed webhook starts a run of four applet calls with a wait between them (the run suspends,
and a timer wakes it) and an emitted event. The node kills itself at the point; it is started
again without the crash; the run must complete with the same output, every call must have run
(by its idempotency key, the run and the step's key), and only the step in flight at the crash
may have run twice (exactly once in effect: its key is the same both times).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from ghapplets.backends import open_backends
from ghapplets.config.loader import load_config
from ghapplets.crashpoints import CrashPoint
from ghapplets.store.records import RunRecord, RunStatus
from tests.conftest import ProjectBuilder, free_port
from tests.faults import INCARNATION_ENV, RUN_POINTS, Node, backend_overrides, serve_env, signed

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("platform_backends")]

EFFECT = """
    import os
    from pathlib import Path
    from ghapplets import Applet, Context
    app = Applet("effect")
    OUT = Path({out!r})
    INCARNATION = os.environ.get({incarnation!r}, "0")

    @app.on("ghapplets.blueprint.call")
    async def handle(ctx: Context) -> dict:
        with open(OUT / "calls.log", "a") as log:
            log.write(ctx.idempotency_key + " " + INCARNATION + "\\n")
        return {{"step": ctx.data["step"], "total": ctx.data["total"] + ctx.data["step"]}}
"""

CHAIN = """
document: {dsl: '1.0.0', namespace: test, name: chain, version: '0.1.0'}
schedule:
  on:
    one:
      with:
        type: com.github.issues.opened
input:
  from: '${ {total: 0} }'
do:
  - one:
      call: effect
      with: {step: 1, total: '${ .total }'}
  - two:
      call: effect
      with: {step: 2, total: '${ .total }'}
  - pause:
      wait: PT3S
  - three:
      call: effect
      with: {step: 3, total: '${ .total }'}
  - announce:
      emit:
        event:
          with:
            source: https://ghapplets.dev/test
            type: test.chain.progress
            data: '${ . }'
  - four:
      call: effect
      with: {step: 4, total: '${ .data.total }'}  # an emit outputs the event it emitted
"""
# the n-th time each point is reached: past the first step, so work is both done and in flight
AT = {
    CrashPoint.RUN_TAKEN: 2,  # at the second turn: after the wait
    CrashPoint.RUN_STEP_RETURNED: 2,
    CrashPoint.RUN_STEP_RECORDED: 3,
    CrashPoint.RUN_WAITING: 1,
    CrashPoint.RUN_ENDED: 1,
}


def test_every_run_point_has_a_case() -> None:
    assert set(AT) == RUN_POINTS


async def finished_run(root: Path, env: dict[str, str], timeout: float = 90) -> RunRecord:
    async with open_backends(load_config(root, env).config, root / ".ghapplets") as b:
        deadline = time.monotonic() + timeout
        while True:
            runs = await b.store.list_runs(name="chain")
            if runs and runs[0].status.final:
                return runs[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"the run did not finish: {runs}")
            await asyncio.sleep(0.2)


@pytest.mark.parametrize("point", sorted(AT), ids=str)
def test_a_run_survives_a_crash_at_each_point(
    point: CrashPoint, project: ProjectBuilder, tmp_path: Path, platform_backends: str
) -> None:
    out = tmp_path / "effects"
    out.mkdir()
    project.python_applet("effect", EFFECT.format(out=str(out), incarnation=INCARNATION_ENV))
    project.blueprint("chain", CHAIN)
    root = project.build()
    env = serve_env(backend_overrides())
    node = Node(root, free_port(), tmp_path / "server.log", env)
    try:
        node.start(f"{point}:{AT[point]}")
        node.wait_ready()
        body, headers = signed("chain-1", 1)
        response = httpx.post(
            f"http://127.0.0.1:{node.port}/hooks/github", content=body, headers=headers
        )
        assert response.status_code == 202, response.text
        assert node.wait_exit(timeout=60) == -signal.SIGKILL, node.tail()
        node.start()
        node.wait_ready()
        run = asyncio.run(finished_run(root, env))
        assert run.status == RunStatus.COMPLETED, (run.error, node.tail())
        assert run.output == {"step": 4, "total": 10}
        calls = Counter(line.split()[0] for line in (out / "calls.log").read_text().splitlines())
        keys = sorted(calls)
        assert len(keys) == 4, calls  # each call step ran, under one idempotency key each
        assert all(k.startswith(run.id) for k in keys), keys
        again = [k for k, n in calls.items() if n > 1]
        assert sum(calls.values()) - 4 <= 1, calls  # only the step in flight ran twice
        if point != CrashPoint.RUN_STEP_RETURNED:
            assert not again, calls
        print(f"\n[{platform_backends}] {point}: calls {sum(calls.values())}, again {again}")
    finally:
        node.close()
