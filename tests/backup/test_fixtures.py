"""Every backup fixture restores, on both backends: the archives that earlier versions wrote.

``tests/backup/fixtures/`` holds one archive per version that made one
(``backup-format<F>-<version>.tgz``, made by ``python -m tests.backup.make_fixture``), with its
test-only secrets key (``.key``) and what it holds (``.json``). **Every later version must
restore every one of them**: a new version adds a fixture of its own; it never replaces or
edits one, and never deletes one to make this test pass.

Each archive is restored with ``ghapplets restore`` into a fresh target, an empty data folder
(embedded) or an empty PostgreSQL database with a new NATS server, and checked: the rows per
table; every delivery and job with its status (the unfinished jobs queued again); the secret
read with the fixture's key; then, with a server running on the target, a delivery id of the
archive is answered as a duplicate, the queued work runs to the end, the run waiting on a timer
still waits, and the run waiting on a listener goes on when its event comes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.backup.make_fixture import FIXTURES
from tests.cli.helpers import clean_env, ghapplets, poll, serving
from tests.cli.test_backup_restore import fresh_backends
from tests.conftest import ProjectBuilder

ARCHIVES = sorted(FIXTURES.glob("backup-format*.tgz"))
UNFINISHED = {"queued", "running", "retrying"}
OK = """\
#!/bin/sh
cat > /dev/null
echo '{}'
"""
# a worker drives blueprint runs only when its project has blueprints; a run keeps its own
# definition, so any blueprint will do (this one starts on nothing sent here)
IDLE = """\
document: {dsl: '1.0.0', namespace: restore, name: idle, version: '1.0.0'}
schedule:
  on:
    one:
      with: {type: dev.ghapplets.test.nothing}
do:
  - nothing:
      set: {done: true}
"""


def test_there_is_a_fixture_of_this_backup_format() -> None:
    from ghapplets.backup.archive import FORMAT

    assert any(f"backup-format{FORMAT}-" in a.name for a in ARCHIVES), ARCHIVES


@pytest.fixture(params=["embedded", "nats-postgresql"])
def target_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Where to restore: a new data folder, or an empty database (no schema yet) and a new
    NATS server."""
    with fresh_backends(request.param, request, tmp_path) as env:
        yield env


def project(root: Path, want: dict[str, Any]) -> Path:
    """A project with the archive's sources (their settings, a secret of its own), an applet of
    each name its jobs run (one that succeeds, and subscribes to nothing sent here), and a
    blueprint."""
    builder = ProjectBuilder(root)
    for name, settings in want["sources"].items():
        lines = [f"{key}: {orjson.dumps(value).decode()}" for key, value in settings.items()]
        builder.source(name, "\n".join([*lines, f"secret: restore-{name}-secret"]))
    for applet in want["applets"]:
        builder.exec_applet(applet, OK, "on: [dev.ghapplets.test.nothing]\n")
    builder.blueprint("idle", IDLE)
    return builder.build()


def listed(kind: str, root: Path, env: dict[str, str]) -> dict[str, Any]:
    got = ghapplets(kind, "--json", "--limit", "100000", "--data-dir", root / "data",
                    cwd=root, env=env)  # fmt: skip
    assert got.code == 0, got
    # the NATS client logs to stdout (connected, max_payload): the JSON lines are the records
    rows = [orjson.loads(line) for line in got.out.splitlines() if line.startswith("{")]
    return {row["id"]: row for row in rows}


def statuses(kind: str, root: Path, env: dict[str, str]) -> dict[str, str]:
    return {i: row["status"] for i, row in listed(kind, root, env).items()}


@pytest.mark.parametrize("archive", ARCHIVES, ids=[a.name for a in ARCHIVES])
def test_a_fixture_restores_whole_and_its_work_goes_on(
    archive: Path, target_env: dict[str, str], tmp_path: Path
) -> None:
    want = orjson.loads(archive.with_suffix(".json").read_bytes())
    key = (archive.parent / want["key_file"]).read_text().strip()
    root = project(tmp_path / "project", want)
    env = clean_env(GHAPPLETS_SECRET_KEY=key, **target_env)
    data = root / "data"

    verified = ghapplets("backup", "verify", archive, cwd=root, env=env)
    assert verified.code == 0, verified
    restored = ghapplets("restore", archive, "--data-dir", data, cwd=root, env=env)
    assert restored.code == 0, restored
    for table, rows in want["counts"].items():
        assert f"  {table:<22} {rows}\n" in restored.out, (table, restored)
    unfinished = {i for i, s in want["jobs"].items() if s in UNFINISHED}
    assert f"queued again: {len(unfinished)} unfinished job(s)" in restored.out, restored
    assert f"{want['events_not_dispatched']} event(s) not yet dispatched" in restored.out

    # before any server runs: every record as it was, the unfinished jobs queued again
    restored_deliveries = listed("deliveries", root, env)
    assert {i: d["status"] for i, d in restored_deliveries.items()} == want["deliveries"]
    per_source = Counter(d["source"] for d in restored_deliveries.values())
    assert per_source == want["deliveries_per_source"]
    requeued = {i: "queued" if i in unfinished else s for i, s in want["jobs"].items()}
    assert statuses("jobs", root, env) == requeued
    runs = listed("runs", root, env)
    assert {i: (r["status"], r["wake_at"]) for i, r in runs.items()} == {
        i: (r["status"], r["wake_at"]) for i, r in want["runs"].items()
    }
    secret = want["secret"]
    got = ghapplets("secrets", "get", secret["name"], "--reveal", "--data-dir", data,
                    cwd=root, env=env)  # fmt: skip
    assert got.code == 0, got
    assert got.out.strip().splitlines()[-1] == secret["value"]

    with serving(root, "--data-dir", data, env=env) as server:
        dup = want["duplicate"]
        again = ghapplets("send", dup["event"], "--source", dup["source"], "--delivery-id",
                          dup["delivery_id"], "--url", server.url, cwd=root, env=env)  # fmt: skip
        assert again.code == 0, again
        assert '"duplicate":true' in again.out.replace(" ", ""), again

        def finished() -> bool:
            now = statuses("jobs", root, env)
            return all(now[i] == "succeeded" for i in unfinished)

        poll(finished, timeout=60, interval=0.2)
        finished_before = {i: s for i, s in want["jobs"].items() if i not in unfinished}
        assert {i: s for i, s in statuses("jobs", root, env).items() if i in finished_before} == (
            finished_before
        )

        waiting = {i for i, r in want["runs"].items() if r["status"] == "waiting"}
        timers = {i for i in waiting if want["runs"][i]["wake_at"] is not None}
        event = want["listener"]
        woken = ghapplets("send", event["event"], "--source", event["source"], "--url",
                          server.url, cwd=root, env=env)  # fmt: skip
        assert woken.code == 0, woken

        def listener_went_on() -> bool:
            now = statuses("runs", root, env)
            return all(now[i] == "completed" for i in waiting - timers)

        poll(listener_went_on, timeout=60, interval=0.2)
        assert all(statuses("runs", root, env)[i] == "waiting" for i in timers)
