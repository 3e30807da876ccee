"""The Jira connector and the ``jira.*`` actions against the Cloud and Data Center fakes, over
real HTTP."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from ghapplets.connectors.catalog import lookup
from ghapplets.connectors.config import JiraConnector, JiraFlavor
from ghapplets.connectors.jira import jira_message, pick_transition, text_to_adf
from ghapplets.connectors.registry import Connectors
from ghapplets.exceptions import ActionFailed, ActionInputInvalid, ActionUnavailable
from ghapplets.fakes.config import JiraConfig
from ghapplets.secrets.refs import Lookup
from ghapplets.secrets.scopes import Reader

CLOUD_USER = JiraConfig().users[0]
DC_USER = JiraConfig(flavor="datacenter").users[0]
assert CLOUD_USER.email and CLOUD_USER.api_token and DC_USER.token
FLAVORS = ["cloud", "datacenter"]


def no_secrets(reader: Reader) -> Lookup:
    async def lookup(name: str) -> str:
        raise AssertionError(f"no secret should be read, {reader} read {name}")

    return lookup


def fake_of(fakes: Any, flavor: str) -> Any:
    return fakes.jira if flavor == "cloud" else fakes.jira_dc


def config_of(fakes: Any, flavor: str, token: str | None = None) -> JiraConnector:
    if flavor == "cloud":
        return JiraConnector(
            kind="jira",
            flavor=JiraFlavor.CLOUD,
            base_url=fakes.jira.base_url,
            email=CLOUD_USER.email,
            token=token or CLOUD_USER.api_token,
        )
    return JiraConnector(
        kind="jira",
        flavor=JiraFlavor.DATACENTER,
        base_url=fakes.jira_dc.base_url,
        token=token or DC_USER.token,
    )


async def opened(fakes: Any, flavor: str, token: str | None = None) -> Connectors:
    return await Connectors.open({"jira": config_of(fakes, flavor, token)}, no_secrets)


@pytest.fixture(params=FLAVORS)
def flavor(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def connectors(ghapplets_fakes: Any, flavor: str) -> AsyncIterator[Connectors]:
    opened_ = await opened(ghapplets_fakes, flavor)
    yield opened_
    await opened_.aclose()


@pytest.fixture
def fake(ghapplets_fakes: Any, flavor: str) -> Any:
    return fake_of(ghapplets_fakes, flavor)


def assert_authenticated(request: Any, flavor: str) -> None:
    auth = request.header("authorization")
    if flavor == "cloud":
        expected = base64.b64encode(f"{CLOUD_USER.email}:{CLOUD_USER.api_token}".encode())
        assert auth == f"Basic {expected.decode()}"
    else:
        assert auth == f"Bearer {DC_USER.token}"


# -- ADF and error messages (no HTTP) --------------------------------------------------------------
def test_text_becomes_adf_paragraphs_with_hard_breaks() -> None:
    doc = text_to_adf("First line\nsecond line\n\n\n  \nSecond paragraph\r\n")
    assert doc == {
        "type": "doc",
        "version": 1,
        "content": [
            {
                "type": "paragraph",
                "content": [
                    {"type": "text", "text": "First line"},
                    {"type": "hardBreak"},
                    {"type": "text", "text": "second line"},
                ],
            },
            {"type": "paragraph", "content": [{"type": "text", "text": "Second paragraph"}]},
        ],
    }
    assert text_to_adf("") == {"type": "doc", "version": 1, "content": []}


def test_jira_errors_read_as_one_line() -> None:
    body = {"errorMessages": ["Bad thing."], "errors": {"summary": "Field 'summary' is required"}}
    response = httpx.Response(400, json=body)
    assert jira_message(response) == "Bad thing.; summary: Field 'summary' is required"
    assert jira_message(httpx.Response(400, json={"message": "other"})) == "other"
    assert jira_message(httpx.Response(502, text="<html>Bad gateway</html>")) == (
        "<html>Bad gateway</html>"
    )


# -- the actions -----------------------------------------------------------------------------------
async def test_create_issue(connectors: Connectors, fake: Any, flavor: str) -> None:
    out = await connectors.act(
        "jira.create_issue",
        {
            "project": "PROJ",
            "issue_type": "Bug",
            "summary": "Deploy failed",
            "description": "Job j-1 failed.\nSee the logs.\n\nRetry later.",
            "fields": {"labels": ["ci", "deploy"], "priority": {"name": "High"}},
        },
    )
    assert out["key"] == "PROJ-1" and out["id"] == "10001"
    assert out["self"].endswith(f"/rest/api/{'3' if flavor == 'cloud' else '2'}/issue/10001")
    [request] = fake.requests()
    assert (request.method, request.path) == (
        "POST",
        f"/rest/api/{'3' if flavor == 'cloud' else '2'}/issue",
    )
    assert_authenticated(request, flavor)
    sent = request.json()["fields"]
    assert sent["project"] == {"key": "PROJ"} and sent["issuetype"] == {"name": "Bug"}
    assert sent["labels"] == ["ci", "deploy"] and sent["priority"] == {"name": "High"}
    if flavor == "cloud":
        assert sent["description"] == {
            "type": "doc",
            "version": 1,
            "content": [
                {
                    "type": "paragraph",
                    "content": [
                        {"type": "text", "text": "Job j-1 failed."},
                        {"type": "hardBreak"},
                        {"type": "text", "text": "See the logs."},
                    ],
                },
                {"type": "paragraph", "content": [{"type": "text", "text": "Retry later."}]},
            ],
        }
    else:
        assert sent["description"] == "Job j-1 failed.\nSee the logs.\n\nRetry later."
    issue = fake.issue("PROJ-1")
    assert (issue.summary, issue.issuetype, issue.labels, issue.priority) == (
        "Deploy failed",
        "Bug",
        ["ci", "deploy"],
        "High",
    )
    assert issue.description.render("2") == (
        "Job j-1 failed.\nSee the logs.\nRetry later."
        if flavor == "cloud"
        else "Job j-1 failed.\nSee the logs.\n\nRetry later."
    )


async def test_an_adf_description_passes_unchanged(ghapplets_fakes: Any) -> None:
    doc = {
        "type": "doc",
        "version": 1,
        "content": [{"type": "heading", "attrs": {"level": 2}, "content": [
            {"type": "text", "text": "Title", "marks": [{"type": "strong"}]}
        ]}],
    }  # fmt: skip
    connectors = await opened(ghapplets_fakes, "cloud")
    try:
        await connectors.act(
            "jira.create_issue",
            {"project": "PROJ", "issue_type": "Task", "summary": "s", "description": doc},
        )
    finally:
        await connectors.aclose()
    [request] = ghapplets_fakes.jira.requests()
    assert request.json()["fields"]["description"] == doc
    assert ghapplets_fakes.jira.issue("PROJ-1").description.adf == doc


async def test_jira_field_errors_are_permanent_with_jiras_words(
    connectors: Connectors, fake: Any
) -> None:
    with pytest.raises(ActionFailed) as failed:
        await connectors.act(
            "jira.create_issue",
            {"project": "NOPE", "issue_type": "Bug", "summary": "s", "fields": {"x_y": 1}},
        )
    assert failed.value.status == 400 and not failed.value.retryable
    message = str(failed.value)
    assert message.startswith("Jira answered 400 to POST /rest/api/")
    assert "project: Specify a valid project ID or key" in message
    assert "x_y: Field 'x_y' cannot be set." in message
    assert fake.issues == {}


async def test_add_comment(connectors: Connectors, fake: Any, flavor: str) -> None:
    fake.add_issue("PROJ", "Existing")
    out = await connectors.act(
        "jira.add_comment", {"issue": "PROJ-1", "body": "Deployed to staging.\nAll green."}
    )
    [request] = fake.requests()
    v = "3" if flavor == "cloud" else "2"
    assert (request.method, request.path) == ("POST", f"/rest/api/{v}/issue/PROJ-1/comment")
    assert_authenticated(request, flavor)
    if flavor == "cloud":
        assert request.json()["body"] == text_to_adf("Deployed to staging.\nAll green.")
        assert out["body"]["type"] == "doc"
    else:
        assert request.json()["body"] == "Deployed to staging.\nAll green."
        assert out["body"] == "Deployed to staging.\nAll green."
    [comment] = fake.issue("PROJ-1").comments
    assert comment.body.render("2") == "Deployed to staging.\nAll green."
    assert out["id"] == comment.id


async def test_an_unknown_issue_is_jiras_404(connectors: Connectors) -> None:
    with pytest.raises(ActionFailed, match=r"404 .*Issue does not exist") as failed:
        await connectors.act("jira.add_comment", {"issue": "PROJ-99", "body": "x"})
    assert failed.value.status == 404


@pytest.mark.parametrize(
    ("transition", "expected"),
    [("done", ("31", "Done")), ("IN PROGRESS", ("21", "In Progress")), ("31", ("31", "Done"))],
)
async def test_transition_by_name_or_id(
    connectors: Connectors, fake: Any, flavor: str, transition: str, expected: tuple[str, str]
) -> None:
    fake.add_issue("PROJ", "Move me")
    out = await connectors.act(
        "jira.transition_issue", {"issue": "PROJ-1", "transition": transition}
    )
    assert out == {"issue": "PROJ-1", "transition": {"id": expected[0], "name": expected[1]}}
    listed, moved = fake.requests()
    v = "3" if flavor == "cloud" else "2"
    assert (listed.method, listed.path) == ("GET", f"/rest/api/{v}/issue/PROJ-1/transitions")
    assert (moved.method, moved.path) == ("POST", f"/rest/api/{v}/issue/PROJ-1/transitions")
    assert moved.json() == {"transition": {"id": expected[0]}}
    assert_authenticated(moved, flavor)
    assert fake.issue("PROJ-1").status.name == expected[1]


async def test_transition_by_issue_id_and_target_status(ghapplets_fakes: Any) -> None:
    """A transition named unlike its target status is found by either; ids work as issues."""
    fake = ghapplets_fakes.jira
    issue = fake.add_issue("PROJ", "Move me")
    available = [
        {"id": "41", "name": "Start work", "to": {"name": "In Progress"}},
        {"id": "51", "name": "Close", "to": {"name": "Done"}},
    ]
    assert pick_transition(available, "in progress") == available[0]
    assert pick_transition(available, "CLOSE") == available[1]
    assert pick_transition(available, "51") == available[1]
    assert pick_transition(available, "Open") is None
    connectors = await opened(ghapplets_fakes, "cloud")
    try:
        out = await connectors.act(
            "jira.transition_issue", {"issue": issue.id, "transition": "Done"}
        )
    finally:
        await connectors.aclose()
    assert out["transition"] == {"id": "31", "name": "Done"}
    assert fake.requests()[-1].path == f"/rest/api/3/issue/{issue.id}/transitions"
    assert fake.issue("PROJ-1").status.name == "Done"


async def test_an_unknown_transition_names_the_available_ones(
    connectors: Connectors, fake: Any
) -> None:
    fake.add_issue("PROJ", "Stay")
    with pytest.raises(ActionFailed, match="no transition 'Shipped'") as failed:
        await connectors.act("jira.transition_issue", {"issue": "PROJ-1", "transition": "Shipped"})
    assert failed.value.status == 400 and not failed.value.retryable
    assert "'In Progress' (id 21" in str(failed.value) and "'Done' (id 31" in str(failed.value)
    # the current status (To Do) is not a transition Jira offers
    with pytest.raises(ActionFailed, match="no transition 'To Do'"):
        await connectors.act("jira.transition_issue", {"issue": "PROJ-1", "transition": "To Do"})
    assert [r.method for r in fake.requests()] == ["GET", "GET"]  # nothing was posted
    assert fake.issue("PROJ-1").status.name == "To Do"


async def test_search(connectors: Connectors, fake: Any, flavor: str) -> None:
    fake.add_issue("PROJ", "Deploy failed", labels=["ci"])
    fake.add_issue("PROJ", "Unrelated")
    fake.add_issue("PROJ", "Deploy again", labels=["ci"])
    out = await connectors.act(
        "jira.search", {"jql": "project = PROJ AND labels = ci ORDER BY key DESC", "max_results": 5}
    )
    [request] = fake.requests()
    assert request.method == "POST"
    assert_authenticated(request, flavor)
    if flavor == "cloud":
        assert request.path == "/rest/api/3/search/jql"
        assert request.json() == {
            "jql": "project = PROJ AND labels = ci ORDER BY key DESC",
            "fields": ["summary", "status"],
            "maxResults": 5,
        }
        assert out["isLast"] is True
    else:
        assert request.path == "/rest/api/2/search"
        assert request.json() == {
            "jql": "project = PROJ AND labels = ci ORDER BY key DESC",
            "maxResults": 5,
        }
        assert (out["total"], out["maxResults"]) == (2, 5)
    assert [i["key"] for i in out["issues"]] == ["PROJ-3", "PROJ-1"]
    assert out["issues"][0]["fields"]["summary"] == "Deploy again"
    assert out["issues"][0]["fields"]["status"]["name"] == "To Do"


async def test_search_with_fields(connectors: Connectors, fake: Any) -> None:
    fake.add_issue("PROJ", "One", labels=["a"])
    out = await connectors.act("jira.search", {"jql": "project = PROJ", "fields": ["labels"]})
    assert fake.requests()[0].json()["fields"] == ["labels"]
    assert out["issues"][0]["fields"] == {"labels": ["a"]}


async def test_bad_jql_is_jiras_400(connectors: Connectors) -> None:
    with pytest.raises(ActionFailed) as failed:
        await connectors.act("jira.search", {"jql": "project = NOPE"})
    assert failed.value.status == 400
    assert "The value 'NOPE' does not exist for the field 'project'." in str(failed.value)


async def test_link_issues(connectors: Connectors, fake: Any, flavor: str) -> None:
    blocker = fake.add_issue("PROJ", "Blocker")
    fake.add_issue("PROJ", "Blocked")
    out = await connectors.act(
        "jira.link_issues",
        {"type": "Blocks", "inward": "PROJ-2", "outward": blocker.id, "comment": "Linked by CI"},
    )
    assert out == {"linked": True}
    [request] = fake.requests()
    v = "3" if flavor == "cloud" else "2"
    assert (request.method, request.path) == ("POST", f"/rest/api/{v}/issueLink")
    assert_authenticated(request, flavor)
    body = request.json()
    assert body["type"] == {"name": "Blocks"}
    assert body["inwardIssue"] == {"key": "PROJ-2"}
    assert body["outwardIssue"] == {"id": blocker.id}
    assert body["comment"]["body"] == (
        text_to_adf("Linked by CI") if flavor == "cloud" else "Linked by CI"
    )
    [link] = fake.links
    assert (link.type.name, link.inward, link.outward) == ("Blocks", "PROJ-2", "PROJ-1")


async def test_an_unknown_link_type_is_jiras_404(connectors: Connectors, fake: Any) -> None:
    fake.add_issue("PROJ", "a")
    fake.add_issue("PROJ", "b")
    with pytest.raises(ActionFailed, match="No issue link type with name 'Causes'"):
        await connectors.act(
            "jira.link_issues", {"type": "Causes", "inward": "PROJ-1", "outward": "PROJ-2"}
        )
    assert fake.links == []


# -- refusals and retries --------------------------------------------------------------------------
async def test_a_wrong_token_is_a_permanent_401_without_the_token(
    ghapplets_fakes: Any, flavor: str
) -> None:
    token = "wrong-token-s3cr3t"
    wrong = await opened(ghapplets_fakes, flavor, token=token)
    try:
        with pytest.raises(ActionFailed) as failed:
            await wrong.act(
                "jira.create_issue", {"project": "PROJ", "issue_type": "Bug", "summary": "s"}
            )
    finally:
        await wrong.aclose()
    assert failed.value.status == 401 and not failed.value.retryable
    expected = (
        "Client must be authenticated to access this resource."
        if flavor == "cloud"
        else "You are not authenticated. Authentication required to perform this operation."
    )
    v = "3" if flavor == "cloud" else "2"
    assert str(failed.value) == f"Jira answered 401 to POST /rest/api/{v}/issue: {expected}"
    assert token not in str(failed.value) and token not in repr(failed.value.args)
    assert fake_of(ghapplets_fakes, flavor).issues == {}


async def test_rate_limit_is_retryable_after_retry_after(connectors: Connectors, fake: Any) -> None:
    fake.add_issue("PROJ", "x")
    fake.inject(429, retry_after=13)
    with pytest.raises(ActionUnavailable, match=r"429 .*Rate limit exceeded") as limited:
        await connectors.act("jira.add_comment", {"issue": "PROJ-1", "body": "hi"})
    assert limited.value.retryable and limited.value.status == 429
    assert limited.value.retry_after == 13.0
    assert fake.issue("PROJ-1").comments == []


async def test_a_5xx_is_retryable_then_the_retry_succeeds(
    connectors: Connectors, fake: Any
) -> None:
    fake.add_issue("PROJ", "x")
    fake.inject(503, path="*/transitions", method="POST")
    data = {"issue": "PROJ-1", "transition": "Done"}
    with pytest.raises(ActionUnavailable, match="503 to POST") as unavailable:
        await connectors.act("jira.transition_issue", data)
    assert unavailable.value.retryable and unavailable.value.retry_after is None
    assert fake.issue("PROJ-1").status.name == "To Do"
    out = await connectors.act("jira.transition_issue", data)
    assert out["transition"] == {"id": "31", "name": "Done"}
    assert fake.issue("PROJ-1").status.name == "Done"
    assert [r.status for r in fake.requests(method="POST")] == [503, 204]


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("jira.create_issue", {"project": "PROJ", "issue_type": "Bug"}, "'summary' is a required"),
        ("jira.create_issue", {"project": "PROJ", "issue_type": "Bug", "summary": ""}, "summary"),
        (
            "jira.create_issue",
            {"project": "P", "issue_type": "Bug", "summary": "s", "description": {"type": "p"}},
            "description",
        ),
        ("jira.add_comment", {"issue": "PROJ-1/../../myself", "body": "x"}, "issue"),
        ("jira.add_comment", {"issue": "proj-1", "body": "x"}, "issue"),
        ("jira.add_comment", {"issue": "PROJ-1?x=1", "body": "x"}, "issue"),
        ("jira.add_comment", {"issue": "PROJ-1\n", "body": "x"}, "not an issue key"),
        ("jira.add_comment", {"issue": "PROJ-1", "body": ""}, "body"),
        ("jira.transition_issue", {"issue": "PROJ-1"}, "'transition' is a required"),
        ("jira.transition_issue", {"issue": "10001\n", "transition": "Done"}, "not an issue"),
        ("jira.search", {"jql": "project = PROJ", "max_results": 0}, "max_results"),
        ("jira.search", {"jql": "project = PROJ", "startAt": 5}, "startAt"),
        ("jira.link_issues", {"type": "Blocks", "inward": "PROJ-1"}, "'outward' is a required"),
        (
            "jira.link_issues",
            {"type": "Blocks", "inward": "PROJ-1", "outward": "PROJ-2\n"},
            "not an issue",
        ),
    ],
)
async def test_bad_input_is_refused_before_any_request(
    connectors: Connectors, fake: Any, name: str, data: dict[str, Any], problem: str
) -> None:
    fake.add_issue("PROJ", "x")
    fake.add_issue("PROJ", "y")
    with pytest.raises(ActionInputInvalid, match=problem):
        await connectors.act(name, data)
    assert fake.requests() == []


def test_the_catalog_lists_the_jira_actions() -> None:
    for name in (
        "jira.create_issue",
        "jira.add_comment",
        "jira.transition_issue",
        "jira.search",
        "jira.link_issues",
    ):
        found = lookup(name)
        assert found.kind == "jira" and found.schema["required"] and found.output
