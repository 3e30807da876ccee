"""The Jira fakes over real HTTP: Cloud (v3 with ADF, v2) and Data Center (v2, PAT), issues,
comments, transitions, searches old and new, links, errors and faults; and the JQL subset."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from ghapplets.fakes.jql import JqlError, parse_jql
from ghapplets.fakes.runner import FakeSet

ADF = {
    "type": "doc",
    "version": 1,
    "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Steps to reproduce"}]}],
}
CLOUD_AUTH = ("dev@example.com", "jira-api-token")


@pytest.fixture
def cloud(fakes: FakeSet) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fakes.jira.base_url or "", auth=CLOUD_AUTH) as client:
        yield client


@pytest.fixture
def dc(fakes: FakeSet) -> Iterator[httpx.Client]:
    headers = {"Authorization": "Bearer jira-dc-pat"}
    with httpx.Client(base_url=fakes.jira_dc.base_url or "", headers=headers) as client:
        yield client


def new_issue(client: httpx.Client, version: str = "3", **fields: object) -> httpx.Response:
    body = {"project": {"key": "PROJ"}, "summary": "Checkout fails", "issuetype": {"name": "Bug"}}
    body.update(fields)
    return client.post(f"/rest/api/{version}/issue", json={"fields": body})


def test_cloud_v3_creates_an_issue_with_an_adf_description(
    fakes: FakeSet, cloud: httpx.Client
) -> None:
    created = new_issue(cloud, description=ADF, labels=["ci"])
    assert created.status_code == 201
    body = created.json()
    assert body["key"] == "PROJ-1"
    assert body["self"] == f"{fakes.jira.base_url}/rest/api/3/issue/{body['id']}"
    v3 = cloud.get("/rest/api/3/issue/PROJ-1").json()
    assert v3["fields"]["description"] == ADF
    assert v3["fields"]["status"]["name"] == "To Do"
    assert v3["fields"]["labels"] == ["ci"]
    assert v3["fields"]["reporter"]["accountId"]
    v2 = cloud.get(f"/rest/api/2/issue/{body['id']}").json()
    assert v2["fields"]["description"] == "Steps to reproduce"
    only = cloud.get("/rest/api/3/issue/PROJ-1", params={"fields": "summary,status"}).json()
    assert set(only["fields"]) == {"summary", "status"}
    assert new_issue(cloud).json()["key"] == "PROJ-2"
    assert fakes.jira.issue("PROJ-1").summary == "Checkout fails"


def test_v3_refuses_a_plain_string_and_v2_an_adf_document(cloud: httpx.Client) -> None:
    plain = new_issue(cloud, description="just text")
    assert plain.status_code == 400
    assert plain.json() == {
        "errorMessages": [],
        "errors": {
            "description": "Operation value must be an Atlassian Document (see the Atlassian "
            "Document Format)"
        },
    }
    broken = new_issue(cloud, description={"type": "doc", "version": 2, "content": []})
    assert broken.status_code == 400
    assert new_issue(cloud, "2", description=ADF).json()["errors"] == {
        "description": "Operation value must be a string"
    }
    assert new_issue(cloud, "2", description="plain").status_code == 201


def test_create_issue_field_errors_come_together(cloud: httpx.Client) -> None:
    response = cloud.post(
        "/rest/api/3/issue",
        json={"fields": {"project": {"key": "NOPE"}, "colour": "red", "labels": ["two words"]}},
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "project": "Specify a valid project ID or key",
        "issuetype": "Specify an issue type",
        "summary": "You must specify a summary of the issue.",
        "labels": "The label 'two words' contains spaces which is invalid.",
        "colour": "Field 'colour' cannot be set. It is not on the appropriate screen, or unknown.",
    }
    wrong_type = new_issue(cloud, issuetype={"name": "Incident"})
    assert wrong_type.json()["errors"] == {"issuetype": "The issue type selected is invalid."}
    garbage = cloud.post("/rest/api/3/issue", content=b"not json")
    assert garbage.status_code == 400
    assert garbage.json()["errorMessages"] == [
        "Invalid request payload. Refer to the REST API documentation and try again."
    ]


def test_comments_are_adf_on_v3_and_text_on_v2(fakes: FakeSet, cloud: httpx.Client) -> None:
    new_issue(cloud)
    added = cloud.post("/rest/api/3/issue/PROJ-1/comment", json={"body": ADF})
    assert added.status_code == 201
    assert added.json()["body"] == ADF and added.json()["author"]["displayName"] == "Dev User"
    refused = cloud.post("/rest/api/3/issue/PROJ-1/comment", json={"body": "text"})
    assert refused.status_code == 400
    assert cloud.post("/rest/api/2/issue/PROJ-1/comment", json={"body": "text"}).status_code == 201
    listed = cloud.get("/rest/api/2/issue/PROJ-1/comment").json()
    assert [c["body"] for c in listed["comments"]] == ["Steps to reproduce", "text"]
    missing = cloud.post("/rest/api/3/issue/PROJ-9/comment", json={"body": ADF})
    assert missing.status_code == 404
    assert missing.json()["errorMessages"] == [
        "Issue does not exist or you do not have permission to see it."
    ]
    assert len(fakes.jira.issue("PROJ-1").comments) == 2


def test_transitions_follow_the_workflow(fakes: FakeSet, cloud: httpx.Client) -> None:
    new_issue(cloud)
    listed = cloud.get("/rest/api/3/issue/PROJ-1/transitions").json()
    assert listed["expand"] == "transitions"
    assert [(t["id"], t["to"]["name"]) for t in listed["transitions"]] == [
        ("21", "In Progress"),
        ("31", "Done"),
    ]
    moved = cloud.post(
        "/rest/api/3/issue/PROJ-1/transitions",
        json={"transition": {"id": "31"}, "update": {"comment": [{"add": {"body": ADF}}]}},
    )
    assert (moved.status_code, moved.content) == (204, b"")
    issue = cloud.get("/rest/api/3/issue/PROJ-1").json()
    assert issue["fields"]["status"]["name"] == "Done"
    assert issue["fields"]["status"]["statusCategory"]["key"] == "done"
    assert issue["fields"]["comment"]["total"] == 1
    again = cloud.post("/rest/api/3/issue/PROJ-1/transitions", json={"transition": {"id": "31"}})
    assert again.status_code == 400
    assert again.json()["errorMessages"] == ["Transition id '31' is not valid for this issue."]
    assert fakes.jira.issue("PROJ-1").changelog[0]["items"][0]["toString"] == "Done"


def test_search_old_and_new(cloud: httpx.Client) -> None:
    for summary in ("first", "second", "third"):
        new_issue(cloud, summary=summary)
    cloud.post("/rest/api/3/issue/PROJ-2/transitions", json={"transition": {"id": "21"}})
    old = cloud.post(
        "/rest/api/3/search",
        json={"jql": "project = PROJ AND status != 'In Progress'", "maxResults": 1, "startAt": 1},
    ).json()
    assert (old["total"], old["startAt"], old["maxResults"]) == (2, 1, 1)
    assert [i["key"] for i in old["issues"]] == ["PROJ-3"]
    got = cloud.get(
        "/rest/api/2/search", params={"jql": "key in (PROJ-1, PROJ-3) ORDER BY key DESC"}
    )
    assert [i["key"] for i in got.json()["issues"]] == ["PROJ-3", "PROJ-1"]

    page = cloud.post("/rest/api/3/search/jql", json={"jql": "project = PROJ", "maxResults": 2})
    body = page.json()
    assert body["issues"] == [{"id": "10001"}, {"id": "10002"}]  # ids only unless fields asked
    assert body["isLast"] is False
    rest = cloud.get(
        "/rest/api/3/search/jql",
        params={
            "jql": "project = PROJ",
            "nextPageToken": body["nextPageToken"],
            "fields": "summary",
        },
    ).json()
    assert [i["fields"]["summary"] for i in rest["issues"]] == ["third"]
    assert rest["isLast"] is True and "nextPageToken" not in rest
    unbounded = cloud.post("/rest/api/3/search/jql", json={"jql": "ORDER BY key"})
    assert unbounded.status_code == 400
    assert "Unbounded JQL queries" in unbounded.json()["errorMessages"][0]
    old_style = cloud.post("/rest/api/3/search/jql", json={"jql": "project = PROJ", "startAt": 0})
    assert old_style.status_code == 400  # startAt is not a property of the new search


def test_search_errors_like_jira(cloud: httpx.Client) -> None:
    new_issue(cloud)
    cases = {
        "project = NOPE": "The value 'NOPE' does not exist for the field 'project'.",
        "key = PROJ-99": "An issue with key 'PROJ-99' does not exist for field 'key'.",
        "colour = red": "Field 'colour' does not exist or you do not have permission to view it.",
        "project = PROJ OR key = PROJ-1": (
            "Error in the JQL Query: OR is not supported by the Jira fake."
        ),
    }
    for jql, message in cases.items():
        response = cloud.get("/rest/api/3/search", params={"jql": jql})
        assert (response.status_code, response.json()["errorMessages"]) == (400, [message]), jql


def test_issue_links(fakes: FakeSet, cloud: httpx.Client) -> None:
    new_issue(cloud)
    new_issue(cloud)
    linked = cloud.post(
        "/rest/api/3/issueLink",
        json={"type": {"name": "Blocks"}, "inwardIssue": {"key": "PROJ-1"},
              "outwardIssue": {"key": "PROJ-2"}},
    )  # fmt: skip
    assert (linked.status_code, linked.content) == (201, b"")
    links = cloud.get("/rest/api/3/issue/PROJ-1").json()["fields"]["issuelinks"]
    assert links[0]["type"]["name"] == "Blocks"
    assert links[0]["outwardIssue"]["key"] == "PROJ-2"
    other = cloud.get("/rest/api/3/issue/PROJ-2").json()["fields"]["issuelinks"]
    assert other[0]["inwardIssue"]["key"] == "PROJ-1"
    bad_type = cloud.post(
        "/rest/api/3/issueLink",
        json={"type": {"name": "Causes"}, "inwardIssue": {"key": "PROJ-1"},
              "outwardIssue": {"key": "PROJ-2"}},
    )  # fmt: skip
    assert bad_type.status_code == 404
    assert bad_type.json()["errorMessages"] == ["No issue link type with name 'Causes' found."]
    assert fakes.jira.snapshot()["links"] == [
        {"type": "Blocks", "inward": "PROJ-1", "outward": "PROJ-2"}
    ]


def test_cloud_authentication(fakes: FakeSet) -> None:
    base = fakes.jira.base_url or ""
    for auth in (None, ("dev@example.com", "wrong"), ("other@example.com", "jira-api-token")):
        response = httpx.get(f"{base}/rest/api/3/myself", auth=auth)
        assert response.status_code == 401
        assert response.json()["errorMessages"] == [
            "Client must be authenticated to access this resource."
        ]
    bearer = httpx.get(
        f"{base}/rest/api/3/myself", headers={"Authorization": "Bearer jira-api-token"}
    )
    assert bearer.status_code == 401  # Cloud takes basic auth with the API token
    me = httpx.get(f"{base}/rest/api/3/myself", auth=CLOUD_AUTH).json()
    assert me["emailAddress"] == "dev@example.com"
    recorded = fakes.jira.requests(path="/rest/api/3/myself")[-1]
    assert recorded.header(
        "authorization",
    ).startswith("Basic ")  # credentials are recorded


def test_data_center_is_v2_with_a_pat_or_password(fakes: FakeSet, dc: httpx.Client) -> None:
    created = new_issue(dc, "2", description="plain text")
    assert created.status_code == 201
    issue = dc.get("/rest/api/2/issue/PROJ-1").json()
    assert issue["fields"]["description"] == "plain text"
    assert issue["fields"]["reporter"]["name"] == "dev"
    assert "accountId" not in issue["fields"]["reporter"]
    assert dc.get("/rest/api/latest/issue/PROJ-1").status_code == 200
    assert dc.get("/rest/api/3/issue/PROJ-1").status_code == 404  # no v3 on Data Center
    assert dc.get("/rest/api/2/search/jql", params={"jql": "project = PROJ"}).status_code == 404
    base = fakes.jira_dc.base_url or ""
    by_password = httpx.get(f"{base}/rest/api/2/myself", auth=("dev", "dev-password"))
    assert by_password.json()["name"] == "dev"
    refused = httpx.get(f"{base}/rest/api/2/myself", headers={"Authorization": "Bearer nope"})
    assert refused.status_code == 401
    assert refused.json()["errorMessages"] == [
        "You are not authenticated. Authentication required to perform this operation."
    ]


def test_faults_in_jiras_format(fakes: FakeSet, cloud: httpx.Client) -> None:
    fakes.jira.inject(429, retry_after=30, method="POST")
    limited = new_issue(cloud)
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "30")
    assert limited.json() == {"errorMessages": ["Rate limit exceeded."], "errors": {}}
    assert new_issue(cloud).json()["key"] == "PROJ-1"  # the fault hit nothing
    fakes.jira.inject(503, times=None, path="/rest/api/3/search*")
    for _ in range(3):
        assert cloud.get("/rest/api/3/search", params={"jql": "project = PROJ"}).status_code == 503
    fakes.jira.clear_faults()
    assert cloud.get("/rest/api/3/search", params={"jql": "project = PROJ"}).status_code == 200


# -- the JQL subset ---------------------------------------------------------------------------
def test_jql_parses_the_documented_subset() -> None:
    query = parse_jql(
        'project = PROJ and status != Done AND labels in (ci, "needs review") '
        "AND summary ~ 'check out' AND labels is not EMPTY ORDER BY created DESC, key"
    )
    assert [(c.field, c.op, c.values) for c in query.clauses] == [
        ("project", "=", ("PROJ",)),
        ("status", "!=", ("Done",)),
        ("labels", "in", ("ci", "needs review")),
        ("summary", "~", ("check out",)),
        ("labels", "not empty", ()),
    ]
    assert query.order == (("created", True), ("key", False))
    values = {"project": ["PROJ"], "status": ["To Do"], "labels": ["needs review"],
              "summary": ["Check out fails"]}  # fmt: skip
    assert query.matches(lambda f: values.get(f, []))
    assert not query.matches(lambda f: {**values, "status": ["done"]}.get(f, []))


@pytest.mark.parametrize(
    "jql",
    ["project = ", "project PROJ", "(project = A)", "NOT project = A", "key in (A, B",
     "status = currentUser()", "project = A ORDER BY colour", "summary = a % b",
     "project ~ A"],
)  # fmt: skip
def test_jql_outside_the_subset_is_an_error(jql: str) -> None:
    with pytest.raises(JqlError):
        parse_jql(jql)
