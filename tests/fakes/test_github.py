"""The GitHub fake over real HTTP: installation tokens, the repository endpoints, permissions,
rate-limit headers and limits, GHES under /api/v3, the hook deliveries API, faults."""

from __future__ import annotations

import time
from datetime import datetime

import httpx
import pytest

from ghapplets.fakes.config import FakeName, FakesConfig, GitHubConfig, InstallationConfig
from ghapplets.fakes.runner import FakeSet, serve_fakes
from tests.fakes.conftest import (
    APP_ID,
    INSTALLATION,
    REPO,
    app_headers,
    installation_token,
    token_headers,
)


def test_token_exchange_answers_like_github_and_is_counted(
    fakes: FakeSet, gh: httpx.Client
) -> None:
    first = gh.post(f"/app/installations/{INSTALLATION}/access_tokens", headers=app_headers(fakes))
    assert first.status_code == 201
    body = first.json()
    assert body["token"].startswith("ghs_") and len(body["token"]) == 40
    expires = datetime.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%SZ").timestamp()
    assert abs(expires - (fakes.clock.now() + 3600)) < 5
    assert body["permissions"]["issues"] == "write"
    assert body["repository_selection"] == "selected"
    second = installation_token(fakes, gh)
    assert second != body["token"]
    assert fakes.github.exchanges(INSTALLATION) == 2
    for token in (body["token"], second):  # both stay valid until they expire
        assert gh.get(f"/repos/{REPO}/issues/1", headers=token_headers(token)).status_code == 200
    assert gh.get("/_fakes/state").json()["token_exchanges"] == {str(INSTALLATION): 2}


def test_unknown_installation_is_404_and_not_counted(fakes: FakeSet, gh: httpx.Client) -> None:
    response = gh.post("/app/installations/9999/access_tokens", headers=app_headers(fakes))
    assert (response.status_code, response.json()["message"]) == (404, "Not Found")
    assert fakes.github.exchanges(9999) == 0


def test_expired_and_unknown_tokens_are_bad_credentials(fakes: FakeSet, gh: httpx.Client) -> None:
    token = installation_token(fakes, gh)
    url = f"/repos/{REPO}/issues/1"
    assert gh.get(url, headers=token_headers(token, "Bearer")).status_code == 200
    fakes.clock.advance(3601)
    expired = gh.get(url, headers=token_headers(token))
    assert (expired.status_code, expired.json()["message"]) == (401, "Bad credentials")
    assert expired.json()["documentation_url"] == "https://docs.github.com/rest"
    unknown = gh.get(url, headers=token_headers("ghs_" + "x" * 36))
    assert (unknown.status_code, unknown.json()["message"]) == (401, "Bad credentials")
    anonymous = gh.get(url)
    assert (anonymous.status_code, anonymous.json()["message"]) == (401, "Requires authentication")
    jwt_there = gh.get(url, headers=app_headers(fakes))
    assert jwt_there.json()["message"] == "Bad credentials"
    garbage = gh.post(f"{url}/comments", headers=token_headers(token), content=b"{nope")
    assert garbage.status_code == 401  # authenticated before the body is read, as GitHub does


def test_expire_tokens_by_method_and_control_api(fakes: FakeSet, gh: httpx.Client) -> None:
    url = f"/repos/{REPO}/issues/1"
    token = installation_token(fakes, gh)
    assert fakes.github.expire_tokens(INSTALLATION) == 1
    assert gh.get(url, headers=token_headers(token)).status_code == 401
    token = installation_token(fakes, gh)
    assert gh.post("/_fakes/tokens/expire", json={}).json() == {"expired": 1}
    assert gh.get(url, headers=token_headers(token)).status_code == 401


