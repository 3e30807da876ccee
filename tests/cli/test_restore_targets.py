"""Restores into the targets beside the two usual ones: ``restore --force`` into PostgreSQL and
NATS replaces the queue too (the job and event messages of the store it replaces, which name
deliveries the restored store may not hold, are deleted from the streams); and a PostgreSQL
store with the embedded broker in the data folder keeps the duplicates' memory."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from ghapplets.broker.base import EVENTS, JOBS
from ghapplets.broker.nats import NatsBroker
from ghapplets.dispatch import messages as m
from ghapplets.events import CloudEvent
from tests.cli.helpers import clean_env, cli, ghapplets, poll, serving
from tests.cli.test_backup_restore import WEBHOOK_SECRET, make_project, records, send_known
from tests.servers.nats import NatsServer


async def orphans(url: str, count: int) -> None:
    """Job messages for deliveries no store holds, as the replaced store's queue had."""
    broker = NatsBroker(url)
    await broker.start()
    try:
        for i in range(count):
            event = CloudEvent(id=f"old-{i}", source="https://github.com/o/r", type="t")
            await broker.publish(m.job_message(event.binary_headers(), "github", f"old-{i}", "a"))
        assert await broker.depth(JOBS) == count
    finally:
        await broker.close()


async def depths(url: str) -> tuple[int, int]:
    broker = NatsBroker(url)
    await broker.start()
    try:
        return await broker.depth(JOBS), await broker.depth(EVENTS)
    finally:
        await broker.close()


def test_restore_force_on_nats_deletes_the_old_queue(
    scaffolded: Path, tmp_path: Path, pg_url: str, nats_server: NatsServer
) -> None:
    stored = cli("secrets", "set", "api-token", "--value", "v", "-p", scaffolded)
    assert stored.code == 0, stored
    archive = tmp_path / "b.tgz"
    assert cli("backup", archive, "-p", scaffolded).code == 0
    env = clean_env(
        GHAPPLETS_STORAGE__BACKEND="postgresql",
        GHAPPLETS_STORAGE__URL=pg_url,
        GHAPPLETS_BROKER__BACKEND="nats",
        GHAPPLETS_BROKER__URL=nats_server.url,
    )
    first = cli("restore", archive, "-p", scaffolded, env=env)
    assert first.code == 0, first
    assert "old queue" not in first.out  # nothing to delete, nothing said
    asyncio.run(orphans(nats_server.url, 3))

    refused = cli("restore", archive, "-p", scaffolded, env=env)
    assert refused.code == 1, refused
    assert asyncio.run(depths(nats_server.url)) == (3, 0)  # a refused restore deletes nothing

    forced = cli("restore", archive, "--force", "-p", scaffolded, env=env)
    assert forced.code == 0, forced
    assert "deleted the old queue's 3 message(s) from NATS" in forced.out
    assert asyncio.run(depths(nats_server.url)) == (0, 0)


def test_a_postgresql_store_with_the_embedded_broker_keeps_the_duplicates(
    tmp_path: Path, pg_url: str
) -> None:
    root = make_project(tmp_path / "project")
    env = clean_env(GITHUB_WEBHOOK_SECRET=WEBHOOK_SECRET)
    known = str(uuid.uuid4())
    with serving(root, env=env) as server:
        send_known(root, env, server.url, known)
        poll(lambda: records("deliveries", root, env).get(known) == "succeeded")
    archive = tmp_path / "b.tgz"
    assert ghapplets("backup", archive, cwd=root, env=env).code == 0

    target = tmp_path / "target"
    tenv = clean_env(
        GITHUB_WEBHOOK_SECRET=WEBHOOK_SECRET,
        GHAPPLETS_STORAGE__BACKEND="postgresql",
        GHAPPLETS_STORAGE__URL=pg_url,
    )
    restored = ghapplets("restore", archive, "--data-dir", target, cwd=root, env=tenv)
    assert restored.code == 0, restored
    with serving(root, "--data-dir", target, env=tenv) as server:
        assert '"duplicate":true' in send_known(root, tenv, server.url, known)
