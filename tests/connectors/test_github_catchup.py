"""GitHub catch-up: which webhooks are redelivered (sans-I/O), then against the GitHub fake's
deliveries API, through the CLI, and by the worker's timer through a real ``ghapplets serve``
that the fake redelivers to."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ghapplets.connectors.config import GithubConnector
from ghapplets.connectors.github import GitHub
from ghapplets.connectors.github_catchup import (
    MAX_PAGES,
    HookDelivery,
    catch_up,
    list_deliveries,
    next_cursor,
    parse_delivery,
    to_redeliver,
)
from ghapplets.exceptions import ActionFailed, ActionUnavailable
from tests.cli.helpers import cli, serving
from tests.conftest import ProjectBuilder

APP_ID = 1001
DOC = {
    "id": 40,
    "guid": "0b989ba4-242f-11e5-81e1-c7b6966d2516",
    "delivered_at": "2026-12-03T10:00:00Z",
    "redelivery": False,
    "duration": 0.27,
    "status": "Invalid HTTP Response: 502",
    "status_code": 502,
    "event": "issues",
    "action": "opened",
    "installation_id": 2001,
    "repository_id": 1296269,
}


# -- the choice, on its own ------------------------------------------------------------------
def test_a_delivery_parses_from_githubs_json() -> None:
    d = parse_delivery(DOC)
    assert (d.id, d.guid, d.status_code, d.event, d.action) == (
        40,
        DOC["guid"],
        502,
        "issues",
        "opened",
    )
    assert d.delivered_at == 1796292000.0 and not d.delivered and not d.redelivery
    assert parse_delivery({**DOC, "status_code": None}).status_code == 0  # no answer at all
    assert parse_delivery({**DOC, "action": None}).action is None
    assert parse_delivery({**DOC, "action": 5}).action is None  # not a name: none
    assert parse_delivery({**DOC, "redelivery": True}).redelivery
    assert not parse_delivery({k: v for k, v in DOC.items() if k != "redelivery"}).redelivery
    assert parse_delivery({**DOC, "status_code": 202}).delivered


@pytest.mark.parametrize("broken", [[], "x", {**DOC, "guid": None} | {"id": "forty"}, {"id": 1}])
def test_a_delivery_that_is_not_one_is_an_error(broken: Any) -> None:
    with pytest.raises(ValueError, match=r"^a delivery (is not an object|without a valid )"):
        parse_delivery(broken)


@pytest.mark.parametrize(
    ("link", "cursor"),
    [
        (
            '<https://api.github.com/app/hook/deliveries?per_page=100&cursor=v1_30>; rel="next"',
            "v1_30",
        ),
        ('<https://x/a?cursor=v1_9&per_page=2>; rel="next", <https://x/a>; rel="first"', "v1_9"),
        ('<https://x/a?cursor=v1_9>; rel="prev"', None),
        ('<https://x/a?per_page=2>; rel="next"', None),
        ("", None),
        (None, None),
    ],
)
def test_the_next_page_cursor(link: str | None, cursor: str | None) -> None:
    assert next_cursor(link) == cursor


def attempt(id: int, guid: str, status: int, at: float = 0.0) -> HookDelivery:
    return HookDelivery(
        id=id, guid=guid, delivered_at=at or float(id), status_code=status, event="e"
    )


def test_a_webhook_is_redelivered_once_and_only_when_no_attempt_delivered_it() -> None:
    chosen = to_redeliver(
        [
            attempt(9, "ok-after-retry", 202),
            attempt(8, "ok-after-retry", 502),
            attempt(7, "never", 0),
            attempt(5, "never", 504),
            attempt(6, "twice-failed", 500),
            attempt(4, "fine", 200),
            attempt(3, "client-error", 404),
        ]
    )
    assert [(a.guid, a.id) for a in chosen] == [
        ("client-error", 3),
        ("twice-failed", 6),
        ("never", 7),
    ]


# -- against the fake ------------------------------------------------------------------------
@pytest.fixture
async def github(ghapplets_fakes: Any) -> AsyncIterator[GitHub]:
    config = GithubConnector(
        kind="github",
        base_url=ghapplets_fakes.github.base_url,
        app_id=APP_ID,
        private_key=ghapplets_fakes.private_keys[APP_ID],
    )
    connector = GitHub("github", config, clock=ghapplets_fakes.clock.now)
    yield connector
    await connector.aclose()


def redelivered(fake: Any) -> list[int]:
    return [a.delivery_id for a in fake.redeliveries]


async def test_failed_webhooks_not_in_the_store_are_redelivered(
    github: GitHub, ghapplets_fakes: Any
) -> None:
    fake = ghapplets_fakes.github
    now = ghapplets_fakes.clock.now()
    lost = fake.add_delivery("issues", action="opened", status_code=502, delivered_at=now - 60)
    held = fake.add_delivery("push", status_code=0, delivered_at=now - 50)
    fake.add_delivery("push", status_code=202, delivered_at=now - 40)
    fake.add_delivery("issues", status_code=500, delivered_at=now - 7200)  # before the window
    later = fake.add_delivery("issues", status_code=500, delivered_at=now - 45)  # after it
    retried = fake.add_delivery("ping", status_code=503, delivered_at=now - 30)
    fake.add_delivery("ping", status_code=202, guid=retried.guid, delivered_at=now - 20)
    asked: list[str] = []

    async def in_store(guid: str) -> bool:
        asked.append(guid)
        return guid == held.guid

    report = await catch_up(github, in_store, since=now - 3600)
    assert report.listed == 6 and report.failed == 3
    assert report.redelivered == [lost.guid, later.guid] and report.held == [held.guid]
    assert redelivered(fake) == [lost.id, later.id]
    assert sorted(asked) == sorted([lost.guid, held.guid, later.guid])
    # the App's JWT, not an installation token, on both endpoints
    calls = fake.requests("/app/hook/deliveries*")
    assert calls and all((r.header("authorization") or "").startswith("Bearer ey") for r in calls)


async def test_a_dry_run_asks_for_nothing(github: GitHub, ghapplets_fakes: Any) -> None:
    fake = ghapplets_fakes.github
    lost = fake.add_delivery("issues", status_code=502)

    async def nothing_stored(guid: str) -> bool:
        return False

    report = await catch_up(github, nothing_stored, since=0, dry_run=True)
    assert report.redelivered == [lost.guid] and redelivered(fake) == []


async def test_every_page_of_the_window_is_read(github: GitHub, ghapplets_fakes: Any) -> None:
    fake = ghapplets_fakes.github
    now = ghapplets_fakes.clock.now()
    lost = [
        fake.add_delivery("push", status_code=502, delivered_at=now - 250 + i) for i in range(250)
    ]

    async def nothing_stored(guid: str) -> bool:
        return False

    report = await catch_up(github, nothing_stored, since=now - 300)
    assert report.listed == 250 and len(report.redelivered) == 250
    assert report.redelivered == [d.guid for d in lost]  # oldest first
    assert len(fake.requests("/app/hook/deliveries", method="GET")) == 3
    assert MAX_PAGES * 100 >= 250


async def test_a_token_connector_cannot_list_the_apps_deliveries(ghapplets_fakes: Any) -> None:
    config = GithubConnector(kind="github", base_url=ghapplets_fakes.github.base_url, token="ghp_x")
    connector = GitHub("github", config)
    try:
        with pytest.raises(ActionFailed, match="401"):
            await catch_up(connector, _never, since=0)
    finally:
        await connector.aclose()


async def _never(guid: str) -> bool:
    raise AssertionError(guid)


# -- the CLI ---------------------------------------------------------------------------------
def app_project(root: Path, fakes: Any, every: str = "null", secret: str | None = None) -> Path:
    builder = ProjectBuilder(root)
    if secret is not None:
        builder.source("github", f"kind: github\nsecret: {secret}")
    builder.extra = (
        f"connectors:\n  github:\n    kind: github\n    base_url: {fakes.github.base_url}\n"
        f"    app_id: {APP_ID}\n    private_key: ${{env:GH_APP_KEY}}\n"
        f"    catch_up_every: {every}\n"
    )
    return builder.build()


def test_the_cli_redelivers_and_reports(tmp_path: Path, ghapplets_fakes: Any) -> None:
    fake = ghapplets_fakes.github
    root = app_project(tmp_path / "p", ghapplets_fakes)
    env = {"GH_APP_KEY": ghapplets_fakes.private_keys[APP_ID]}
    assert cli("github", "catch-up", "-p", root, env=env).code == 4  # no store yet
    assert cli("secrets", "set", "unrelated", "-p", root, input="x").code == 0  # makes one
    lost = fake.add_delivery("issues", action="opened", status_code=502)
    dry = cli("github", "catch-up", "--dry-run", "-p", root, env=env)
    assert dry.code == 0, dry
    assert "1 would redeliver" in dry.out and redelivered(fake) == []
    done = cli("github", "catch-up", "--json", "--since", "2h", "-p", root, env=env)
    assert done.code == 0, done
    assert json.loads(done.out) == {
        "listed": 1,
        "failed": 1,
        "held": [],
        "redelivered": [lost.guid],
        "errors": [],
    }
    assert redelivered(fake) == [lost.id]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "give a duration (90m, 6h, 3d) or an ISO time"),
        (["--connector", "other"], "no GitHub App connector named 'other'"),
    ],
)
def test_the_cli_refuses_bad_usage(
    tmp_path: Path, ghapplets_fakes: Any, args: list[str], message: str
) -> None:
    root = app_project(tmp_path / "p", ghapplets_fakes)
    result = cli("github", "catch-up", *args, "-p", root)
    assert result.code == 2 and message in result.err + result.out


def test_the_cli_needs_an_app_connector(tmp_path: Path) -> None:
    root = ProjectBuilder(tmp_path / "p").build()
    result = cli("github", "catch-up", "-p", root)
    assert result.code == 2 and "the project has no GitHub App connector" in result.err + result.out


# -- the worker's timer ----------------------------------------------------------------------
def test_the_worker_redelivers_a_lost_webhook_which_then_runs(
    tmp_path: Path, ghapplets_fakes: Any
) -> None:
    fake = ghapplets_fakes.github
    secret = fake.config.apps[0].webhook_secret
    root = app_project(tmp_path / "p", ghapplets_fakes, every="0.3", secret=secret)
    ProjectBuilder(root).exec_applet(
        "seen", "#!/bin/sh\necho '{\"seen\": true}'\n", "on: [com.github.issues.opened]\n"
    )
    payload = {"action": "opened", "issue": {"number": 7}, "repository": {"full_name": "o/r"}}
    lost = fake.add_delivery("issues", action="opened", status_code=0, payload=payload)
    env = {"GH_APP_KEY": ghapplets_fakes.private_keys[APP_ID]}
    with serving(root, env=env, timeout=90) as server:
        fake.config.webhook_url = f"{server.url}/hooks/github"
        try:
            deadline = time.monotonic() + 60
            while True:
                listed = cli("deliveries", "--project", root, "--json")
                rows = [json.loads(line) for line in listed.out.splitlines() if line.strip()]
                if any(r["id"] == lost.guid and r["status"] == "succeeded" for r in rows):
                    break
                assert time.monotonic() < deadline, (rows, server.log_text()[-2000:])
                time.sleep(0.2)
        finally:
            fake.config.webhook_url = None
    assert redelivered(fake) == [lost.id]  # once: then the store holds it


async def test_a_refused_redelivery_is_reported_and_the_others_still_asked_for(
    github: GitHub, ghapplets_fakes: Any
) -> None:
    fake = ghapplets_fakes.github
    now = ghapplets_fakes.clock.now()
    first = fake.add_delivery("issues", status_code=502, delivered_at=now - 60)
    second = fake.add_delivery("issues", status_code=502, delivered_at=now - 50)
    fake.inject(401, path="/app/hook/deliveries/*/attempts", method="POST", times=1)

    async def nothing_stored(guid: str) -> bool:
        return False

    report = await catch_up(github, nothing_stored, since=now - 3600)
    assert [e.split(":")[0] for e in report.errors] == [first.guid]
    assert report.redelivered == [second.guid] and redelivered(fake) == [second.id]


async def test_the_window_includes_its_first_second_across_pages_and_reads_no_further(
    github: GitHub, ghapplets_fakes: Any
) -> None:
    fake = ghapplets_fakes.github
    since = float(int(ghapplets_fakes.clock.now()) - 1000)
    for i in range(150):  # before the window: the third page is never needed
        fake.add_delivery("push", status_code=202, delivered_at=since - 200 + i)
    at_start = [fake.add_delivery("push", status_code=502, delivered_at=since) for _ in range(2)]
    for i in range(99):  # newest first, these and one of the two fill the first page
        fake.add_delivery("push", status_code=202, delivered_at=since + 1 + i)

    async def nothing_stored(guid: str) -> bool:
        return False

    report = await catch_up(github, nothing_stored, since=since)
    assert report.listed == 101  # the second of the two at the window's start, on page 2
    assert report.redelivered == [d.guid for d in at_start]
    assert len(fake.requests("/app/hook/deliveries", method="GET")) == 2


class Answering:
    """Stands in for the GitHub connector's ``send``: one page, as given."""

    def __init__(self, page: Any) -> None:
        self.page = page

    async def send(self, method: str, path: str) -> httpx.Response:
        return httpx.Response(200, json=self.page)


@pytest.mark.parametrize(
    ("page", "message"),
    [
        ({"message": "not a list"}, "GitHub's deliveries list is not a list"),
        ([{"id": 1}], "GitHub's deliveries list: a delivery without a valid 'delivered_at'"),
    ],
)
async def test_a_deliveries_list_github_did_not_send_is_a_bad_gateway(
    page: Any, message: str
) -> None:
    with pytest.raises(ActionUnavailable) as raised:
        await list_deliveries(Answering(page), since=0)  # type: ignore[arg-type]
    assert (raised.value.message, raised.value.status) == (message, 502)
