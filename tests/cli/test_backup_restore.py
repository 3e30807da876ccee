"""Backup and restore end to end, with real servers: a backup taken while ``serve`` ingests
webhooks restores into a fresh target (a new data folder, or a new PostgreSQL database and
NATS server) with every delivery, job and secret, even when the first restore is killed
half-way (a second one with --force completes it); the unfinished jobs run to the end there; a
delivery id seen before the backup is still a duplicate; and an embedded backup restores into
PostgreSQL and back."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from ghapplets.backup.archive import Archive
from ghapplets.backup.tables import EVENTS_MEMBER, member_of
from ghapplets.store.schema import deliveries, jobs
from tests.cli.helpers import GHAPPLETS, clean_env, ghapplets, poll, serving
from tests.conftest import ProjectBuilder, write
from tests.servers.nats import NatsServer
from tests.servers.postgres import PostgresServer

WEBHOOK_SECRET = "backup-webhook-secret-77a1"
API_TOKEN = "backup-api-token-5c02e9"
UNFINISHED = {"queued", "running", "retrying"}

CONFIG = """\
project: backup
sources:
  github:
    kind: github
    secret: ${env:GITHUB_WEBHOOK_SECRET}
    replay_protection: false  # one fixture is sent under many delivery ids
applets: [applets]
"""

ECHO = """\
#!/bin/sh
cat > /dev/null
printf '{"delivery": "%s"}\\n' "$GHAPPLETS_DELIVERY_ID"
"""

SLOW = """\
#!/bin/sh
cat > /dev/null
sleep 0.2
echo '{}'
"""


def make_project(root: Path) -> Path:
    builder = ProjectBuilder(root)
    builder.exec_applet("echo", ECHO, "on: [com.github.*]\n")
    builder.exec_applet("slow", SLOW, "on: [com.github.push]\nconcurrency: 2\n")
    write(root / "ghapplets.yaml", CONFIG)
    return root


def backend_env() -> dict[str, str]:
    """The backends ``platform_backends`` chose (the helpers scrub ``GHAPPLETS_*``)."""
    return {k: v for k, v in os.environ.items() if k.startswith("GHAPPLETS_")}


def records(cmd: str, root: Path, env: dict[str, str], *args: object) -> dict[str, str]:
    listed = ghapplets(cmd, "--json", "--limit", "100000", *args, cwd=root, env=env)
    assert listed.code == 0, listed
    # the NATS client logs to stdout (connected, max_payload): the JSON lines are the records
    rows = [orjson.loads(line) for line in listed.out.splitlines() if line.startswith("{")]
    return {row["id"]: row["status"] for row in rows}


def send_known(root: Path, env: dict[str, str], url: str, delivery_id: str) -> str:
    """Send ``issues.opened`` under ``delivery_id``; the gateway's answer, spaces removed."""
    sent = ghapplets("send", "issues.opened", "--delivery-id", delivery_id, "--url", url,
                     cwd=root, env=env)  # fmt: skip
    assert sent.code == 0 and "202" in sent.out, sent
    return sent.out.replace(" ", "")


def reveal(root: Path, env: dict[str, str], *args: object) -> str:
    got = ghapplets("secrets", "get", "api-token", "--reveal", *args, cwd=root, env=env)
    assert got.code == 0, got
    return got.out.strip().splitlines()[-1]  # after the NATS client's log lines


@contextlib.contextmanager
def fresh_backends(
    kind: str, request: pytest.FixtureRequest, folder: Path
) -> Iterator[dict[str, str]]:
    """The ``GHAPPLETS_*`` settings of new, empty backends of ``kind`` (``embedded``: none,
    the data folder decides; else an empty database, no schema yet, and a new NATS server)."""
    if kind == "embedded":
        yield {}
        return
    pg: PostgresServer = request.getfixturevalue("pg_server")
    name = pg.create_database(migrated=False)
    nats = NatsServer(folder / "nats-target").start()
    try:
        yield {
            "GHAPPLETS_STORAGE__BACKEND": "postgresql",
            "GHAPPLETS_STORAGE__URL": pg.url(name),
            "GHAPPLETS_BROKER__BACKEND": "nats",
            "GHAPPLETS_BROKER__URL": nats.url,
            "GHAPPLETS_BROKER__ACK_WAIT": "5",
        }
    finally:
        nats.kill()
        pg.drop_database(name, wait=False)


