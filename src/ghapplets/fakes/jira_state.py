"""The Jira fake's state (projects, issues, comments, links, the workflow) and the JSON Jira
answers for each, in REST v3 (rich text as ADF) or v2 (rich text as a string) form.

The workflow is Jira's default simplified one: statuses To Do, In Progress and Done, and a
global transition into each (ids 11, 21, 31), available from every other status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ghapplets.fakes.adf import adf_to_text, text_to_adf
from ghapplets.fakes.config import JiraFlavor, JiraUser


@dataclass(frozen=True, slots=True)
class Status:
    id: str
    name: str
    category_id: int
    category_key: str
    color: str


STATUSES = (
    Status("10000", "To Do", 2, "new", "blue-gray"),
    Status("3", "In Progress", 4, "indeterminate", "yellow"),
    Status("10001", "Done", 3, "done", "green"),
)
TRANSITIONS = (("11", STATUSES[0]), ("21", STATUSES[1]), ("31", STATUSES[2]))
PRIORITIES = {"Highest": "1", "High": "2", "Medium": "3", "Low": "4", "Lowest": "5"}
ISSUE_TYPE_IDS = {"Epic": "10000", "Story": "10001", "Task": "10002", "Sub-task": "10003",
                  "Bug": "10004"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class LinkType:
    id: str
    name: str
    inward: str
    outward: str


LINK_TYPES = (
    LinkType("10000", "Blocks", "is blocked by", "blocks"),
    LinkType("10001", "Cloners", "is cloned by", "clones"),
    LinkType("10002", "Duplicate", "is duplicated by", "duplicates"),
    LinkType("10003", "Relates", "relates to", "relates to"),
)


def jira_time(ts: float) -> str:
    """Jira's timestamp format: ``2024-05-14T09:30:00.000+0000``."""
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


@dataclass
class RichText:
    """Rich text as it was given: an ADF document (REST v3) or a string (REST v2)."""

    adf: dict[str, Any] | None = None
    text: str | None = None

    def render(self, version: str) -> Any:
        if version == "3":
            return self.adf if self.adf is not None else text_to_adf(self.text or "")
        return self.text if self.text is not None else adf_to_text(self.adf)


def user_json(user: JiraUser, flavor: JiraFlavor, base: str) -> dict[str, Any]:
    if flavor == JiraFlavor.CLOUD:
        return {
            "self": f"{base}/rest/api/3/user?accountId={user.account_id}",
            "accountId": user.account_id,
            "emailAddress": user.email,
            "displayName": user.display_name,
            "active": True,
            "timeZone": "Etc/UTC",
            "accountType": "atlassian",
            "avatarUrls": {"48x48": f"{base}/avatar/{user.account_id}/48"},
        }
    name = user.username or "dev"
    return {
        "self": f"{base}/rest/api/2/user?username={name}",
        "name": name,
        "key": f"JIRAUSER{10000 + sum(map(ord, name))}",
        "emailAddress": user.email or f"{name}@example.com",
        "displayName": user.display_name,
        "active": True,
        "timeZone": "Etc/UTC",
        "avatarUrls": {"48x48": f"{base}/secure/useravatar?ownerId={name}"},
    }


def status_json(status: Status, base: str, version: str) -> dict[str, Any]:
    return {
        "self": f"{base}/rest/api/{version}/status/{status.id}",
        "description": "",
        "iconUrl": f"{base}/images/icons/statuses/generic.png",
        "name": status.name,
        "id": status.id,
        "statusCategory": {
            "self": f"{base}/rest/api/{version}/statuscategory/{status.category_id}",
            "id": status.category_id,
            "key": status.category_key,
            "colorName": status.color,
            "name": status.name,
        },
    }


@dataclass
class Project:
    id: str
    key: str
    name: str
    issue_types: list[str]
    next_number: int = 1

    def to_json(self, base: str, version: str) -> dict[str, Any]:
        return {
            "self": f"{base}/rest/api/{version}/project/{self.id}",
            "id": self.id,
            "key": self.key,
            "name": self.name,
            "projectTypeKey": "software",
            "simplified": False,
        }

    def issue_type_json(self, name: str, base: str, version: str) -> dict[str, Any]:
        id_ = ISSUE_TYPE_IDS.get(name) or str(10100 + self.issue_types.index(name))
        return {
            "self": f"{base}/rest/api/{version}/issuetype/{id_}",
            "id": id_,
            "description": "",
            "iconUrl": f"{base}/images/icons/issuetypes/{name.lower()}.svg",
            "name": name,
            "subtask": name == "Sub-task",
        }

    def find_type(self, ref: Any) -> str | None:
        """The issue type named or identified by ``{"name": ...}`` / ``{"id": ...}``."""
        if not isinstance(ref, dict):
            return None
        for name in self.issue_types:
            id_ = ISSUE_TYPE_IDS.get(name) or str(10100 + self.issue_types.index(name))
            if ref.get("name") == name or ref.get("id") == id_:
                return name
        return None


@dataclass
class Comment:
    id: str
    body: RichText
    author: JiraUser
    created: float


@dataclass
class Link:
    id: str
    type: LinkType
    inward: str  # key of the inward issue ("is blocked by" this one's outward)
    outward: str


@dataclass
class JiraIssue:
    id: str
    key: str
    project: Project
    issuetype: str
    summary: str
    description: RichText | None
    status: Status
    reporter: JiraUser
    created: float
    updated: float
    labels: list[str] = field(default_factory=list)
    priority: str = "Medium"
    extra: dict[str, Any] = field(default_factory=dict)
    comments: list[Comment] = field(default_factory=list)
    changelog: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str:
        """Summary and description as plain text (for JQL ``text ~``)."""
        description = self.description.render("2") if self.description else ""
        return f"{self.summary}\n{description}"
