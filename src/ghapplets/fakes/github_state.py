"""The GitHub fake's state: Apps, installations, tokens, repositories and what the API created
in them, hook deliveries and redelivery attempts; and the JSON GitHub answers for each.

Plain dataclasses; the created objects (comments, statuses, check runs, deployments...) are
kept as the JSON the fake answered, so a test asserts on exactly what a connector received.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def iso(ts: float) -> str:
    """GitHub's timestamp format: ``2024-05-14T09:30:00Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_id(prefix: str, id_: int) -> str:
    return f"{prefix}_kwDO{id_:08X}"


def fake_sha(ref: str) -> str:
    """A deterministic 40-hex commit id for a ref the fake has no repository for."""
    if len(ref) == 40 and all(c in "0123456789abcdef" for c in ref):
        return ref
    return hashlib.sha1(ref.encode(), usedforsecurity=False).hexdigest()


@dataclass
class App:
    id: int
    client_id: str
    slug: str
    name: str
    owner: str
    permissions: dict[str, str]
    events: list[str]
    webhook_secret: str | None
    created: float

    def bot(self, web: str, api: str) -> dict[str, Any]:
        bot_id = 40_000_000 + self.id
        return user_json(
            f"{self.slug}[bot]",
            bot_id,
            node_id("BOT", bot_id),
            "Bot",
            web,
            api,
            html_url=f"{web}/apps/{self.slug}",
        )

    def to_json(self, web: str, api: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "client_id": self.client_id,
            "slug": self.slug,
            "node_id": node_id("A", self.id),
            "owner": account_json(self.owner, "Organization", web, api),
            "name": self.name,
            "description": "",
            "external_url": f"{web}/apps/{self.slug}",
            "html_url": f"{web}/apps/{self.slug}",
            "created_at": iso(self.created),
            "updated_at": iso(self.created),
            "permissions": self.permissions,
            "events": self.events,
            "installations_count": 0,
        }


def account_id(login: str) -> int:
    return 10_000 + int(hashlib.sha1(login.encode(), usedforsecurity=False).hexdigest()[:6], 16)


def user_json(
    login: str,
    id_: int,
    node: str,
    kind: str,
    web: str,
    api: str,
    *,
    url: str | None = None,
    html_url: str | None = None,
) -> dict[str, Any]:
    """A user, organization or bot inside another object (GitHub's ``simple-user``)."""
    users = f"{api}/users/{login}"
    return {
        "login": login,
        "id": id_,
        "node_id": node,
        "avatar_url": f"{web}/avatars/u/{id_}",
        "gravatar_id": "",
        "url": url or users,
        "html_url": html_url or f"{web}/{login}",
        "followers_url": f"{users}/followers",
        "following_url": f"{users}/following{{/other_user}}",
        "gists_url": f"{users}/gists{{/gist_id}}",
        "starred_url": f"{users}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{users}/subscriptions",
        "organizations_url": f"{users}/orgs",
        "repos_url": f"{users}/repos",
        "events_url": f"{users}/events{{/privacy}}",
        "received_events_url": f"{users}/received_events",
        "type": kind,
        "user_view_type": "public",
        "site_admin": False,
    }


def account_json(login: str, kind: str, web: str, api: str) -> dict[str, Any]:
    id_ = account_id(login)
    organization = kind == "Organization"
    return user_json(
        login,
        id_,
        node_id("O" if organization else "U", id_),
        kind,
        web,
        api,
        url=f"{api}/{'orgs' if organization else 'users'}/{login}",
    )


@dataclass
class Installation:
    id: int
    app: App
    account: str
    account_type: str
    repositories: list[str]
    repository_selection: str
    permissions: dict[str, str]
    suspended: bool
    created: float

    def to_json(self, web: str, api: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "client_id": self.app.client_id,
            "account": account_json(self.account, self.account_type, web, api),
            "repository_selection": self.repository_selection,
            "access_tokens_url": f"{api}/app/installations/{self.id}/access_tokens",
            "repositories_url": f"{api}/installation/repositories",
            "html_url": f"{web}/organizations/{self.account}/settings/installations/{self.id}",
            "app_id": self.app.id,
            "app_slug": self.app.slug,
            "target_id": account_id(self.account),
            "target_type": self.account_type,
            "permissions": self.permissions,
            "events": self.app.events,
            "created_at": iso(self.created),
            "updated_at": iso(self.created),
            "single_file_name": None,
            "has_multiple_single_files": False,
            "single_file_paths": [],
            "suspended_by": None,
            "suspended_at": iso(self.created) if self.suspended else None,
        }


