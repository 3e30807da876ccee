"""The Jira fake: Jira Cloud (REST v3 and v2) or Data Center (REST v2), one flavor per fake.

Authentication: Cloud takes basic auth ``email:api_token``; Data Center a personal access
token (``Authorization: Bearer``) or basic auth ``username:password``. Anything else is 401.
Cloud serves ``/rest/api/3``, ``/rest/api/2`` and ``/rest/api/latest`` (= 2); Data Center
``/rest/api/2`` and ``/rest/api/latest``.

Endpoints (``{v}`` a version above): ``POST /rest/api/{v}/issue`` (201 ``{id, key, self}``),
``GET /rest/api/{v}/issue/{key}``, ``GET``/``POST .../issue/{key}/comment``,
``GET``/``POST .../issue/{key}/transitions`` (204), ``GET``/``POST /rest/api/{v}/search``
(``startAt`` pagination), on Cloud ``GET``/``POST /rest/api/{v}/search/jql`` (``nextPageToken``
pagination, only ``id`` unless ``fields`` are asked for, bounded queries only),
``POST /rest/api/{v}/issueLink`` (201) and ``GET /rest/api/{v}/myself``.

On REST v3 rich text (``description``, a comment's ``body``) must be an ADF document
(:mod:`ghapplets.fakes.adf`), on v2 a string: the other is refused with Jira's own message.
Searches take the JQL subset of :mod:`ghapplets.fakes.jql`. Errors are
``{"errorMessages": [...], "errors": {...}}``.

Webhooks: :meth:`JiraFake.send_transition` moves an issue through the workflow and sends
``jira:issue_updated`` with the status change in its ``changelog``, signed
``X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>`` with the configured secret (Cloud
adds ``X-Atlassian-Webhook-Identifier``; Data Center sends none), as the gateway's ``jira``
source verifies. With ``webhook.events`` configured, the REST changes send
``jira:issue_created``, ``jira:issue_updated`` (transitions) and ``comment_created`` on their
own, after answering.
"""

from __future__ import annotations

import base64
import binascii
import functools
import uuid
from typing import Any, ClassVar

import httpx
import orjson
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ghapplets.exceptions import NotFound
from ghapplets.fakes.adf import adf_problem
from ghapplets.fakes.config import JiraConfig, JiraFlavor, JiraUser
from ghapplets.fakes.core import (
    Clock,
    Fake,
    Fault,
    RecordedRequest,
    Refused,
    SentWebhook,
    control_json,
    json_response,
)
from ghapplets.fakes.jira_state import (
    LINK_TYPES,
    PRIORITIES,
    STATUSES,
    TRANSITIONS,
    Comment,
    JiraIssue,
    Link,
    Project,
    RichText,
    Status,
    jira_time,
    status_json,
    user_json,
)
from ghapplets.fakes.jql import Jql, JqlError, parse_jql
from ghapplets.fakes.webhooks import Webhook, hmac_sha256

INVALID_PAYLOAD = "Invalid request payload. Refer to the REST API documentation and try again."
NOT_ADF = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
NOT_STRING = "Operation value must be a string"
NO_ISSUE = "Issue does not exist or you do not have permission to see it."
SEARCH_JQL_KEYS = frozenset(
    {"jql", "nextPageToken", "maxResults", "fields", "expand", "properties", "fieldsByKeys",
     "failFast", "reconcileIssues"}
)  # fmt: skip
SETTABLE = frozenset(
    {"project", "issuetype", "summary", "description", "labels", "priority", "assignee",
     "reporter", "duedate", "components", "fixVersions", "environment", "parent"}
)  # fmt: skip
CORE_FIELDS = frozenset({"project", "issuetype", "summary", "description", "labels", "priority"})
EXPAND = "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations"


