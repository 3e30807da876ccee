"""Replaying a delivery runs every applet that matches it now: one added since the delivery
arrived has no job yet, so the replay creates its job and the worker runs it to the end."""

from __future__ import annotations

from pathlib import Path

import pytest

from ghapplets.applets.matching import Matcher
from ghapplets.dispatch.replay import replay_delivery
from ghapplets.testing.gateway import running_gateway
from tests.conftest import ProjectBuilder
from tests.dispatch.engine import runs, runs_logged

# on the embedded backends and on NATS JetStream with PostgreSQL
pytestmark = pytest.mark.usefixtures("platform_backends")


async def test_replay_creates_and_runs_the_job_of_an_applet_added_since(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    first, later = tmp_path / "first.log", tmp_path / "later.log"
    runs_logged(project, "first", first)
    root = project.build()
    data = tmp_path / "data"
    async with running_gateway(root, data) as gw:
        assert (await gw.send("github", "issues.opened", delivery_id="r-1")).status_code == 202
        [job] = await gw.wait_for_jobs("r-1", count=1)
        assert (job.applet, job.status) == ("first", "succeeded")

    runs_logged(project, "later", later)  # installed after the delivery was handled
    async with running_gateway(root, data) as gw:
        store, broker = gw.platform.backends.store, gw.platform.backends.broker
        queued = await replay_delivery(store, broker, Matcher(gw.platform.specs), "r-1")
        assert sorted((j.id, j.status) for j in queued) == [
            ("github:r-1:first", "queued"),
            ("github:r-1:later", "queued"),
        ]
        jobs = {j.applet: j for j in await gw.wait_for_jobs("r-1", count=2)}
        delivery = await store.get_delivery("r-1")
    assert {a: (j.status, j.attempts) for a, j in jobs.items()} == {
        "first": ("succeeded", 2),  # run again
        "later": ("succeeded", 1),  # run for the first time
    }
    assert jobs["later"].result == "ok"
    assert (delivery.status, delivery.jobs_total, delivery.jobs_succeeded) == ("succeeded", 2, 2)
    assert runs(first) == [("github:r-1:first", 1), ("github:r-1:first", 2)]
    assert runs(later) == [("github:r-1:later", 1)]
