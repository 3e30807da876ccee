"""Make this version's backup fixture: ``python -m tests.backup.make_fixture`` (from the repository
root, in the project's virtualenv; about a minute).

It runs a real project with ``ghapplets serve`` on the embedded backends, sends it signed
webhooks of three sources (GitHub, Jira, GitLab), waits until its jobs and blueprint runs are
where a backup should catch them, takes ``ghapplets backup`` while the server runs, and writes
into ``tests/backup/fixtures/``:

- ``backup-format<F>-<version>.tgz``: the archive, as ``ghapplets backup`` wrote it (the key
  is not in it);
- ``backup-format<F>-<version>.key``: the secrets key its secrets are encrypted under. **A
  test-only key**, made for this fixture and published with it: it protects nothing, and must
  never be used for anything else;
- ``backup-format<F>-<version>.json``: what the archive holds (rows per table, deliveries per
  source, jobs and runs per status, the secret's name and value, a delivery id to send again),
  which ``tests/backup/test_fixtures.py`` checks a restore against.

What the project leaves in the store at the backup: deliveries of three sources; jobs that
succeeded, one dead after two attempts per Jira webhook, one retrying (its next attempt an hour
away), one running (an applet that waits while a file exists) and two queued behind it
(concurrency 1); attempts of each; a global secret; and two blueprint runs waiting, one on a
ten-year timer and one on a listener for a Jira ``issue_created`` event.

Every later version must restore every archive in that folder (the test runs them all). A new
version adds its own fixture, when it changes what a backup holds or how; it never replaces or
edits one, so this refuses to overwrite an existing file.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from ghapplets import __version__
from ghapplets.backup.archive import FORMAT, Archive
from ghapplets.backup.tables import EVENTS_MEMBER, member_of
from ghapplets.secrets.crypto import KEY_ENV, generate_key
from ghapplets.store.schema import blueprint_runs, deliveries, jobs
from tests.cli.helpers import clean_env, ghapplets, poll, serving
from tests.conftest import ProjectBuilder

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SECRET_NAME = "fixture-api-token"
SECRET_VALUE = "fixture-api-token-value-3f9a1c"
DUPLICATE = "5d1c5a1e-9b7f-4c2e-8a41-0f1ae7d00001"  # the issues.opened webhook's delivery id
# the sources' settings (all but their secrets); one fixture body is sent under several ids
SOURCES = {
    name: {"kind": name, "replay_protection": False} for name in ("github", "jira", "gitlab")
}
SOURCE_SECRETS = {name: f"fixture-{name}-webhook-secret" for name in SOURCES}

OK = """\
#!/bin/sh
cat > /dev/null
echo '{"ok": true}'
"""
RETRY = """\
#!/bin/sh
cat > /dev/null
echo 'not now' >&2
exit 75
"""
HOLD = """\
#!/bin/sh
cat > /dev/null
while [ -e hold ]; do sleep 0.05; done
echo '{}'
"""
TIMER = """\
document: {dsl: '1.0.0', namespace: fixture, name: wait-ten-years, version: '1.0.0'}
schedule:
  on:
    one:
      with: {type: com.github.issues.opened}
do:
  - hold:
      wait: P3650D
"""
LISTENER = """\
document: {dsl: '1.0.0', namespace: fixture, name: await-jira-issue, version: '1.0.0'}
schedule:
  on:
    one:
      with: {type: com.github.issues.opened}
do:
  - approval:
      listen:
        to:
          one:
            with: {type: com.atlassian.jira.issue_created}