def test_repositories_outside_the_installation_or_token_are_not_found(
    fakes: FakeSet, gh: httpx.Client
) -> None:
    fakes.github.add_repo("octo-org/other", INSTALLATION)
    fakes.github.add_issue("octo-org/other", 7)
    fakes.github.add_repo("someone/else")
    fakes.github.add_issue("someone/else", 1)
    token = installation_token(fakes, gh)
    assert gh.get("/repos/octo-org/other/issues/7", headers=token_headers(token)).status_code == 200
    assert gh.get("/repos/someone/else/issues/1", headers=token_headers(token)).status_code == 404
    narrow = installation_token(fakes, gh, {"repositories": ["hello-world"]})
    other = gh.get("/repos/octo-org/other/issues/7", headers=token_headers(narrow))
    assert (other.status_code, other.json()["message"]) == (404, "Not Found")
    assert gh.get(f"/repos/{REPO}/issues/1", headers=token_headers(narrow)).status_code == 200
    repos = gh.get("/installation/repositories", headers=token_headers(narrow)).json()
    assert [r["full_name"] for r in repos["repositories"]] == [REPO]
    missing = gh.post(
        f"/app/installations/{INSTALLATION}/access_tokens",
        headers=app_headers(fakes),
        json={"repositories": ["nope"]},
    )
    assert missing.status_code == 422


def test_token_permissions_are_enforced(fakes: FakeSet, gh: httpx.Client) -> None:
    reader = installation_token(fakes, gh, {"permissions": {"issues": "read"}})
    denied = gh.post(
        f"/repos/{REPO}/issues/1/comments", headers=token_headers(reader), json={"body": "x"}
    )
    assert (denied.status_code, denied.json()["message"]) == (
        403,
        "Resource not accessible by integration",
    )
    assert gh.get(f"/repos/{REPO}/issues/1", headers=token_headers(reader)).status_code == 200
    too_much = gh.post(
        f"/app/installations/{INSTALLATION}/access_tokens",
        headers=app_headers(fakes),
        json={"permissions": {"administration": "write"}},
    )
    assert too_much.status_code == 422
    assert "not granted" in too_much.json()["message"]


def test_comments_labels_and_issue(fakes: FakeSet, gh: httpx.Client) -> None:
    headers = token_headers(installation_token(fakes, gh))
    comment = gh.post(f"/repos/{REPO}/issues/1/comments", headers=headers, json={"body": "Hi"})
    assert comment.status_code == 201
    created = comment.json()
    assert created["body"] == "Hi"
    assert created["user"] == {**created["user"], "login": "ghapplets-dev[bot]", "type": "Bot"}
    assert created["issue_url"].endswith(f"/repos/{REPO}/issues/1")
    assert fakes.github.repo(REPO).comments == [created]
    empty = gh.post(f"/repos/{REPO}/issues/1/comments", headers=headers, json={})
    assert empty.status_code == 422
    assert empty.json()["errors"] == [
        {"resource": "IssueComment", "field": "body", "code": "missing_field"}
    ]
    assert (
        gh.post(
            f"/repos/{REPO}/issues/99/comments", headers=headers, json={"body": "x"}
        ).status_code
        == 404
    )
    bad_json = gh.post(f"/repos/{REPO}/issues/1/comments", headers=headers, content=b"{nope")
    assert (bad_json.status_code, bad_json.json()["message"]) == (400, "Problems parsing JSON")

    labels = gh.post(f"/repos/{REPO}/issues/1/labels", headers=headers, json={"labels": ["bug"]})
    assert labels.status_code == 200
    again = gh.post(f"/repos/{REPO}/issues/1/labels", headers=headers, json=["bug", {"name": "ci"}])
    assert [label["name"] for label in again.json()] == ["bug", "ci"]
    assert fakes.github.repo(REPO).labels_of(1) == ["bug", "ci"]
    issue = gh.get(f"/repos/{REPO}/issues/1", headers=headers).json()
    assert issue["number"] == 1 and issue["comments"] == 1
    assert [label["name"] for label in issue["labels"]] == ["bug", "ci"]
    assert gh.get(f"/repos/{REPO}/issues/2", headers=headers).status_code == 404