@dataclass
class Token:
    """An installation access token (``ghs_...``); ``repositories`` limits it when set."""

    token: str
    installation_id: int
    expires_at: float
    permissions: dict[str, str]
    repositories: list[str] | None


@dataclass
class Issue:
    number: int
    id: int
    title: str
    body: str | None
    state: str
    created: float
    labels: list[dict[str, Any]] = field(default_factory=list)
    comments: int = 0


@dataclass
class Repo:
    """A repository and everything the API created in it, as answered."""

    owner: str
    name: str
    id: int
    issues: dict[int, Issue] = field(default_factory=dict)
    comments: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    check_runs: list[dict[str, Any]] = field(default_factory=list)
    deployments: list[dict[str, Any]] = field(default_factory=list)
    deployment_statuses: list[dict[str, Any]] = field(default_factory=list)
    dispatches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def labels_of(self, number: int) -> list[str]:
        issue = self.issues.get(number)
        return [label["name"] for label in issue.labels] if issue else []

    def to_json(self, web: str, api: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "node_id": node_id("R", self.id),
            "name": self.name,
            "full_name": self.full_name,
            "private": True,
            "owner": account_json(self.owner, "Organization", web, api),
            "html_url": f"{web}/{self.full_name}",
            "url": f"{api}/repos/{self.full_name}",
        }

    def issue_json(self, issue: Issue, web: str, api: str) -> dict[str, Any]:
        url = f"{api}/repos/{self.full_name}/issues/{issue.number}"
        return {
            "id": issue.id,
            "node_id": node_id("I", issue.id),
            "url": url,
            "repository_url": f"{api}/repos/{self.full_name}",
            "labels_url": f"{url}/labels{{/name}}",
            "comments_url": f"{url}/comments",
            "events_url": f"{url}/events",
            "html_url": f"{web}/{self.full_name}/issues/{issue.number}",
            "number": issue.number,
            "state": issue.state,
            "state_reason": "completed" if issue.state == "closed" else None,
            "title": issue.title,
            "body": issue.body,
            "user": account_json("octocat", "User", web, api),
            "labels": issue.labels,
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "locked": False,
            "comments": issue.comments,
            "created_at": iso(issue.created),
            "updated_at": iso(issue.created),
            "closed_at": iso(issue.created) if issue.state == "closed" else None,
            "author_association": "MEMBER",
        }


@dataclass
class HookDelivery:
    """One App webhook delivery, as ``GET /app/hook/deliveries`` lists it; ``payload`` and
    ``request_headers`` are what was (or would be) sent, for ``GET .../{id}`` and redelivery."""

    id: int
    guid: str
    delivered_at: float
    redelivery: bool
    duration: float
    status: str
    status_code: int
    event: str
    action: str | None
    installation_id: int | None
    repository_id: int | None
    payload: dict[str, Any] = field(default_factory=dict)
    request_headers: dict[str, str] = field(default_factory=dict)
    response_body: str = ""
    url: str = ""
    throttled_at: float | None = None

    @property
    def failed(self) -> bool:
        return not 200 <= self.status_code < 300

    def summary_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "guid": self.guid,
            "delivered_at": iso(self.delivered_at),
            "redelivery": self.redelivery,
            "duration": round(self.duration, 2),
            "status": self.status,
            "status_code": self.status_code,
            "event": self.event,
            "action": self.action,
            "installation_id": self.installation_id,
            "repository_id": self.repository_id,
            "throttled_at": iso(self.throttled_at) if self.throttled_at else None,
        }

    def full_json(self) -> dict[str, Any]:
        return {
            **self.summary_json(),
            "url": self.url,
            "request": {"headers": self.request_headers, "payload": self.payload},
            "response": {"headers": {}, "payload": self.response_body},
        }


@dataclass
class RedeliveryAttempt:
    """A ``POST /app/hook/deliveries/{id}/attempts``: which delivery, and the new delivery the
    fake made of it (``None`` when no webhook URL is configured, so nothing was sent)."""

    delivery_id: int
    time: float
    new_delivery_id: int | None = None


def delivery_status(status_code: int, error: str | None) -> str:
    """The ``status`` text GitHub shows for an outcome."""
    if error:
        return "failed to connect to host"
    if 200 <= status_code < 300:
        return "OK"
    return f"Invalid HTTP Response: {status_code}"