"""


def project(root: Path) -> Path:
    builder = ProjectBuilder(root)
    for name, settings in SOURCES.items():
        lines = [f"{key}: {orjson.dumps(value).decode()}" for key, value in settings.items()]
        builder.source(name, "\n".join([*lines, f"secret: ${{env:FIXTURE_{name.upper()}_SECRET}}"]))
    builder.exec_applet("ok", OK, "on: [com.github.*, com.gitlab.*]\n")
    builder.exec_applet(
        "doomed",
        RETRY,
        "on: [com.atlassian.jira.*]\n"
        "retry: {max_attempts: 2, initial_delay: 0.1, max_delay: 0.1, jitter: false}\n",
    )
    builder.exec_applet(
        "flaky",
        RETRY,
        "on: [com.gitlab.push]\n"
        "retry: {max_attempts: 5, initial_delay: 3600, max_delay: 3600, jitter: false}\n",
    )
    held = builder.exec_applet("slow", HOLD, "on: [com.github.push]\nconcurrency: 1\n")
    (held / "hold").touch()
    builder.blueprint("wait-ten-years", TIMER)
    builder.blueprint("await-jira-issue", LISTENER)
    return builder.build()


def records(kind: str, root: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    listed = ghapplets(kind, "--json", "--limit", "1000", cwd=root, env=env)
    assert listed.code == 0, listed
    return listed.json_lines()


def settled(root: Path, env: dict[str, str]) -> bool:
    """Every job and run where the backup is to find it."""
    statuses = Counter((j["applet"], j["status"]) for j in records("jobs", root, env))
    runs = Counter(r["status"] for r in records("runs", root, env))
    return statuses == {
        ("ok", "succeeded"): 7,
        ("slow", "running"): 1,
        ("slow", "queued"): 2,
        ("doomed", "dead"): 2,
        ("flaky", "retrying"): 1,
    } and runs == {"waiting": 2}


def send(root: Path, env: dict[str, str], url: str, *args: str) -> None:
    sent = ghapplets("send", *args, "--url", url, cwd=root, env=env)
    assert sent.code == 0 and "duplicate" not in sent.err, sent


def make(target: Path, work: Path) -> dict[str, Any]:
    key = generate_key()
    root = project(work / "project")
    env = clean_env(**{KEY_ENV: key}, **{
        f"FIXTURE_{name.upper()}_SECRET": secret for name, secret in SOURCE_SECRETS.items()
    })  # fmt: skip
    stored = ghapplets("secrets", "set", SECRET_NAME, "--value", SECRET_VALUE, cwd=root, env=env)
    assert stored.code == 0, stored
    with serving(root, env=env) as server:
        send(root, env, server.url, "issues.opened", "--delivery-id", DUPLICATE)
        send(root, env, server.url, "pull_request.opened")
        send(root, env, server.url, "push", "--count", "3")
        send(root, env, server.url, "jira:issue_updated", "--source", "jira", "--count", "2")
        send(root, env, server.url, "push", "--source", "gitlab")
        send(root, env, server.url, "merge_request.open", "--source", "gitlab")
        poll(lambda: settled(root, env), timeout=60, interval=0.2)
        taken = ghapplets("backup", target, cwd=root, env=env)
        assert taken.code == 0, taken
        (root / "applets" / "slow" / "hold").unlink()  # let the server stop at once
    target.with_suffix(".key").write_text(key + "\n")
    return expected(Archive(target))


def expected(archive: Archive) -> dict[str, Any]:
    """What the test checks a restore of ``archive`` against."""
    m = archive.manifest
    job_rows = list(archive.rows(member_of(jobs)))
    run_rows = list(archive.rows(member_of(blueprint_runs)))
    delivery_rows = list(archive.rows(member_of(deliveries)))
    return {
        "note": "The .key file beside this archive is a test-only secrets key, made for this "
        "fixture and published with it: it protects nothing. Never use it elsewhere.",
        "ghapplets": m.ghapplets,
        "format": m.format,
        "schema": m.schema,
        "key_file": archive.path.with_suffix(".key").name,
        "counts": m.counts,
        "events_not_dispatched": sum(1 for _ in archive.rows(EVENTS_MEMBER)),
        "sources": SOURCES,
        "applets": sorted({j["applet"] for j in job_rows}),
        "deliveries": {d["id"]: d["status"] for d in delivery_rows},
        "deliveries_per_source": dict(Counter(d["source"] for d in delivery_rows)),
        "jobs": {j["id"]: j["status"] for j in job_rows},
        "runs": {r["id"]: {"status": r["status"], "wake_at": r["wake_at"]} for r in run_rows},
        "listener": {"source": "jira", "event": "jira:issue_created"},
        "secret": {"name": SECRET_NAME, "value": SECRET_VALUE},
        "duplicate": {"source": "github", "event": "issues.opened", "delivery_id": DUPLICATE},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=FIXTURES, help="the fixtures folder")
    args = parser.parse_args(argv)
    target = args.out / f"backup-format{FORMAT}-{__version__}.tgz"
    made = [target, target.with_suffix(".key"), target.with_suffix(".json")]
    if any(p.exists() for p in made):
        print(f"{target.name} exists: a fixture is never replaced (see the docstring)")
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ghapplets-fixture-"))
    try:
        doc = make(target, work)
    except BaseException:
        for p in made:
            p.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    target.with_suffix(".json").write_bytes(
        orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )
    print(f"wrote {', '.join(p.name for p in made)} in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