def test_statuses_check_runs_deployments_and_dispatches(fakes: FakeSet, gh: httpx.Client) -> None:
    headers = token_headers(installation_token(fakes, gh))
    sha = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
    status = gh.post(
        f"/repos/{REPO}/statuses/{sha}",
        headers=headers,
        json={"state": "success", "context": "ghapplets/ci", "target_url": "https://ci/1"},
    )
    assert status.status_code == 201 and status.json()["context"] == "ghapplets/ci"
    wrong = gh.post(f"/repos/{REPO}/statuses/{sha}", headers=headers, json={"state": "done"})
    assert (wrong.status_code, wrong.json()["message"]) == (422, "Validation Failed")
    assert wrong.json()["errors"][0]["field"] == "state"
    no_commit = gh.post(f"/repos/{REPO}/statuses/main", headers=headers, json={"state": "success"})
    assert no_commit.json()["message"] == "No commit found for SHA: main"

    run = gh.post(
        f"/repos/{REPO}/check-runs",
        headers=headers,
        json={"name": "lint", "head_sha": sha, "status": "completed", "conclusion": "success",
              "output": {"title": "ok", "summary": "all good"}},
    )  # fmt: skip
    assert run.status_code == 201
    assert (run.json()["conclusion"], run.json()["output"]["summary"]) == ("success", "all good")
    unfinished = gh.post(
        f"/repos/{REPO}/check-runs",
        headers=headers,
        json={"name": "lint", "head_sha": sha, "status": "completed"},
    )
    assert unfinished.status_code == 422
    assert (
        gh.post(f"/repos/{REPO}/check-runs", headers=headers, json={"name": "x"}).status_code == 422
    )

    deployment = gh.post(
        f"/repos/{REPO}/deployments",
        headers=headers,
        json={"ref": "main", "environment": "staging", "payload": {"build": 7}},
    )
    assert deployment.status_code == 201
    dep = deployment.json()
    assert (dep["environment"], dep["payload"], dep["ref"]) == ("staging", {"build": 7}, "main")
    assert len(dep["sha"]) == 40
    assert gh.post(f"/repos/{REPO}/deployments", headers=headers, json={}).status_code == 422
    dstatus = gh.post(
        f"/repos/{REPO}/deployments/{dep['id']}/statuses",
        headers=headers,
        json={"state": "success", "log_url": "https://ci/log", "environment_url": "https://stg"},
    )
    assert dstatus.status_code == 201
    assert dstatus.json()["deployment_url"] == dep["url"]
    assert dstatus.json()["environment"] == "staging"
    assert (
        gh.post(
            f"/repos/{REPO}/deployments/1/statuses", headers=headers, json={"state": "success"}
        ).status_code
        == 404
    )

    dispatch = gh.post(
        f"/repos/{REPO}/dispatches",
        headers=headers,
        json={"event_type": "deploy", "client_payload": {"env": "prod"}},
    )
    assert (dispatch.status_code, dispatch.content) == (204, b"")
    too_big = gh.post(
        f"/repos/{REPO}/dispatches",
        headers=headers,
        json={"event_type": "x", "client_payload": {str(i): i for i in range(11)}},
    )
    assert too_big.status_code == 422

    repo = fakes.github.repo(REPO)
    assert [s["state"] for s in repo.statuses] == ["success"]
    assert [r["name"] for r in repo.check_runs] == ["lint"]
    assert [d["id"] for d in repo.deployments] == [dep["id"]]
    assert [s["state"] for s in repo.deployment_statuses] == ["success"]
    assert repo.dispatches == [{"event_type": "deploy", "client_payload": {"env": "prod"}}]


def test_app_endpoints_take_the_jwt(fakes: FakeSet, gh: httpx.Client) -> None:
    app = gh.get("/app", headers=app_headers(fakes)).json()
    assert (app["id"], app["slug"], app["installations_count"]) == (APP_ID, "ghapplets-dev", 1)
    found = gh.get(f"/repos/{REPO}/installation", headers=app_headers(fakes))
    assert found.status_code == 200
    assert found.json()["id"] == INSTALLATION
    assert found.json()["access_tokens_url"].endswith(
        f"/app/installations/{INSTALLATION}/access_tokens"
    )
    assert (
        gh.get("/repos/octo-org/nope/installation", headers=app_headers(fakes)).status_code == 404
    )
    listed = gh.get("/app/installations", headers=app_headers(fakes)).json()
    assert [i["id"] for i in listed] == [INSTALLATION]