@pytest.fixture
def target_env(
    platform_backends: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """The backends to restore into: fresh ones of the same kind."""
    with fresh_backends(platform_backends, request, tmp_path) as env:
        yield env


def test_a_backup_taken_while_ingesting_restores_into_a_fresh_target(
    platform_backends: str, target_env: dict[str, str], tmp_path: Path
) -> None:
    root = make_project(tmp_path / "project")
    env = clean_env(GITHUB_WEBHOOK_SECRET=WEBHOOK_SECRET, **backend_env())
    stored = ghapplets("secrets", "set", "api-token", "--value", API_TOKEN, cwd=root, env=env)
    assert stored.code == 0, stored
    archive = tmp_path / "backup.tgz"
    known = str(uuid.uuid4())
    with serving(root, env=env) as server:
        send_known(root, env, server.url, known)
        poll(lambda: records("deliveries", root, env).get(known) == "succeeded")
        sender = subprocess.Popen(
            [*GHAPPLETS, "send", "push", "--count", "40", "--url", server.url],
            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            poll(lambda: len(records("deliveries", root, env)) >= 5, interval=0.02)
            taken = ghapplets("backup", archive, "--include-key", cwd=root, env=env)
            assert taken.code == 0, taken
        finally:
            out, err = sender.communicate(timeout=120)
        assert sender.returncode == 0, (out, err)

    backed = Archive(archive)
    saved = {r["id"]: r["status"] for r in backed.rows(member_of(deliveries))}
    job_rows = list(backed.rows(member_of(jobs)))
    saved_jobs = {r["id"]: r["status"] for r in job_rows}
    # one snapshot: the deliveries were read before the jobs, yet every job's delivery is there
    assert {r["delivery_id"] for r in job_rows} <= set(saved)
    pending = list(backed.rows(EVENTS_MEMBER))
    assert saved[known] == "succeeded"
    assert set(saved_jobs.values()) & UNFINISHED, "the backup was to catch unfinished work"

    target = tmp_path / "target-data"
    tenv = clean_env(GITHUB_WEBHOOK_SECRET=WEBHOOK_SECRET, **target_env)
    # killed once the rows are in and before the queue is rebuilt: a second restore, with
    # --force (the target holds the rows now), completes it
    crashed = ghapplets("restore", archive, "--data-dir", target, cwd=root,
                        env={**tenv, "GHAPPLETS_CRASH_AT": "restore.loaded"})  # fmt: skip
    assert crashed.code == -signal.SIGKILL, crashed
    again = ghapplets("restore", archive, "--data-dir", target, cwd=root, env=tenv)
    assert again.code == 1 and "--force" in again.err, again
    restored = ghapplets("restore", archive, "--force", "--data-dir", target, cwd=root, env=tenv)
    assert restored.code == 0, restored
    assert f"{sum(s in UNFINISHED for s in saved_jobs.values())} unfinished job(s)" in restored.out

    # before any server runs: the records as they were, the unfinished jobs queued again
    assert records("deliveries", root, tenv, "--data-dir", target) == saved
    requeued = {i: "queued" if s in UNFINISHED else s for i, s in saved_jobs.items()}
    assert records("jobs", root, tenv, "--data-dir", target) == requeued
    assert reveal(root, tenv, "--data-dir", target) == API_TOKEN

    with serving(root, "--data-dir", target, env=tenv) as server:
        assert '"duplicate":true' in send_known(root, tenv, server.url, known)

        def finished() -> bool:
            now = records("jobs", root, tenv, "--data-dir", target)
            return set(saved_jobs) <= set(now) and set(now.values()) == {"succeeded"}

        poll(finished, timeout=60)
        # the events accepted but not yet dispatched at the backup are dispatched now
        expected = len(saved) + len(pending)
        poll(lambda: len(records("deliveries", root, tenv, "--data-dir", target)) >= expected)


@pytest.fixture
def pg_env(pg_empty_url: str, nats_server: NatsServer) -> dict[str, str]:
    return {
        "GHAPPLETS_STORAGE__BACKEND": "postgresql",
        "GHAPPLETS_STORAGE__URL": pg_empty_url,
        "GHAPPLETS_BROKER__BACKEND": "nats",
        "GHAPPLETS_BROKER__URL": nats_server.url,
    }


def test_an_embedded_backup_restores_into_postgresql_and_back(
    pg_env: dict[str, str], tmp_path: Path
) -> None:
    root = make_project(tmp_path / "project")
    env = clean_env(GITHUB_WEBHOOK_SECRET=WEBHOOK_SECRET)
    assert (
        ghapplets("secrets", "set", "api-token", "--value", API_TOKEN, cwd=root, env=env).code == 0
    )
    ids = [str(uuid.uuid4()) for _ in range(3)]
    with serving(root, env=env) as server:
        for did in ids:
            sent = ghapplets("send", "push", "--delivery-id", did, "--url", server.url,
                             cwd=root, env=env)  # fmt: skip
            assert sent.code == 0, sent
        poll(lambda: [records("deliveries", root, env).get(i) for i in ids] == ["succeeded"] * 3)
    embedded = tmp_path / "embedded.tgz"
    assert ghapplets("backup", embedded, "--include-key", cwd=root, env=env).code == 0
    want = records("deliveries", root, env), records("jobs", root, env)

    penv = clean_env(GITHUB_WEBHOOK_SECRET=WEBHOOK_SECRET, **pg_env)
    pdata = tmp_path / "pg-data"  # the key file goes here
    restored = ghapplets("restore", embedded, "--data-dir", pdata, cwd=root, env=penv)
    assert restored.code == 0, restored
    got = (
        records("deliveries", root, penv, "--data-dir", pdata),
        records("jobs", root, penv, "--data-dir", pdata),
    )
    assert got == want
    assert reveal(root, penv, "--data-dir", pdata) == API_TOKEN

    from_pg = tmp_path / "postgresql.tgz"
    taken = ghapplets("backup", from_pg, "--include-key", "--data-dir", pdata, cwd=root, env=penv)
    assert taken.code == 0, taken
    assert Archive(from_pg).manifest.storage == "postgresql"
    back = tmp_path / "back-data"
    restored = ghapplets("restore", from_pg, "--data-dir", back, cwd=root, env=env)
    assert restored.code == 0, restored
    assert (
        records("deliveries", root, env, "--data-dir", back),
        records("jobs", root, env, "--data-dir", back),
    ) == want
    assert reveal(root, env, "--data-dir", back) == API_TOKEN
    refused = ghapplets("restore", from_pg, "--data-dir", pdata, cwd=root, env=penv)
    assert refused.code == 1 and "not empty" in refused.err, refused
