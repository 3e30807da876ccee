"""``serve`` with ``logging.splunk_hec``, end to end against the HEC fake: the supervisor, each
gateway and the worker ship their own lines, a stop ships the last ones, and the token (a
stored secret) is never in the local output nor in what is shipped."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from ghapplets.fakes.runner import FakeSet
from ghapplets.fakes.splunk import HecEvent
from tests.cli.helpers import clean_env, cli, ghapplets, poll, serving
from tests.conftest import ProjectBuilder, free_port, write

pytestmark = pytest.mark.slow  # real servers: serve, two gateways and a worker

TOKEN = "11111111-2222-3333-4444-555555555555"  # the fake's development token
WEBHOOK_SECRET = "hec-flow-webhook-secret-5b"

CONFIG = """\
project: hec
sources:
  github:
    kind: github
    secret: ${{env:GITHUB_WEBHOOK_SECRET}}
applets: [applets]
logging:
  splunk_hec:
    url: {url}
    token: {token}
    index: ghapplets-logs
    flush_interval: 0.1
"""

GRUMPY = """\
#!/bin/sh
cat > /dev/null
echo "nope" >&2
exit 3
"""


def project(root: Path, url: str, token: str) -> Path:
    ProjectBuilder(root).exec_applet(
        "grumpy", GRUMPY, "on: [com.github.issues.*]\nretry: {max_attempts: 1}\n"
    )
    write(root / "ghapplets.yaml", CONFIG.format(url=url, token=token))
    return root


def lines(events: list[HecEvent], source: str, event: str) -> list[dict[str, Any]]:
    return [e.event for e in events if e.source == source and e.event.get("event") == event]


def test_every_process_ships_its_lines_to_splunk(tmp_path: Path, ghapplets_fakes: FakeSet) -> None:
    splunk = ghapplets_fakes.splunk
    assert splunk.base_url is not None
    root = project(tmp_path / "project", splunk.base_url, "${secret:hec-token}")
    env = clean_env(GITHUB_WEBHOOK_SECRET=WEBHOOK_SECRET)
    stored = ghapplets("secrets", "set", "hec-token", cwd=root, env=env, input=TOKEN + "\n")
    assert stored.code == 0, stored

    with serving(root, "--processes", "2", env=env, timeout=120) as server:
        # a gateway refuses a forged webhook, and says so
        forged = httpx.post(
            f"{server.url}/hooks/github",
            content=b"{}",
            headers={"X-GitHub-Event": "ping", "X-Hub-Signature-256": "sha256=00"},
        )
        assert forged.status_code == 401
        (rejected,) = poll(
            lambda: lines(splunk.events, "ghapplets:gateway", "webhook rejected"), timeout=30
        )
        assert rejected["source"] == "github" and rejected["level"] == "warning"

        # the worker runs an applet that fails for good, and says so, with the delivery id
        delivery_id = str(uuid.uuid4())
        sent = cli(
            "send", "issues.opened", "--delivery-id", delivery_id, "--url", server.url, "-p", root,
            env=env,
        )  # fmt: skip
        assert sent.code == 0, sent
        (dead,) = poll(
            lambda: lines(splunk.events, "ghapplets:worker", "job dead-lettered"), timeout=30
        )
        assert dead["delivery_id"] == delivery_id and dead["applet"] == "grumpy"

        server.proc.terminate()  # a graceful stop: every process ships its last lines
        assert server.proc.wait(timeout=60) == 0
        log = server.log_text()

    events = list(splunk.events)
    assert len(lines(events, "ghapplets:serve", "listening")) == 1
    assert len(lines(events, "ghapplets:serve", "all processes stopped")) == 1
    assert len(lines(events, "ghapplets:gateway", "platform stopped")) == 2
    assert len(lines(events, "ghapplets:worker", "platform stopped")) == 1
    assert {e.index for e in events} == {"ghapplets-logs"}
    assert {e.sourcetype for e in events} == {"ghapplets"}
    # what went to Splunk is what was logged here, and neither holds the token
    assert all(e.event["event"] in log for e in events)
    requests = splunk.requests(path="/services/collector/event")
    assert {r.header("authorization") for r in requests} == {f"Splunk {TOKEN}"}
    assert all(TOKEN.encode() not in r.body for r in requests)
    assert TOKEN not in log and WEBHOOK_SECRET not in log


def test_an_unresolvable_token_stops_serve_with_its_name(
    tmp_path: Path, ghapplets_fakes: FakeSet
) -> None:
    splunk = ghapplets_fakes.splunk
    assert splunk.base_url is not None
    root = project(tmp_path / "project", splunk.base_url, "${env:HEC_TOKEN}")
    env = clean_env(GITHUB_WEBHOOK_SECRET=WEBHOOK_SECRET)
    result = ghapplets("serve", "--port", free_port(), cwd=root, env=env, timeout=60)
    assert result.code == 3, result
    assert "environment variable HEC_TOKEN is not set" in result.err