class JiraFake(Fake):
    """See the module docstring. State: :attr:`projects`, :attr:`issues` (by key),
    :attr:`links`; :meth:`issue` finds one by key."""

    name: ClassVar[str] = "jira"

    def __init__(self, config: JiraConfig | None = None, *, clock: Clock | None = None) -> None:
        self.config = config or JiraConfig()
        self.flavor = self.config.flavor
        super().__init__(clock=clock)

    @property
    def versions(self) -> tuple[str, ...]:
        cloud = self.flavor == JiraFlavor.CLOUD
        return ("3", "2", "latest") if cloud else ("2", "latest")

    # -- state ------------------------------------------------------------------------------------
    def reset_state(self) -> None:
        self.projects: dict[str, Project] = {}
        for i, p in enumerate(self.config.projects):
            self.projects[p.key] = Project(
                p.id or str(10000 + i), p.key, p.name, list(p.issue_types)
            )
        self.issues: dict[str, JiraIssue] = {}
        self.links: list[Link] = []
        self._next = 10000

    def _new_id(self) -> str:
        self._next += 1
        return str(self._next)

    def snapshot(self) -> dict[str, Any]:
        return {
            "flavor": str(self.flavor),
            "issues": {
                key: {
                    "id": i.id,
                    "summary": i.summary,
                    "status": i.status.name,
                    "issuetype": i.issuetype,
                    "labels": i.labels,
                    "comments": [c.body.render("2") for c in i.comments],
                }
                for key, i in self.issues.items()
            },
            "links": [
                {"type": lk.type.name, "inward": lk.inward, "outward": lk.outward}
                for lk in self.links
            ],
        }

    # -- the Python API ---------------------------------------------------------------------------
    def issue(self, key: str) -> JiraIssue:
        with self.lock:
            found = self._find(key)
        if found is None:
            raise NotFound(f"no issue {key!r} in the Jira fake")
        return found

    def add_issue(
        self,
        project: str,
        summary: str,
        *,
        issuetype: str = "Task",
        description: str | None = None,
        labels: list[str] | None = None,
    ) -> JiraIssue:
        """Create an issue as a user would in Jira's UI (no webhook)."""
        with self.lock:
            proj = self.projects[project]
            return self._create(
                proj,
                issuetype,
                summary,
                RichText(text=description) if description else None,
                labels or [],
                "Medium",
                {},
                self.config.users[0],
            )

    def transition_issue(self, key: str, to: str, user: JiraUser | None = None) -> dict[str, Any]:
        """Move ``key`` to the status named ``to`` (or through the transition with that id);
        the changelog entry recorded for it."""
        with self.lock:
            issue = self._find(key)
            if issue is None:
                raise NotFound(f"no issue {key!r} in the Jira fake")
            for tid, status in TRANSITIONS:
                if to in (tid, status.name):
                    return self._move(issue, status, user or self.config.users[0])
        raise NotFound(f"no status or transition {to!r} in the Jira workflow")

    def issue_updated_webhook(
        self, key: str, changelog: dict[str, Any], user: JiraUser | None = None
    ) -> Webhook:
        """The signed ``jira:issue_updated`` webhook for a change of ``key``."""
        with self.lock:
            issue = self.issue(key)
            payload = {
                "timestamp": int(self.now() * 1000),
                "webhookEvent": "jira:issue_updated",
                "issue_event_type_name": "issue_generic",
                "user": user_json(user or self.config.users[0], self.flavor, self._base()),
                "issue": self._issue_json(issue, self._base(), "2", None),
                "changelog": {"id": changelog["id"], "items": changelog["items"]},
            }
        return self.webhook(payload)

    def webhook(self, payload: dict[str, Any]) -> Webhook:
        """``payload`` as Jira sends it to the configured webhook (signed when it has a secret)."""
        body = orjson.dumps(payload)
        target = self.config.webhook
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Atlassian Webhook HTTP Client",
        }
        if self.flavor == JiraFlavor.CLOUD:
            headers["X-Atlassian-Webhook-Identifier"] = str(uuid.uuid4())
        if target is not None and target.secret:
            headers["X-Hub-Signature"] = "sha256=" + hmac_sha256(target.secret, body)
        return Webhook(target.url if target else "", headers, body)

    async def send_transition(
        self, key: str, to: str, *, url: str | None = None, client: httpx.AsyncClient | None = None
    ) -> SentWebhook:
        """Transition ``key`` to ``to`` and send the ``jira:issue_updated`` webhook for it."""
        changelog = self.transition_issue(key, to)
        hook = self.issue_updated_webhook(key, changelog)
        return await self.send_signed("jira:issue_updated", hook, url=url, client=client)

    # -- errors -----------------------------------------------------------------------------------
    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        return json_response({"errorMessages": [message], "errors": {}}, status, headers)

    def _refuse(self, status: int, message: str) -> Refused:
        return Refused(self.error(status, message))

    def _field_errors(self, errors: dict[str, str]) -> Refused:
        return Refused(json_response({"errorMessages": [], "errors": errors}, 400))

    def _unauthenticated(self) -> Refused:
        if self.flavor == JiraFlavor.CLOUD:
            return self._refuse(401, "Client must be authenticated to access this resource.")
        return self._refuse(
            401, "You are not authenticated. Authentication required to perform this operation."
        )

    def fault_response(self, fault: Fault, request: RecordedRequest) -> Response:
        status = fault.status or 503
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        if status == 401:
            response = self._unauthenticated().response
            response.headers.update(headers)
            return response
        if status == 429:
            return self.error(429, "Rate limit exceeded.", headers)
        return super().fault_response(fault, request)

    # -- helpers ----------------------------------------------------------------------------------
    def _base(self, request: Request | None = None) -> str:
        if request is not None:
            return f"{request.url.scheme}://{request.url.netloc}"
        return (self.base_url or "http://jira.invalid").rstrip("/")

    def _version(self, request: Request) -> str:
        version = request.path_params["version"]
        if version not in self.versions:
            raise self._refuse(404, "Not Found")
        return "2" if version == "latest" else version

    def _auth(self, request: Request) -> JiraUser:
        scheme, _, value = (request.headers.get("authorization") or "").partition(" ")
        value = value.strip()
        if scheme.lower() == "basic":
            try:
                name, _, secret = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise self._unauthenticated() from None
            for user in self.config.users:
                if self.flavor == JiraFlavor.CLOUD:
                    if (
                        user.email
                        and user.api_token
                        and (name, secret) == (user.email, user.api_token)
                    ):
                        return user
                elif (
                    user.username
                    and user.password
                    and (name, secret)
                    == (
                        user.username,
                        user.password,
                    )
                ):
                    return user
        elif scheme.lower() == "bearer" and self.flavor == JiraFlavor.DATACENTER:
            for user in self.config.users:
                if user.token and value == user.token:
                    return user
        raise self._unauthenticated()

    async def _body(self, request: Request) -> dict[str, Any]:
        doc = await self.read_json(request, lambda: self.error(400, INVALID_PAYLOAD))
        if not isinstance(doc, dict):
            raise self._refuse(400, INVALID_PAYLOAD)
        return doc

    def _find(self, key_or_id: str) -> JiraIssue | None:
        found = self.issues.get(key_or_id.upper())
        if found is None:
            found = next((i for i in self.issues.values() if i.id == key_or_id), None)
        return found

    def _issue_of(self, request: Request) -> JiraIssue:
        issue = self._find(request.path_params["key"])
        if issue is None:
            raise self._refuse(404, NO_ISSUE)
        return issue

    def _rich(self, value: Any, version: str) -> RichText | str:
        """``value`` as rich text for ``version``, or the error message for it."""
        if version == "3":
            return NOT_ADF if adf_problem(value) else RichText(adf=value)
        return RichText(text=value) if isinstance(value, str) else NOT_STRING

    def _create(
        self,
        project: Project,
        issuetype: str,
        summary: str,
        description: RichText | None,
        labels: list[str],
        priority: str,
        extra: dict[str, Any],
        user: JiraUser,
    ) -> JiraIssue:
        now = self.now()
        key = f"{project.key}-{project.next_number}"
        project.next_number += 1
        issue = JiraIssue(
            self._new_id(), key, project, issuetype, summary, description, STATUSES[0], user,
            now, now, labels, priority, extra,
        )  # fmt: skip
        self.issues[key] = issue
        return issue

    def _move(self, issue: JiraIssue, status: Status, user: JiraUser) -> dict[str, Any]:
        entry = {
            "id": self._new_id(),
            "author": user_json(user, self.flavor, self._base()),
            "created": jira_time(self.now()),
            "items": [
                {
                    "field": "status",
                    "fieldtype": "jira",
                    "fieldId": "status",
                    "from": issue.status.id,
                    "fromString": issue.status.name,
                    "to": status.id,
                    "toString": status.name,
                }
            ],
        }
        issue.status = status
        issue.updated = self.now()
        issue.changelog.append(entry)
        return entry

    def _comment_json(self, issue: JiraIssue, comment: Comment, base: str, version: str) -> Any:
        author = user_json(comment.author, self.flavor, base)
        when = jira_time(comment.created)
        body: dict[str, Any] = {
            "self": f"{base}/rest/api/{version}/issue/{issue.id}/comment/{comment.id}",
            "id": comment.id,
            "author": author,
            "body": comment.body.render(version),
            "updateAuthor": author,
            "created": when,
            "updated": when,
        }
        if self.flavor == JiraFlavor.CLOUD:
            body["jsdPublic"] = True
        return body

    def _link_json(self, issue: JiraIssue, link: Link, base: str, version: str) -> dict[str, Any]:
        outward = link.inward == issue.key  # this issue is the inward one: show the outward one
        other = self.issues[link.outward if outward else link.inward]
        return {
            "id": link.id,
            "self": f"{base}/rest/api/{version}/issueLink/{link.id}",
            "type": {
                "id": link.type.id,
                "name": link.type.name,
                "inward": link.type.inward,
                "outward": link.type.outward,
                "self": f"{base}/rest/api/{version}/issueLinkType/{link.type.id}",
            },
            ("outwardIssue" if outward else "inwardIssue"): {
                "id": other.id,
                "key": other.key,
                "self": f"{base}/rest/api/{version}/issue/{other.id}",
                "fields": {
                    "summary": other.summary,
                    "status": status_json(other.status, base, version),
                },
            },
        }

    def _issue_json(
        self, issue: JiraIssue, base: str, version: str, wanted: list[str] | None
    ) -> dict[str, Any]:
        reporter = user_json(issue.reporter, self.flavor, base)
        description = issue.description.render(version) if issue.description else None
        fields: dict[str, Any] = {
            "summary": issue.summary,
            "description": description,
            "issuetype": issue.project.issue_type_json(issue.issuetype, base, version),
            "project": issue.project.to_json(base, version),
            "status": status_json(issue.status, base, version),
            "labels": list(issue.labels),
            "priority": {
                "self": f"{base}/rest/api/{version}/priority/{PRIORITIES[issue.priority]}",
                "id": PRIORITIES[issue.priority],
                "name": issue.priority,
            },
            "created": jira_time(issue.created),
            "updated": jira_time(issue.updated),
            "reporter": reporter,
            "creator": reporter,
            "assignee": None,
            "resolution": None,
            "issuelinks": [
                self._link_json(issue, lk, base, version)
                for lk in self.links
                if issue.key in (lk.inward, lk.outward)
            ],
            "comment": {
                "comments": [self._comment_json(issue, c, base, version) for c in issue.comments],
                "maxResults": len(issue.comments),
                "total": len(issue.comments),
                "startAt": 0,
            },
            **issue.extra,
        }
        if wanted is not None and not {"*all", "*navigable"} & set(wanted):
            fields = {k: v for k, v in fields.items() if k in wanted}
        return {
            "expand": EXPAND,
            "id": issue.id,
            "self": f"{base}/rest/api/{version}/issue/{issue.id}",
            "key": issue.key,
            "fields": fields,
        }

    def _notify(self, event: str, payload: dict[str, Any]) -> BackgroundTask | None:
        """A task sending ``event`` after the answer, when the webhook is configured for it."""
        target = self.config.webhook
        if target is None or event not in target.events:
            return None
        return BackgroundTask(self.send_signed, event, self.webhook(payload))

    def _event(self, event: str, user: JiraUser, **parts: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "timestamp": int(self.now() * 1000),
            "webhookEvent": event,
            "user": user_json(user, self.flavor, self._base()),
        }
        payload.update(parts)
        return payload

    # -- routes -----------------------------------------------------------------------------------
    def vendor_routes(self) -> list[BaseRoute]:
        api = "/rest/api/{version}"
        routes: list[BaseRoute] = [
            Route(f"{api}/issue", self._create_issue, methods=["POST"]),
            Route(f"{api}/issue/{{key}}", self._get_issue, methods=["GET"]),
            Route(f"{api}/issue/{{key}}/comment", self._comments, methods=["GET", "POST"]),
            Route(f"{api}/issue/{{key}}/transitions", self._transitions, methods=["GET", "POST"]),
            Route(f"{api}/search", self._search, methods=["GET", "POST"]),
            Route(f"{api}/issueLink", self._create_link, methods=["POST"]),
            Route(f"{api}/myself", self._myself, methods=["GET"]),
        ]
        if self.flavor == JiraFlavor.CLOUD:
            routes.append(Route(f"{api}/search/jql", self._search_jql, methods=["GET", "POST"]))
        return routes

    async def _myself(self, request: Request) -> Response:
        version = self._version(request)
        user = self._auth(request)
        body = user_json(user, self.flavor, self._base(request))
        body["self"] = body["self"].replace("/rest/api/3/", f"/rest/api/{version}/")
        return json_response(body)

    async def _create_issue(self, request: Request) -> Response:
        version = self._version(request)
        user = self._auth(request)
        doc = await self._body(request)
        fields = doc.get("fields")
        if not isinstance(fields, dict):
            raise self._refuse(400, INVALID_PAYLOAD)
        base = self._base(request)
        with self.lock:
            errors: dict[str, str] = {}
            project = self._project_of(fields.get("project"))
            if project is None:
                errors["project"] = "Specify a valid project ID or key"
            issuetype = project.find_type(fields.get("issuetype")) if project else None
            if "issuetype" not in fields:
                errors["issuetype"] = "Specify an issue type"
            elif project is not None and issuetype is None:
                errors["issuetype"] = "The issue type selected is invalid."
            summary = fields.get("summary")
            if not isinstance(summary, str) or not summary.strip():
                errors["summary"] = "You must specify a summary of the issue."
            elif len(summary) > 255:
                errors["summary"] = "Summary must be less than 255 characters."
            description = None
            if fields.get("description") is not None:
                rich = self._rich(fields["description"], version)
                if isinstance(rich, str):
                    errors["description"] = rich
                else:
                    description = rich
            labels = fields.get("labels", [])
            if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
                errors["labels"] = "Operation value must be an array of strings"
            else:
                for label in labels:
                    if " " in label:
                        errors["labels"] = f"The label '{label}' contains spaces which is invalid."
            priority = "Medium"
            if "priority" in fields:
                ref = _obj(fields["priority"])
                names = {v: k for k, v in PRIORITIES.items()}
                found = (
                    ref["name"] if ref.get("name") in PRIORITIES else names.get(str(ref.get("id")))
                )
                if found is None:
                    errors["priority"] = "Specify the Priority (id or name) in the correct format"
                else:
                    priority = found
            settable = SETTABLE | set(self.config.fields)
            for name in fields:
                if name not in settable:
                    errors[name] = (
                        f"Field '{name}' cannot be set. It is not on the appropriate screen, "
                        "or unknown."
                    )
            if errors:
                raise self._field_errors(errors)
            assert project is not None and issuetype is not None and isinstance(summary, str)
            extra = {k: v for k, v in fields.items() if k not in CORE_FIELDS}
            issue = self._create(
                project, issuetype, summary, description, list(labels), priority, extra, user
            )
            answer = {
                "id": issue.id,
                "key": issue.key,
                "self": f"{base}/rest/api/{version}/issue/{issue.id}",
            }
            task = self._notify(
                "jira:issue_created",
                self._event(
                    "jira:issue_created",
                    user,
                    issue_event_type_name="issue_created",
                    issue=self._issue_json(issue, base, "2", None),
                ),
            )
        return Response(
            orjson.dumps(answer), 201, media_type="application/json;charset=UTF-8", background=task
        )

    def _project_of(self, ref: Any) -> Project | None:
        if not isinstance(ref, dict):
            return None
        for project in self.projects.values():
            if ref.get("key") == project.key or str(ref.get("id")) == project.id:
                return project
        return None

    async def _get_issue(self, request: Request) -> Response:
        version = self._version(request)
        self._auth(request)
        wanted = _field_list(request.query_params.get("fields"))
        with self.lock:
            issue = self._issue_of(request)
            return json_response(self._issue_json(issue, self._base(request), version, wanted))

    async def _comments(self, request: Request) -> Response:
        version = self._version(request)
        user = self._auth(request)
        base = self._base(request)
        doc = await self._body(request) if request.method == "POST" else {}
        with self.lock:
            issue = self._issue_of(request)
            if request.method == "GET":
                found = [self._comment_json(issue, c, base, version) for c in issue.comments]
                return json_response(
                    {"startAt": 0, "maxResults": len(found), "total": len(found), "comments": found}
                )
            if doc.get("body") in (None, ""):
                raise self._field_errors({"comment": "Comment body can not be empty!"})
            rich = self._rich(doc["body"], version)
            if isinstance(rich, str):
                raise self._field_errors({"comment": rich})
            comment = Comment(self._new_id(), rich, user, self.now())
            issue.comments.append(comment)
            issue.updated = self.now()
            answer = self._comment_json(issue, comment, base, version)
            task = self._notify(
                "comment_created",
                self._event(
                    "comment_created",
                    user,
                    comment=self._comment_json(issue, comment, base, "2"),
                    issue=self._issue_json(issue, base, "2", ["summary", "status"]),
                ),
            )
        return Response(
            orjson.dumps(answer), 201, media_type="application/json;charset=UTF-8", background=task
        )

    async def _transitions(self, request: Request) -> Response:
        version = self._version(request)
        user = self._auth(request)
        base = self._base(request)
        doc = await self._body(request) if request.method == "POST" else {}
        with self.lock:
            issue = self._issue_of(request)
            available = [(tid, s) for tid, s in TRANSITIONS if s != issue.status]
            if request.method == "GET":
                return json_response(
                    {
                        "expand": "transitions",
                        "transitions": [
                            {
                                "id": tid,
                                "name": status.name,
                                "to": status_json(status, base, version),
                                "hasScreen": False,
                                "isGlobal": True,
                                "isInitial": False,
                                "isAvailable": True,
                                "isConditional": False,
                                "isLooped": False,
                            }
                            for tid, status in available
                        ],
                    }
                )
            ref = doc.get("transition")
            tid = ref.get("id") if isinstance(ref, dict) else None
            if tid is None:
                raise self._refuse(400, "Missing 'transition' identifier")
            target = next((s for t, s in available if t == str(tid)), None)
            if target is None:
                raise self._refuse(400, f"Transition id '{tid}' is not valid for this issue.")
            for add in _comment_adds(doc.get("update")):
                rich = self._rich(add, version)
                if isinstance(rich, str):
                    raise self._field_errors({"comment": rich})
                issue.comments.append(Comment(self._new_id(), rich, user, self.now()))
            changelog = self._move(issue, target, user)
            task = self._notify(
                "jira:issue_updated",
                self._event(
                    "jira:issue_updated",
                    user,
                    issue_event_type_name="issue_generic",
                    issue=self._issue_json(issue, base, "2", None),
                    changelog={"id": changelog["id"], "items": changelog["items"]},
                ),
            )
        return Response(status_code=204, background=task)

    def _query(self, jql: str) -> Jql:
        try:
            query = parse_jql(jql)
        except JqlError as exc:
            raise self._refuse(400, str(exc)) from None
        for clause in query.clauses:
            for value in clause.values:
                if clause.field == "project" and not any(
                    value.lower() in (p.key.lower(), p.name.lower(), p.id)
                    for p in self.projects.values()
                ):
                    raise self._refuse(
                        400, f"The value '{value}' does not exist for the field 'project'."
                    )
                if clause.field == "key" and self._find(value) is None:
                    raise self._refuse(
                        400, f"An issue with key '{value}' does not exist for field 'key'."
                    )
        return query

    def _matching(self, query: Jql) -> list[JiraIssue]:
        def values_of(issue: JiraIssue, field: str) -> list[str]:
            if field == "project":
                return [issue.project.key, issue.project.name, issue.project.id]
            if field == "key":
                return [issue.key, issue.id]
            if field == "status":
                return [issue.status.name, issue.status.id]
            if field == "issuetype":
                return [issue.issuetype]
            if field == "labels":
                return list(issue.labels)
            if field == "summary":
                return [issue.summary]
            return [issue.text]

        found = [i for i in self.issues.values() if query.matches(functools.partial(values_of, i))]
        for field, descending in reversed(query.order or (("key", False),)):
            found.sort(key=functools.partial(_sort_key, field=field), reverse=descending)
        return found

    async def _search(self, request: Request) -> Response:
        version = self._version(request)
        self._auth(request)
        if request.method == "POST":
            doc = await self._body(request)
            jql, start, limit = doc.get("jql", ""), doc.get("startAt", 0), doc.get("maxResults", 50)
            wanted = doc.get("fields")
        else:
            params = request.query_params
            jql, wanted = params.get("jql", ""), _field_list(params.get("fields"))
            try:
                start, limit = int(params.get("startAt", "0")), int(params.get("maxResults", "50"))
            except ValueError:
                raise self._refuse(400, INVALID_PAYLOAD) from None
        if not isinstance(jql, str) or not isinstance(start, int) or not isinstance(limit, int):
            raise self._refuse(400, INVALID_PAYLOAD)
        limit = max(0, min(limit, 100))
        base = self._base(request)
        with self.lock:
            found = self._matching(self._query(jql))
            page = found[max(start, 0) : max(start, 0) + limit]
            issues = [self._issue_json(i, base, version, _wanted(wanted)) for i in page]
        return json_response(
            {"expand": "schema,names", "startAt": start, "maxResults": limit, "total": len(found),
             "issues": issues}
        )  # fmt: skip

    async def _search_jql(self, request: Request) -> Response:
        version = self._version(request)
        self._auth(request)
        if request.method == "POST":
            doc = await self._body(request)
            if set(doc) - SEARCH_JQL_KEYS:
                raise self._refuse(400, INVALID_PAYLOAD)
            jql, token = doc.get("jql", ""), doc.get("nextPageToken")
            limit, wanted = doc.get("maxResults", 50), doc.get("fields")
        else:
            params = request.query_params
            jql, token = params.get("jql", ""), params.get("nextPageToken")
            wanted = _field_list(params.get("fields"))
            try:
                limit = int(params.get("maxResults", "50"))
            except ValueError:
                raise self._refuse(400, INVALID_PAYLOAD) from None
        if not isinstance(jql, str) or not isinstance(limit, int):
            raise self._refuse(400, INVALID_PAYLOAD)
        start = _page_start(token)
        if start is None:
            raise self._refuse(400, "The provided next page token is invalid or expired.")
        limit = max(1, min(limit, 100))
        base = self._base(request)
        with self.lock:
            query = self._query(jql)
            if not query.clauses:
                raise self._refuse(
                    400,
                    "Unbounded JQL queries are not allowed here. Please add a search restriction "
                    "to your query.",
                )
            found = self._matching(query)
            page = found[start : start + limit]
            fields = _wanted(wanted)
            issues = [
                self._issue_json(i, base, version, fields) if fields else {"id": i.id} for i in page
            ]
        body: dict[str, Any] = {"issues": issues, "isLast": start + limit >= len(found)}
        if not body["isLast"]:
            body["nextPageToken"] = base64.urlsafe_b64encode(f"o:{start + limit}".encode()).decode()
        return json_response(body)

    async def _create_link(self, request: Request) -> Response:
        self._version(request)
        self._auth(request)
        doc = await self._body(request)
        with self.lock:
            ref = _obj(doc.get("type"))
            link_type = next(
                (t for t in LINK_TYPES if ref.get("name") == t.name or ref.get("id") == t.id), None
            )
            if link_type is None:
                raise self._refuse(
                    404, f"No issue link type with name '{ref.get('name') or ref.get('id')}' found."
                )
            ends = []
            for side in ("inwardIssue", "outwardIssue"):
                end = _obj(doc.get(side))
                issue = self._find(str(end.get("key") or end.get("id") or ""))
                if issue is None:
                    raise self._refuse(404, "Issue Does Not Exist")
                ends.append(issue)
            self.links.append(Link(self._new_id(), link_type, ends[0].key, ends[1].key))
        return Response(status_code=201)

    # -- control ----------------------------------------------------------------------------------
    def control_routes(self) -> list[BaseRoute]:
        return [
            Route("/_fakes/issues", self._c_add_issue, methods=["POST"]),
            Route("/_fakes/transition", self._c_transition, methods=["POST"]),
        ]

    async def _c_add_issue(self, request: Request) -> Response:
        doc = await control_json(request)
        try:
            issue = self.add_issue(
                str(doc["project"]), str(doc["summary"]),
                issuetype=str(doc.get("issuetype", "Task")), description=doc.get("description"),
            )  # fmt: skip
        except (KeyError, TypeError) as exc:
            return json_response({"error": f"bad issue: {exc}"}, 422)
        return json_response({"id": issue.id, "key": issue.key}, 201)

    async def _c_transition(self, request: Request) -> Response:
        """``{"issue": KEY, "to": STATUS, "notify": true, "url": ...}``: move an issue, and
        (``notify``) send ``jira:issue_updated`` to ``url`` or the configured webhook."""
        doc = await control_json(request)
        try:
            if doc.get("notify", True):
                sent = await self.send_transition(
                    str(doc["issue"]), str(doc["to"]), url=doc.get("url")
                )
                return json_response(
                    {"status_code": sent.outcome.status_code, "error": sent.outcome.error}
                )
            changelog = self.transition_issue(str(doc["issue"]), str(doc["to"]))
        except (KeyError, NotFound, ValueError) as exc:
            return json_response({"error": str(exc)}, 422)
        return json_response({"changelog": changelog})


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _field_list(raw: str | None) -> list[str] | None:
    return [f.strip() for f in raw.split(",") if f.strip()] if raw else None


def _wanted(fields: Any) -> list[str] | None:
    if isinstance(fields, list) and all(isinstance(f, str) for f in fields):
        return fields or None
    return None


def _sort_key(issue: JiraIssue, field: str) -> Any:
    if field == "key":
        return (issue.project.key, int(issue.key.rsplit("-", 1)[1]))
    if field == "created":
        return issue.created
    if field == "updated":
        return issue.updated
    if field == "status":
        return issue.status.name
    if field == "project":
        return issue.project.key
    return issue.summary


def _page_start(token: Any) -> int | None:
    if token in (None, ""):
        return 0
    try:
        kind, _, offset = base64.urlsafe_b64decode(str(token)).decode().partition(":")
        return int(offset) if kind == "o" else None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _comment_adds(update: Any) -> list[Any]:
    """The comment bodies of ``update: {"comment": [{"add": {"body": ...}}]}``."""
    if not isinstance(update, dict) or not isinstance(update.get("comment"), list):
        return []
    return [
        op["add"]["body"]
        for op in update["comment"]
        if isinstance(op, dict) and isinstance(op.get("add"), dict) and "body" in op["add"]
    ]