def test_ghes_is_served_under_api_v3(fakes: FakeSet, gh: httpx.Client) -> None:
    token = gh.post(
        f"/api/v3/app/installations/{INSTALLATION}/access_tokens", headers=app_headers(fakes)
    )
    assert token.status_code == 201
    assert token.headers["X-GitHub-Enterprise-Version"]
    comment = gh.post(
        f"/api/v3/repos/{REPO}/issues/1/comments",
        headers=token_headers(token.json()["token"]),
        json={"body": "from GHES"},
    ).json()
    assert comment["url"].startswith(f"{fakes.github.base_url}/api/v3/repos/{REPO}/")
    assert "X-GitHub-Enterprise-Version" not in gh.get("/app", headers=app_headers(fakes)).headers


def test_rate_limit_headers_count_down_per_token(fakes: FakeSet, gh: httpx.Client) -> None:
    headers = token_headers(installation_token(fakes, gh))
    first = gh.get(f"/repos/{REPO}/issues/1", headers=headers)
    second = gh.get(f"/repos/{REPO}/issues/1", headers=headers)
    for name in ("Limit", "Remaining", "Reset", "Used", "Resource"):
        assert f"X-RateLimit-{name}" in second.headers
    assert int(first.headers["X-RateLimit-Remaining"]) - 1 == int(
        second.headers["X-RateLimit-Remaining"]
    )
    assert second.headers["X-RateLimit-Used"] == "2"
    assert int(second.headers["X-RateLimit-Reset"]) > time.time()
    assert second.headers["X-GitHub-Request-Id"]
    anonymous = gh.get(f"/repos/{REPO}/issues/1")
    assert anonymous.headers["X-RateLimit-Limit"] == "60"


def test_past_the_primary_rate_limit_github_answers_403() -> None:
    config = FakesConfig(github=GitHubConfig(rate_limit=2))
    with (
        serve_fakes(config, only=[FakeName.GITHUB]) as fakes,
        httpx.Client(base_url=fakes.github.base_url or "") as gh,
    ):
        headers = token_headers(installation_token(fakes, gh))
        assert gh.get(f"/repos/{REPO}/issues/1", headers=headers).status_code == 200
        assert gh.get(f"/repos/{REPO}/issues/1", headers=headers).status_code == 200
        limited = gh.get(f"/repos/{REPO}/issues/1", headers=headers)
        assert limited.status_code == 403
        assert (
            limited.json()["message"]
            == f"API rate limit exceeded for installation ID {INSTALLATION}."
        )
        assert limited.headers["X-RateLimit-Remaining"] == "0"
        fakes.clock.advance(3600)
        assert gh.get(f"/repos/{REPO}/issues/1", headers=headers).status_code == 401  # expired
        fresh = token_headers(installation_token(fakes, gh))
        assert gh.get(f"/repos/{REPO}/issues/1", headers=fresh).status_code == 200


def test_a_suspended_installation_gets_no_token() -> None:
    config = FakesConfig(github=GitHubConfig(installations=[InstallationConfig(suspended=True)]))
    with (
        serve_fakes(config, only=[FakeName.GITHUB]) as fakes,
        httpx.Client(base_url=fakes.github.base_url or "") as gh,
    ):
        response = gh.post(
            f"/app/installations/{INSTALLATION}/access_tokens", headers=app_headers(fakes)
        )
        assert (response.status_code, response.json()["message"]) == (
            403,
            "This installation has been suspended",
        )


@pytest.mark.parametrize("status", [403, 429])
def test_secondary_rate_limit_fault_with_retry_after(
    fakes: FakeSet, gh: httpx.Client, status: int
) -> None:
    headers = token_headers(installation_token(fakes, gh))
    fakes.github.inject(status, times=2, retry_after=7, path="/repos/*/comments")
    url = f"/repos/{REPO}/issues/1/comments"
    for _ in range(2):
        limited = gh.post(url, headers=headers, json={"body": "x"})
        assert limited.status_code == status
        assert limited.headers["Retry-After"] == "7"
        assert limited.json()["message"].startswith("You have exceeded a secondary rate limit")
        assert "X-RateLimit-Limit" in limited.headers
    assert gh.get(f"/repos/{REPO}/issues/1", headers=headers).status_code == 200  # other path
    assert gh.post(url, headers=headers, json={"body": "x"}).status_code == 201
    recorded = fakes.github.requests(path="*/comments")
    assert [(r.status, r.fault) for r in recorded] == [(status, True), (status, True), (201, False)]
    assert len(fakes.github.repo(REPO).comments) == 1


