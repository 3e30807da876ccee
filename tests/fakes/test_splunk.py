"""The Splunk HEC fake over real HTTP: tokens, concatenated envelopes, HEC's status codes,
index allow-lists, health, faults."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest

from ghapplets.fakes.config import FakeName, FakesConfig, HecToken, SplunkConfig
from ghapplets.fakes.runner import FakeSet, serve_fakes

TOKEN = "11111111-2222-3333-4444-555555555555"
AUTH = {"Authorization": f"Splunk {TOKEN}"}


@pytest.fixture
def hec(fakes: FakeSet) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fakes.splunk.base_url or "") as client:
        yield client


def test_concatenated_envelopes_are_indexed_with_defaults(
    fakes: FakeSet, hec: httpx.Client
) -> None:
    body = (
        b'{"event": "deploy started", "time": 1715679000.5, "host": "ci-1"}'
        b'{"event": {"status": "ok"}, "sourcetype": "ghapplets:job", "index": "sdlc",'
        b' "fields": {"applet": "deploy", "tags": ["a", "b"]}}\n  '
    )
    response = hec.post("/services/collector/event", headers=AUTH, content=body)
    assert (response.status_code, response.json()) == (200, {"text": "Success", "code": 0})
    first, second = fakes.splunk.events
    assert (first.event, first.time, first.host) == ("deploy started", 1715679000.5, "ci-1")
    assert (first.index, first.sourcetype, first.source) == ("main", "httpevent", "http:ghapplets")
    assert (second.event, second.index, second.sourcetype) == (
        {"status": "ok"},
        "sdlc",
        "ghapplets:job",
    )
    assert second.fields == {"applet": "deploy", "tags": ["a", "b"]}
    assert second.host == "127.0.0.1"  # the sender, when the envelope names none
    assert fakes.splunk.events_for(index="sdlc") == [second]
    for path in ("/services/collector", "/services/collector/event/1.0"):
        assert hec.post(path, headers=AUTH, json={"event": "x"}).status_code == 200


@pytest.mark.parametrize(
    ("headers", "status", "body"),
    [
        ({}, 401, {"text": "Token is required", "code": 2}),
        ({"Authorization": TOKEN}, 401, {"text": "Invalid authorization", "code": 3}),
        ({"Authorization": f"Bearer {TOKEN}"}, 401, {"text": "Invalid authorization", "code": 3}),
        ({"Authorization": "Splunk nope"}, 403, {"text": "Invalid token", "code": 4}),
    ],
)
def test_token_errors(hec: httpx.Client, headers: dict[str, str], status: int, body: dict) -> None:
    response = hec.post("/services/collector/event", headers=headers, json={"event": "x"})
    assert (response.status_code, response.json()) == (status, body)


def test_basic_auth_with_the_token_as_password(fakes: FakeSet, hec: httpx.Client) -> None:
    basic = "Basic " + base64.b64encode(f"x:{TOKEN}".encode()).decode()
    response = hec.post(
        "/services/collector/event", headers={"Authorization": basic}, json={"event": 1}
    )
    assert response.status_code == 200
    query = hec.post("/services/collector/event", params={"token": TOKEN}, json={"event": 1})
    assert query.json() == {"text": "Query string authorization is not enabled", "code": 16}
    assert fakes.splunk.requests()[-1].params == {"token": TOKEN}  # recorded as sent


@pytest.mark.parametrize(
    ("body", "status", "answer", "indexed"),
    [
        (b"", 400, {"text": "No data", "code": 5}, 0),
        (b"   \n", 400, {"text": "No data", "code": 5}, 0),
        (b'{"event": "a"} {"event": ', 400,
         {"text": "Invalid data format", "code": 6, "invalid-event-number": 1}, 1),
        (b'{"event": "a"}{"time": 1}', 400,
         {"text": "Event field is required", "code": 12, "invalid-event-number": 1}, 1),
        (b'{"event": ""}', 400,
         {"text": "Event field cannot be blank", "code": 13, "invalid-event-number": 0}, 0),
        (b'["event"]', 400,
         {"text": "Event field is required", "code": 12, "invalid-event-number": 0}, 0),
        (b'{"event": "a", "fields": {"nested": {"no": 1}}}', 400,
         {"text": "Error in handling indexed fields", "code": 15, "invalid-event-number": 0}, 0),
        (b'{"event": "a", "time": "noon"}', 400,
         {"text": "Invalid data format", "code": 6, "invalid-event-number": 0}, 0),
    ],
)  # fmt: skip
def test_data_errors_with_the_invalid_event_number(
    fakes: FakeSet, hec: httpx.Client, body: bytes, status: int, answer: dict, indexed: int
) -> None:
    response = hec.post("/services/collector/event", headers=AUTH, content=body)
    assert (response.status_code, response.json()) == (status, answer)
    assert len(fakes.splunk.events) == indexed  # the envelopes before the bad one are kept


def test_index_allow_list_and_disabled_tokens() -> None:
    config = FakesConfig(
        splunk=SplunkConfig(
            tokens=[
                HecToken(token="t-1", indexes=["sdlc"], default_index="sdlc"),
                HecToken(token="t-off", disabled=True),
            ]
        )
    )
    with (
        serve_fakes(config, only=[FakeName.SPLUNK]) as fakes,
        httpx.Client(base_url=fakes.splunk.base_url or "") as hec,
    ):
        url = "/services/collector/event"
        ok = hec.post(url, headers={"Authorization": "Splunk t-1"}, json={"event": "x"})
        assert ok.status_code == 200 and fakes.splunk.events[0].index == "sdlc"
        wrong = hec.post(
            url, headers={"Authorization": "Splunk t-1"}, json={"event": "x", "index": "main"}
        )
        assert (wrong.status_code, wrong.json()) == (
            400,
            {"text": "Incorrect index", "code": 7, "invalid-event-number": 0},
        )
        off = hec.post(url, headers={"Authorization": "Splunk t-off"}, json={"event": "x"})
        assert (off.status_code, off.json()) == (403, {"text": "Token disabled", "code": 1})


def test_health_and_busy_faults(fakes: FakeSet, hec: httpx.Client) -> None:
    health = hec.get("/services/collector/health")
    assert (health.status_code, health.json()) == (200, {"text": "HEC is healthy", "code": 17})
    fakes.splunk.inject(503, path="/services/collector/health")
    unhealthy = hec.get("/services/collector/health")
    assert (unhealthy.status_code, unhealthy.json()["code"]) == (503, 18)
    fakes.splunk.inject(503, times=2, retry_after=1, path="/services/collector/event")
    for _ in range(2):
        busy = hec.post("/services/collector/event", headers=AUTH, json={"event": "x"})
        assert (busy.status_code, busy.json()) == (503, {"text": "Server is busy", "code": 9})
        assert busy.headers["Retry-After"] == "1"
    assert (
        hec.post("/services/collector/event", headers=AUTH, json={"event": "x"}).status_code == 200
    )
    assert len(fakes.splunk.events) == 1
