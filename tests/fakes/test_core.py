"""What every fake shares, through its /_fakes control API and its Python methods: recording,
fault injection (statuses, counts, globs, methods, delays), reset, state and the clock."""

from __future__ import annotations

import time

import httpx
import pytest

from ghapplets.fakes.runner import FakeSet
from tests.fakes.conftest import REPO, installation_token, token_headers


def test_requests_are_recorded_with_credentials_and_answers(
    fakes: FakeSet, gh: httpx.Client
) -> None:
    token = installation_token(fakes, gh)
    gh.post(
        f"/repos/{REPO}/issues/1/comments?x=1", headers=token_headers(token), json={"body": "b"}
    )
    gh.get("/_fakes/state")  # the control API is not recorded
    recorded = gh.get("/_fakes/requests", params={"path": "/repos/*"}).json()["requests"]
    assert len(recorded) == 1
    entry = recorded[0]
    assert (entry["method"], entry["path"], entry["query"]) == (
        "POST",
        f"/repos/{REPO}/issues/1/comments",
        "x=1",
    )
    assert entry["headers"]["authorization"] == f"token {token}"
    assert entry["body"] == '{"body":"b"}' and entry["status"] == 201 and not entry["fault"]
    python_side = fakes.github.requests(method="post", path="/repos/*")
    assert python_side[0].json() == {"body": "b"} and python_side[0].params == {"x": "1"}
    assert len(fakes.github.requests()) == 2  # the token exchange too
    assert gh.delete("/_fakes/requests").status_code == 204
    assert fakes.github.requests() == []


def test_faults_through_the_control_api(fakes: FakeSet) -> None:
    with httpx.Client(base_url=fakes.splunk.base_url or "") as hec:
        added = hec.post(
            "/_fakes/faults", json={"status": 500, "times": 2, "path": "/services/collector/*"}
        )
        assert added.status_code == 201
        assert added.json() == {**added.json(), "status": 500, "fired": 0, "remaining": 2}
        assert hec.get("/services/collector/health").status_code == 500
        assert hec.get("/_fakes/faults").json()["faults"][0]["remaining"] == 1
        assert hec.get("/services/collector/health").status_code == 500
        assert hec.get("/_fakes/faults").json()["faults"] == []  # spent
        assert hec.get("/services/collector/health").status_code == 200
        hec.post("/_fakes/faults", json={"status": 503, "times": None, "method": "POST"})
        assert hec.get("/services/collector/health").status_code == 200  # not a POST
        for _ in range(3):
            assert hec.post("/services/collector/event").status_code == 503
        assert hec.delete("/_fakes/faults").status_code == 204
        assert hec.post("/services/collector/event").status_code == 401  # no token: real answer


@pytest.mark.parametrize(
    "spec",
    [{"status": 418}, {"status": 200}, {"times": 0}, {"delay": -1}, {"colour": "red"},
     {"retry_after": -5}],
)  # fmt: skip
def test_bad_fault_specs_are_refused(fakes: FakeSet, spec: dict[str, object]) -> None:
    response = httpx.post(f"{fakes.jira.base_url}/_fakes/faults", json=spec)
    assert response.status_code == 422
    assert fakes.jira.faults() == []


def test_a_delay_alone_slows_the_answer(fakes: FakeSet) -> None:
    fakes.splunk.inject(None, delay=0.3, path="/services/collector/health")
    started = time.perf_counter()
    response = httpx.get(f"{fakes.splunk.base_url}/services/collector/health")
    assert response.status_code == 200
    assert time.perf_counter() - started >= 0.3
    assert fakes.splunk.requests()[-1].fault is False


def test_reset_state_and_clock(fakes: FakeSet, gh: httpx.Client) -> None:
    installation_token(fakes, gh)
    fakes.jira.add_issue("PROJ", "x")
    fakes.github.inject(500)
    assert gh.get("/_fakes/state").json()["token_exchanges"] == {"2001": 1}
    assert gh.post("/_fakes/reset").status_code == 204
    assert gh.get("/_fakes/state").json()["token_exchanges"] == {}
    assert fakes.github.requests() == [] and fakes.github.faults() == []
    assert "PROJ-1" in fakes.jira.issues  # reset is per fake
    before = fakes.clock.now()
    moved = gh.post("/_fakes/clock", json={"advance": 120}).json()
    assert moved["offset"] == 120 and moved["now"] >= before + 120
    assert gh.post("/_fakes/clock", json={"advance": -1}).status_code == 422
    fakes.reset()
    assert fakes.clock.offset == 0 and fakes.jira.issues == {}


def test_unknown_routes_answer_in_the_vendors_format(fakes: FakeSet) -> None:
    github = httpx.get(f"{fakes.github.base_url}/nope")
    assert github.status_code == 404 and github.json()["message"] == "Not Found"
    jira = httpx.get(f"{fakes.jira.base_url}/nope")
    assert jira.json() == {"errorMessages": ["Not Found"], "errors": {}}
    servicenow = httpx.get(f"{fakes.servicenow.base_url}/nope")
    assert servicenow.json()["status"] == "failure"
    wrong_method = httpx.delete(f"{fakes.splunk.base_url}/services/collector/event")
    assert wrong_method.status_code == 405 and "code" in wrong_method.json()