@pytest.mark.parametrize("status", [403, 429])
def test_primary_rate_limit_fault_without_retry_after(
    fakes: FakeSet, gh: httpx.Client, status: int
) -> None:
    headers = token_headers(installation_token(fakes, gh))
    window = gh.get(f"/repos/{REPO}/issues/1", headers=headers).headers["X-RateLimit-Reset"]
    fakes.github.inject(status, path="/repos/*/comments")
    limited = gh.post(f"/repos/{REPO}/issues/1/comments", headers=headers, json={"body": "x"})
    assert limited.status_code == status and "Retry-After" not in limited.headers
    assert (
        limited.json()["message"] == f"API rate limit exceeded for installation ID {INSTALLATION}."
    )
    assert limited.headers.get_list("X-RateLimit-Remaining") == ["0"]  # the fault's, alone
    assert limited.headers["X-RateLimit-Reset"] == window
    assert limited.headers["X-RateLimit-Resource"] == "core"  # the others still added


def test_server_error_and_bad_credentials_faults(fakes: FakeSet, gh: httpx.Client) -> None:
    headers = token_headers(installation_token(fakes, gh))
    fakes.github.inject(502)
    fakes.github.inject(401)
    first = gh.get(f"/repos/{REPO}/issues/1", headers=headers)
    assert (first.status_code, first.json()["message"]) == (502, "Bad Gateway")
    second = gh.get(f"/repos/{REPO}/issues/1", headers=headers)
    assert (second.status_code, second.json()["message"]) == (401, "Bad credentials")
    assert gh.get(f"/repos/{REPO}/issues/1", headers=headers).status_code == 200


def test_hook_deliveries_are_paginated_with_a_cursor(fakes: FakeSet, gh: httpx.Client) -> None:
    made = [
        fakes.github.add_delivery(
            "issues", action="opened", status_code=code, installation_id=INSTALLATION
        )
        for code in (200, 503, 200, 500, 200)
    ]
    first = gh.get("/app/hook/deliveries", params={"per_page": 2}, headers=app_headers(fakes))
    assert first.status_code == 200
    assert [d["id"] for d in first.json()] == [made[4].id, made[3].id]  # newest first
    item = first.json()[1]
    assert {k: item[k] for k in ("status", "status_code", "event", "action", "redelivery")} == {
        "status": "Invalid HTTP Response: 500",
        "status_code": 500,
        "event": "issues",
        "action": "opened",
        "redelivery": False,
    }
    assert item["installation_id"] == INSTALLATION and item["guid"] == made[3].guid
    seen = [d["id"] for d in first.json()]
    link = first.headers["Link"]
    while link:
        url = link.split(";")[0].strip("<>")
        assert 'rel="next"' in link and "cursor=" in url
        page = gh.get(url, headers=app_headers(fakes))
        seen += [d["id"] for d in page.json()]
        link = page.headers.get("Link", "")
    assert seen == [d.id for d in reversed(made)]
    failed = gh.get(
        "/app/hook/deliveries", params={"status": "failure"}, headers=app_headers(fakes)
    )
    assert [d["status_code"] for d in failed.json()] == [500, 503]
    one = gh.get(f"/app/hook/deliveries/{made[1].id}", headers=app_headers(fakes)).json()
    assert one["request"]["headers"]["X-GitHub-Event"] == "issues"
    assert one["request"]["payload"] == {"action": "opened"}
    assert gh.get("/app/hook/deliveries", headers=token_headers("ghs_x")).status_code == 401


def test_redelivery_is_accepted_and_recorded(fakes: FakeSet, gh: httpx.Client) -> None:
    delivery = fakes.github.add_delivery("push", status_code=503)
    response = gh.post(f"/app/hook/deliveries/{delivery.id}/attempts", headers=app_headers(fakes))
    assert (response.status_code, response.json()) == (202, {})
    assert [a.delivery_id for a in fakes.github.redeliveries] == [delivery.id]
    missing = gh.post("/app/hook/deliveries/1/attempts", headers=app_headers(fakes))
    assert missing.status_code == 404
    added = gh.post("/_fakes/deliveries", json={"event": "ping", "status_code": 0})
    assert added.status_code == 201
    assert added.json()["status"] == "failed to connect to host"
