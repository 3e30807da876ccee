"""The Jira connector (Cloud and Data Center) and the ``jira.*`` actions.

Jira Cloud speaks REST v3 with basic auth (``email:api_token``) and takes rich text (an
issue's ``description``, a comment's ``body``) only as an Atlassian Document Format (ADF)
document; Data Center speaks REST v2 with a personal access token (``Authorization: Bearer``)
and takes rich text as a string. An action's text may be a plain string on either: on Cloud it
becomes ADF (:func:`text_to_adf`, one paragraph per blank-line-separated block, single newlines
as ``hardBreak``); a dict that is already ADF is sent unchanged (on Data Center too, where
Jira refuses it). Errors are ``{"errorMessages": [...], "errors": {field: message}}``, told
as one line (:func:`jira_message`).

Issue keys and ids reach URL paths only after the input schema (:data:`ISSUE_REF`) and
:func:`issue_path` have checked them, so an input cannot change the path.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from ghapplets.connectors.catalog import action
from ghapplets.connectors.config import ConnectorKind, JiraConnector, JiraFlavor
from ghapplets.connectors.http import MAX_MESSAGE, VendorApi, json_message
from ghapplets.exceptions import ActionFailed, ActionInputInvalid

ISSUE_PATTERN = r"^(?:[A-Z][A-Z0-9_]+-[0-9]+|[0-9]+)$"
_ISSUE = re.compile(r"(?:[A-Z][A-Z0-9_]+-[0-9]+|[0-9]+)")
ISSUE_REF = {
    "type": "string",
    "pattern": ISSUE_PATTERN,
    "maxLength": 255,
    "description": "an issue key (PROJ-123) or numeric id",
}
ADF_DOC = {
    "type": "object",
    "description": "an Atlassian Document Format document",
    "properties": {
        "type": {"const": "doc"},
        "version": {"const": 1},
        "content": {"type": "array"},
    },
    "required": ["type", "version", "content"],
}
RICH_TEXT = {
    "description": "plain text (ADF on Jira Cloud) or an ADF document (Cloud only)",
    "anyOf": [{"type": "string"}, ADF_DOC],
}
_BLANK_LINE = re.compile(r"\n[ \t]*\n")


def jira_message(response: httpx.Response) -> str:
    """Jira's error body as one line: the ``errorMessages``, then ``field: message`` for each
    of ``errors``, joined with ``"; "``; other bodies as :func:`json_message` reads them."""
    try:
        doc = response.json()
    except ValueError:
        return json_message(response)
    if not isinstance(doc, dict) or not ({"errorMessages", "errors"} & doc.keys()):
        return json_message(response)
    parts = [str(m) for m in doc.get("errorMessages") or [] if m]
    errors = doc.get("errors")
    if isinstance(errors, dict):
        parts += [f"{field}: {message}" for field, message in errors.items()]
    return "; ".join(parts)[:MAX_MESSAGE] or response.reason_phrase


def text_to_adf(text: str) -> dict[str, Any]:
    """``text`` as an ADF document: a paragraph per block of lines (blocks are separated by
    blank lines), the lines of a block joined by ``hardBreak`` nodes."""
    paragraphs = []
    for block in _BLANK_LINE.split(text.replace("\r\n", "\n").replace("\r", "\n")):
        block = block.strip("\n")
        if not block.strip():
            continue
        content: list[dict[str, Any]] = []
        for line in block.split("\n"):
            if content:
                content.append({"type": "hardBreak"})
            if line:
                content.append({"type": "text", "text": line})
        paragraphs.append({"type": "paragraph", "content": content})
    return {"type": "doc", "version": 1, "content": paragraphs}


def issue_path(ref: str) -> str:
    """``ref`` for a URL path: the schema's pattern, checked again without letting ``$`` pass
    a trailing newline."""
    if not _ISSUE.fullmatch(ref):
        raise ActionInputInvalid(f"{ref!r} is not an issue key (PROJ-123) or numeric id")
    return ref


class Jira:
    """An open Jira connector."""

    kind = ConnectorKind.JIRA

    def __init__(self, name: str, config: JiraConnector) -> None:
        self.name = name
        self.config = config
        self.cloud = config.flavor is JiraFlavor.CLOUD
        headers = {"Accept": "application/json"}
        auth: httpx.Auth | None = None
        if self.cloud:
            assert config.email is not None  # the model requires it on Cloud
            auth = httpx.BasicAuth(config.email, config.token)
        else:
            headers["Authorization"] = f"Bearer {config.token}"
        self.api = VendorApi(
            "Jira",
            config.base_url,
            timeout=config.timeout,
            headers=headers,
            auth=auth,
            message_of=jira_message,
        )

    def path(self, rest: str) -> str:
        """``/rest/api/{3 or 2}/`` + ``rest``."""
        return f"/rest/api/{self.config.api_version}/{rest}"

    def rich(self, value: str | dict[str, Any]) -> Any:
        """Rich text as this flavor takes it: ADF on Cloud (a string converted), else as is."""
        if self.cloud and isinstance(value, str):
            return text_to_adf(value)
        return value

    async def create_issue(self, data: dict[str, Any]) -> Any:
        fields: dict[str, Any] = dict(data.get("fields") or {})
        fields.update(
            project={"key": data["project"]},
            issuetype={"name": data["issue_type"]},
            summary=data["summary"],
        )
        if data.get("description") is not None:
            fields["description"] = self.rich(data["description"])
        return await self.api.json("POST", self.path("issue"), json={"fields": fields})

    async def add_comment(self, issue: str, body: str | dict[str, Any]) -> Any:
        path = self.path(f"issue/{issue_path(issue)}/comment")
        return await self.api.json("POST", path, json={"body": self.rich(body)})

    async def transition(self, issue: str, transition: str) -> dict[str, Any]:
        path = self.path(f"issue/{issue_path(issue)}/transitions")
        listed = await self.api.json("GET", path)
        available = [t for t in (listed or {}).get("transitions") or [] if isinstance(t, dict)]
        chosen = pick_transition(available, transition)
        if chosen is None:
            names = ", ".join(
                f"{t.get('name')!r} (id {t.get('id')}, to {(t.get('to') or {}).get('name')!r})"
                for t in available
            )
            raise ActionFailed(
                f"Jira issue {issue} has no transition {transition!r}; available: "
                + (names or "none"),
                status=400,
            )
        await self.api.request("POST", path, json={"transition": {"id": str(chosen["id"])}})
        return {"issue": issue, "transition": {"id": str(chosen["id"]), "name": chosen.get("name")}}

    async def search(self, data: dict[str, Any]) -> Any:
        body: dict[str, Any] = {"jql": data["jql"]}
        if self.cloud:
            body["fields"] = data.get("fields") or ["summary", "status"]
            path = self.path("search/jql")
        else:
            if data.get("fields"):
                body["fields"] = data["fields"]
            path = self.path("search")
        if data.get("max_results") is not None:
            body["maxResults"] = data["max_results"]
        return await self.api.json("POST", path, json=body)

    async def link(self, data: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": {"name": data["type"]},
            "inwardIssue": issue_ref(data["inward"]),
            "outwardIssue": issue_ref(data["outward"]),
        }
        if data.get("comment") is not None:
            body["comment"] = {"body": self.rich(data["comment"])}
        await self.api.request("POST", self.path("issueLink"), json=body)
        return {"linked": True}

    async def aclose(self) -> None:
        await self.api.aclose()


def issue_ref(ref: str) -> dict[str, str]:
    """An issue in a request body: ``{"key": ...}``, or ``{"id": ...}`` for a numeric id."""
    issue_path(ref)
    return {"id": ref} if ref.isdigit() else {"key": ref}


def pick_transition(available: list[dict[str, Any]], wanted: str) -> dict[str, Any] | None:
    """The transition whose id is ``wanted``, else the first whose name or target status
    name is ``wanted`` (case-insensitively)."""
    for t in available:
        if str(t.get("id")) == wanted:
            return t
    folded = wanted.casefold()
    for t in available:
        to = t.get("to")
        names = (t.get("name"), to.get("name") if isinstance(to, dict) else None)
        if any(isinstance(n, str) and n.casefold() == folded for n in names):
            return t
    return None


@action(
    "jira.create_issue",
    ConnectorKind.JIRA,
    "Create a Jira issue.",
    {
        "project": {"type": "string", "minLength": 1, "description": "the project key"},
        "issue_type": {"type": "string", "minLength": 1, "description": "e.g. Task, Bug"},
        "summary": {"type": "string", "minLength": 1, "maxLength": 255},
        "description": RICH_TEXT,
        "fields": {
            "type": "object",
            "description": "more fields, as Jira names them (labels, priority, customfield_N), "
            "sent unchanged; project, issue_type, summary and description above win",
        },
    },
    required=("project", "issue_type", "summary"),
    output='Jira\'s answer: {"id": "10001", "key": "PROJ-1", "self": URL}',
)
async def create_issue(connector: Jira, data: dict[str, Any]) -> Any:
    return await connector.create_issue(data)


@action(
    "jira.add_comment",
    ConnectorKind.JIRA,
    "Comment on a Jira issue.",
    {"issue": ISSUE_REF, "body": {**RICH_TEXT, "minLength": 1}},
    required=("issue", "body"),
    output="Jira's comment: {id, self, author, body, created, updated, ...} (body as ADF on "
    "Cloud, a string on Data Center)",
)
async def add_comment(connector: Jira, data: dict[str, Any]) -> Any:
    return await connector.add_comment(data["issue"], data["body"])


@action(
    "jira.transition_issue",
    ConnectorKind.JIRA,
    "Move a Jira issue through its workflow, by transition id or name (or target status).",
    {
        "issue": ISSUE_REF,
        "transition": {
            "type": "string",
            "minLength": 1,
            "description": "a transition id, or a transition or target status name "
            "(case-insensitive)",
        },
    },
    required=("issue", "transition"),
    output='{"issue": KEY, "transition": {"id": "31", "name": "Done"}} (Jira answers 204)',
)
async def transition_issue(connector: Jira, data: dict[str, Any]) -> Any:
    return await connector.transition(data["issue"], data["transition"])


@action(
    "jira.search",
    ConnectorKind.JIRA,
    "Search Jira issues with JQL.",
    {
        "jql": {"type": "string", "minLength": 1},
        "fields": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "description": "the fields of each issue; Cloud default: summary, status",
        },
        "max_results": {"type": "integer", "minimum": 1, "maximum": 5000},
    },
    required=("jql",),
    output="Jira's answer: Cloud (POST /rest/api/3/search/jql) {issues, isLast, "
    "nextPageToken?}; Data Center (POST /rest/api/2/search) {startAt, maxResults, total, issues}",
)
async def search(connector: Jira, data: dict[str, Any]) -> Any:
    return await connector.search(data)


@action(
    "jira.link_issues",
    ConnectorKind.JIRA,
    "Link two Jira issues with a link type (Blocks, Relates, Duplicate, Cloners, ...).",
    {
        "type": {"type": "string", "minLength": 1, "description": "Blocks, Relates, ..."},
        "inward": ISSUE_REF,
        "outward": ISSUE_REF,
        "comment": {**RICH_TEXT, "minLength": 1},
    },
    required=("type", "inward", "outward"),
    output='{"linked": true} (Jira answers 201 with an empty body)',
)
async def link_issues(connector: Jira, data: dict[str, Any]) -> Any:
    return await connector.link(data)
