"""What the browser tests share: a real ``ghapplets serve`` with the admin API and dashboard on
a port of its own, a token per role (made by ``ghapplets tokens create``), some traffic (dead
jobs, blueprint runs waiting for a comment), and headless Chromium from Debian driven by
Playwright (never a downloaded browser)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ghapplets.sources import fixtures
from ghapplets.store.records import Role
from tests.admin.harness import build_project
from tests.admin.test_api import APPROVAL
from tests.cli.helpers import Server, clean_env, ghapplets, poll, serving
from tests.conftest import ProjectBuilder, free_port

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "test-results" / "dashboard"
NEEDLE = "acme-corp/needle-service"  # the repository of the one delivery a test looks for
DEAD_AT_START = 3  # picky's dead jobs the traffic leaves


# a missing browser is an error that says so, not a skip (tests/dashboard/conftest.py)
needs_chromium = pytest.mark.usefixtures("chromium_installed")


@dataclass
class Running:
    server: Server
    root: Path
    marker: Path
    admin_url: str
    tokens: dict[Role, str]

    def api(self, path: str, role: Role = Role.ADMIN, **params: Any) -> Any:
        answer = httpx.get(
            f"{self.admin_url}/api/v1{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.tokens[role]}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    def send(self, event: str, *args: object) -> None:
        # a process of its own: Playwright's sync API holds this thread's event loop
        sent = ghapplets("send", event, "--url", self.server.url, *args, cwd=self.root)
        assert sent.code == 0 and sent.out.startswith("202 "), sent


def issue_payload(folder: Path, event: str, number: int, body: str = "approved") -> Path:
    """The fixture of ``event`` (issues.opened, issue_comment.created) about issue ``number``."""
    payload = fixtures.load("github", event).payload
    payload["issue"]["number"] = number
    if "comment" in payload:
        payload["comment"]["body"] = body
    path = folder / f"{event}-{number}.json"
    path.write_text(json.dumps(payload))
    return path


def needle_payload(folder: Path, repository: str = NEEDLE) -> Path:
    """The issues.opened fixture, of another repository (so its subject is one of a kind)."""
    payload = fixtures.load("github", "issues.opened").payload
    payload["repository"]["full_name"] = repository
    payload["repository"]["name"] = repository.split("/")[1]
    path = folder / f"{repository.replace('/', '-')}.json"
    path.write_text(json.dumps(payload))
    return path


@contextlib.contextmanager
def running_site(project: ProjectBuilder, folder: Path, **env: str) -> Iterator[Running]:
    """``ghapplets serve`` of a project with the admin tests' applets (``picky`` dies until
    the marker exists, ``echo`` succeeds) and a blueprint that waits for a comment; traffic
    sent, and waited for."""
    project.blueprint("approval", APPROVAL)
    marker = folder / "marker"
    root = build_project(project, marker)
    tokens: dict[Role, str] = {}
    for role in Role:
        made = ghapplets("tokens", "create", f"ui-{role.value}", "--role", role.value, cwd=root)
        assert made.code == 0, made
        tokens[role] = made.out.strip().splitlines()[-1]
    admin_port = free_port()
    environ = clean_env(GHAPPLETS_SERVER__ADMIN_ADDRESS=f"127.0.0.1:{admin_port}", **env)
    with serving(root, "--processes", "1", env=environ) as server:
        running = Running(server, root, marker, f"http://127.0.0.1:{admin_port}", tokens)
        for _ in range(DEAD_AT_START - 1):
            running.send("issues.opened")
        running.send("issues.opened", "--file", needle_payload(folder))
        poll(lambda: len(running.api("/jobs", status="dead")["items"]) >= DEAD_AT_START, timeout=60)
        poll(lambda: running.api("/runs", status="waiting")["items"], timeout=60)
        yield running
