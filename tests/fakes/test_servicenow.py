"""The ServiceNow fake over real HTTP: the Table API with encoded queries and pagination, basic
auth and OAuth (password, client credentials, refresh, expiry), errors, faults, approvals; and
the encoded query subset."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from ghapplets.fakes.encoded_query import QueryError, parse_query
from ghapplets.fakes.runner import FakeSet

BASIC = ("admin", "servicenow-password")
CLIENT = {"client_id": "servicenow-client", "client_secret": "servicenow-client-secret"}


@pytest.fixture
def sn(fakes: FakeSet) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fakes.servicenow.base_url or "", auth=BASIC) as client:
        yield client


def test_create_read_update_delete(fakes: FakeSet, sn: httpx.Client) -> None:
    created = sn.post(
        "/api/now/table/change_request",
        json={"short_description": "Deploy checkout 2024.05", "risk": 2, "u_flag": True},
    )
    assert created.status_code == 201
    record = created.json()["result"]
    assert re.fullmatch(r"[0-9a-f]{32}", record["sys_id"])
    assert record["number"] == "CHG0000001"
    assert (record["state"], record["approval"]) == ("-5", "not requested")
    assert (record["risk"], record["u_flag"]) == ("2", "true")  # values are strings
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", record["sys_created_on"])
    assert (record["sys_created_by"], record["sys_mod_count"]) == ("admin", "0")
    url = f"/api/now/table/change_request/{record['sys_id']}"
    assert created.headers["Location"] == f"{fakes.servicenow.base_url}{url}"
    assert sn.get(url).json()["result"] == record
    patched = sn.patch(url, json={"state": "-4"}).json()["result"]
    assert (patched["state"], patched["sys_mod_count"]) == ("-4", "1")
    assert sn.put(url, json={"short_description": "x"}).json()["result"]["sys_mod_count"] == "2"
    fields = sn.get(url, params={"sysparm_fields": "number,state"}).json()["result"]
    assert fields == {"number": "CHG0000001", "state": "-4"}
    assert sn.delete(url).status_code == 204
    gone = sn.get(url)
    assert gone.status_code == 404
    assert gone.json() == {
        "error": {
            "message": "No Record found",
            "detail": "Record doesn't exist or ACL restricts the record retrieval",
        },
        "status": "failure",
    }
    assert sn.post("/api/now/table/incident", json={}).json()["result"]["number"] == "INC0000001"


def test_list_with_query_limit_and_links(fakes: FakeSet, sn: httpx.Client) -> None:
    for priority in ("3", "1", "2", "1"):
        sn.post("/api/now/table/incident", json={"priority": priority, "short_description": "x"})
    listed = sn.get(
        "/api/now/table/incident",
        params={"sysparm_query": "priority<=2^ORDERBYDESCnumber", "sysparm_limit": "2"},
    )
    assert listed.status_code == 200
    assert listed.headers["X-Total-Count"] == "3"
    assert [r["number"] for r in listed.json()["result"]] == ["INC0000004", "INC0000003"]
    links = dict(
        (rel, url) for url, rel in re.findall(r'<([^>]+)>;rel="(\w+)"', listed.headers["Link"])
    )
    assert set(links) == {"first", "next", "last"}
    following = sn.get(links["next"]).json()["result"]
    assert [r["number"] for r in following] == ["INC0000002"]
    ored = sn.get("/api/now/table/incident", params={"sysparm_query": "priority=3^ORpriority=2"})
    assert sorted(r["priority"] for r in ored.json()["result"]) == ["2", "3"]
    bad = sn.get("/api/now/table/incident", params={"sysparm_query": "priority~~1"})
    assert bad.status_code == 400 and bad.json()["status"] == "failure"


def test_unknown_tables_and_bad_bodies(sn: httpx.Client) -> None:
    table = sn.get("/api/now/table/not_a_table")
    assert table.status_code == 400
    assert table.json()["error"]["message"] == "Invalid table not_a_table"
    body = sn.post("/api/now/table/incident", content=b"{bad")
    assert body.status_code == 400
    assert body.json()["error"] == {
        "message": "Exception while reading request",
        "detail": "The payload is not valid JSON.",
    }


def test_basic_auth_failures(fakes: FakeSet) -> None:
    base = fakes.servicenow.base_url or ""
    for auth in (None, ("admin", "wrong")):
        response = httpx.get(f"{base}/api/now/table/incident", auth=auth)
        assert response.status_code == 401
        assert response.json() == {
            "error": {
                "message": "User Not Authenticated",
                "detail": "Required to provide Auth information",
            },
            "status": "failure",
        }


def test_oauth_password_grant_refresh_and_expiry(fakes: FakeSet) -> None:
    base = fakes.servicenow.base_url or ""
    granted = httpx.post(
        f"{base}/oauth_token.do",
        data={**CLIENT, "grant_type": "password", "username": "admin",
              "password": "servicenow-password"},
    )  # fmt: skip
    assert granted.status_code == 200
    body = granted.json()
    assert (body["token_type"], body["expires_in"], body["scope"]) == (
        "Bearer",
        1799,
        "useraccount",
    )
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    made = httpx.post(f"{base}/api/now/table/incident", headers=bearer, json={})
    assert made.status_code == 201 and made.json()["result"]["sys_created_by"] == "admin"
    fakes.clock.advance(1800)
    assert httpx.get(f"{base}/api/now/table/incident", headers=bearer).status_code == 401
    refreshed = httpx.post(
        f"{base}/oauth_token.do",
        data={**CLIENT, "grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
    )
    assert refreshed.status_code == 200
    again = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    assert httpx.get(f"{base}/api/now/table/incident", headers=again).status_code == 200
    bad_refresh = httpx.post(
        f"{base}/oauth_token.do",
        data={**CLIENT, "grant_type": "refresh_token", "refresh_token": "nope"},
    )
    assert bad_refresh.status_code == 401
    assert bad_refresh.json() == {"error_description": "access_denied", "error": "server_error"}


def test_oauth_client_credentials_and_refusals(fakes: FakeSet) -> None:
    base = fakes.servicenow.base_url or ""
    granted = httpx.post(
        f"{base}/oauth_token.do", data={**CLIENT, "grant_type": "client_credentials"}
    )
    assert granted.status_code == 200
    assert "refresh_token" not in granted.json()
    wrong_secret = httpx.post(
        f"{base}/oauth_token.do",
        data={
            "client_id": "servicenow-client",
            "client_secret": "x",
            "grant_type": "client_credentials",
        },
    )
    assert wrong_secret.status_code == 401
    wrong_user = httpx.post(
        f"{base}/oauth_token.do",
        data={**CLIENT, "grant_type": "password", "username": "admin", "password": "x"},
    )
    assert wrong_user.status_code == 401
    unknown_grant = httpx.post(f"{base}/oauth_token.do", data={**CLIENT, "grant_type": "magic"})
    assert (unknown_grant.status_code, unknown_grant.json()["error"]) == (
        400,
        "unsupported_grant_type",
    )


def test_approval_updates_the_change_and_adds_an_approver_record(
    fakes: FakeSet, sn: httpx.Client
) -> None:
    change = sn.post("/api/now/table/change_request", json={"short_description": "x"}).json()
    sys_id = change["result"]["sys_id"]
    approved = sn.post("/_fakes/approve", json={"change": "CHG0000001", "notify": False}).json()
    assert approved["changes"] == {
        "approval": {"previous": "not requested", "current": "approved"},
        "state": {"previous": "-5", "current": "-2"},
    }
    record = sn.get(f"/api/now/table/change_request/{sys_id}").json()["result"]
    assert (record["approval"], record["state"]) == ("approved", "-2")
    approvers = sn.get(
        "/api/now/table/sysapproval_approver", params={"sysparm_query": f"sysapproval={sys_id}"}
    ).json()["result"]
    assert [(a["state"], a["approver"]) for a in approvers] == [("approved", "admin")]
    rejected, changes = fakes.servicenow.approve(sys_id, "rejected", approver="cab")
    assert rejected["approval"] == "rejected"
    assert changes == {"approval": {"previous": "approved", "current": "rejected"}}


def test_faults_in_servicenows_format(fakes: FakeSet, sn: httpx.Client) -> None:
    fakes.servicenow.inject(429, retry_after=2, path="/api/now/table/*")
    limited = sn.get("/api/now/table/incident")
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "2")
    assert limited.json()["status"] == "failure"
    fakes.servicenow.inject(500)
    broken = sn.get("/api/now/table/incident")
    assert broken.json() == {
        "error": {"message": "Internal Server Error", "detail": None},
        "status": "failure",
    }
    assert sn.get("/api/now/table/incident").status_code == 200


# -- the encoded query subset -------------------------------------------------------------------
RECORDS = [
    {"number": "INC1", "priority": "1", "short_description": "Checkout down", "state": "1"},
    {"number": "INC2", "priority": "10", "short_description": "VPN slow", "state": "2"},
    {"number": "INC3", "priority": "3", "short_description": "", "state": "1"},
]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["INC1", "INC2", "INC3"]),
        ("state=1", ["INC1", "INC3"]),
        ("state!=1", ["INC2"]),
        ("priority<3", ["INC1"]),  # numbers compare as numbers: 10 > 3
        ("priority>=3", ["INC2", "INC3"]),
        ("short_descriptionLIKEcheckout", ["INC1"]),
        ("short_descriptionNOT LIKEcheckout", ["INC2", "INC3"]),
        ("short_descriptionSTARTSWITHvpn", ["INC2"]),
        ("short_descriptionENDSWITHdown", ["INC1"]),
        ("numberININC1,INC3", ["INC1", "INC3"]),
        ("numberNOT ININC1,INC3", ["INC2"]),
        ("short_descriptionISEMPTY", ["INC3"]),
        ("short_descriptionISNOTEMPTY^state=1", ["INC1"]),
        ("state=2^ORpriority=3", ["INC2", "INC3"]),
        ("state=2^NQpriority=1", ["INC1", "INC2"]),
        ("state=1^ORDERBYDESCpriority", ["INC3", "INC1"]),
        ("ORDERBYpriority", ["INC1", "INC3", "INC2"]),
    ],
)
def test_encoded_queries(query: str, expected: list[str]) -> None:
    parsed = parse_query(query)
    assert [r["number"] for r in parsed.sort([r for r in RECORDS if parsed.matches(r)])] == expected


@pytest.mark.parametrize("query", ["ORstate=1", "state", "Statex=1", "stateISEMPTYx"])
def test_unreadable_encoded_queries(query: str) -> None:
    with pytest.raises(QueryError):
        parse_query(query)
