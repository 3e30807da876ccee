"""The GitHub connector (github.com and GitHub Enterprise Server) and the ``github.*`` actions.

Authentication, one of:

- a ``token`` (a personal access token or any other), sent as ``Authorization: Bearer``;
- a GitHub App (``app_id`` + ``private_key``): each request carries an installation token,
  minted with ``POST /app/installations/{id}/access_tokens`` under a fresh App JWT (RS256, made
  with PyJWT: ``iat`` = now - 60 s as GitHub advises, ``exp`` = now + 540 s, ``iss`` = the App
  id).

Installation tokens live an hour. One is reused until :data:`REFRESH_MARGIN` (5 minutes) before
its ``expires_at``: from memory, else from the store's token cache
(:class:`~ghapplets.secrets.tokens.TokenCache`, key ``github:<connector>:<base_url>:<id>``), so
the processes of a project mint one token per installation between them, not one each. A lock
per installation makes concurrent calls of one process mint once. A 401 on a cached token
(revoked, or expired early) drops it, mints once and sends the request again once.

The installation is the action input's ``installation_id`` (a job's event's ``installation.id``
by default), else the connector's ``installation_id``, else GitHub's answer to
``GET /repos/{owner}/{repo}/installation`` (asked with the App JWT, kept in memory).

Requests are sent by githubkit (:mod:`ghapplets.connectors.github_kit`, imported when a GitHub
connector opens): the actions' with ``arequest``, and ``ctx.github`` is a githubkit client of
the connector (:meth:`GitHub.client`), on the same tokens. The actions' errors follow
:mod:`ghapplets.connectors.http`, plus GitHub's rate limits: a 403 or 429 with ``Retry-After``
(a secondary limit) or ``X-RateLimit-Remaining: 0`` (the primary limit) is
:class:`~ghapplets.exceptions.ActionUnavailable`, not before the time GitHub names.

Owners, repositories and SHAs reach URL paths only after the input schema and
:func:`segment` have checked them against GitHub's name rules, so an input cannot change the
path; ``github.request`` takes a path but refuses ``..``, ``//`` and anything not a path.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
import jwt

from ghapplets.connectors.catalog import action
from ghapplets.connectors.config import ConnectorKind, GithubConnector
from ghapplets.connectors.http import api_path
from ghapplets.exceptions import ActionFailed, ActionInputInvalid
from ghapplets.secrets.tokens import TokenCache

if TYPE_CHECKING:
    import githubkit

    from ghapplets.connectors.github_kit import Clients, Lent

VENDOR = "GitHub"
API_VERSION = "2022-11-28"
REFRESH_MARGIN = 300.0  # seconds before expires_at a cached installation token is replaced
JWT_BACKDATE = 60  # iat = now - 60: GitHub's advice against clock drift
JWT_LIFETIME = 540  # exp = now + 540: under GitHub's 10 minutes
# what to do when an App connector knows no installation to act as
ACTION_HINT = "give the action an installation_id (or a /repos/OWNER/REPO path)"
CLIENT_HINT = (
    "the event names none (installation.id): set the connector's installation_id, or call an "
    "endpoint under /repos/OWNER/REPO (the repository's installation is asked for)"
)

_OWNER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")
_REPO = re.compile(r"(?!\.\.?\Z)[A-Za-z0-9._-]{1,100}")
_SHA = re.compile(r"[0-9a-fA-F]{7,40}")
_REPO_PATH = re.compile(r"/repos/([^/?]+)/([^/?]+)(?:[/?]|\Z)")

OWNER = {
    "type": "string",
    "pattern": r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}$",
    "description": "the account that owns the repository (user or organization)",
}
REPO = {
    "type": "string",
    "pattern": r"^(?!\.\.?$)[A-Za-z0-9._-]{1,100}$",
    "description": "the repository's name, without the owner",
}
SHA = {"type": "string", "pattern": r"^[0-9a-fA-F]{7,40}$", "description": "a commit SHA"}
INSTALLATION = {
    "type": "integer",
    "minimum": 1,
    "description": "the GitHub App installation to act as (an event's installation.id); "
    "default: the connector's, else the repository's",
}
POSITIVE = {"type": "integer", "minimum": 1}
TEXT = {"type": "string", "minLength": 1}
URL = {"type": "string", "pattern": r"^https?://", "maxLength": 2048}


def segment(value: str, rule: re.Pattern[str], what: str) -> str:
    """``value`` for a URL path if it is all of ``rule`` (the schema's pattern, checked again
    without letting ``$`` pass a trailing newline)."""
    if not rule.fullmatch(value):
        raise ActionInputInvalid(f"{value!r} is not a GitHub {what}")
    return value


def repo_path(data: dict[str, Any], rest: str = "") -> str:
    owner = segment(data["owner"], _OWNER, "owner")
    repo = segment(data["repo"], _REPO, "repository name")
    return f"/repos/{owner}/{repo}{rest}"


def repository_of(path: str) -> tuple[str | None, str | None]:
    """``(owner, repo)`` of an API path under ``/repos/OWNER/REPO`` (both valid names), else
    ``(None, None)``."""
    match = _REPO_PATH.match(path)
    if match and _OWNER.fullmatch(match[1]) and _REPO.fullmatch(match[2]):
        return match[1], match[2]
    return None, None


def is_app_path(path: str) -> bool:
    """An endpoint of the App itself (``/app``, ``/app/...``), authenticated with its JWT."""
    return path == "/app" or path.startswith(("/app/", "/app?"))


def rate_limited(response: httpx.Response) -> bool:
    """GitHub's rate limits: 403 or 429, with ``Retry-After`` (secondary) or
    ``X-RateLimit-Remaining: 0`` (primary)."""
    return response.status_code in (403, 429) and (
        "retry-after" in response.headers or response.headers.get("x-ratelimit-remaining") == "0"
    )


def parse_expiry(value: Any) -> float:
    """GitHub's ``expires_at`` (``2024-05-14T09:30:00Z``) as epoch seconds."""
    if not isinstance(value, str):
        raise ActionFailed("GitHub's installation token has no expires_at", status=502)
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ActionFailed(
            f"GitHub's token expires_at {value!r} is not a time", status=502
        ) from None


class GitHub:
    """An open GitHub connector. ``tokens``: the store's token cache (None: memory only);
    ``clock``: epoch seconds (tests pass the fakes' clock)."""

    kind = ConnectorKind.GITHUB
    uses_token_cache = True  # Connectors.open passes it the store's TokenCache

    def __init__(
        self,
        name: str,
        config: GithubConnector,
        *,
        tokens: TokenCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # githubkit is imported with the first GitHub connector, not with the catalog
        from ghapplets.connectors.github_kit import Clients

        self.name = name
        self.config = config
        self.tokens = tokens
        self.clock = clock
        self.base_url = config.base_url.rstrip("/")
        self.base_path = httpx.URL(self.base_url + "/").raw_path.decode("ascii")
        self._minted: dict[int, tuple[str, float]] = {}  # installation -> (token, expires_at)
        self._locks: dict[int, asyncio.Lock] = {}
        self._installations: dict[str, int] = {}  # "owner/repo" (lower case) -> installation
        self._lookup = asyncio.Lock()
        self.clients: Clients = Clients(self)

    @property
    def is_app(self) -> bool:
        return self.config.app_id is not None

    def client(self, installation_id: int | None = None) -> githubkit.GitHub[Lent]:
        """A githubkit client authenticated as this connector (``ctx.github``): with its token,
        or as the App installation ``installation_id``, else the connector's, else, for each
        request on a repository, the repository's. Its tokens are the actions' (one cache).
        Async methods only with an App; githubkit's own exceptions (``auto_retry`` off)."""
        return self.clients.of(installation_id, hint=CLIENT_HINT)

    # -- App authentication -------------------------------------------------------------------
    def app_jwt(self) -> str:
        """A fresh App JWT (RS256): iat 60 s back, exp 9 minutes ahead, iss the App id."""
        assert self.config.private_key is not None and self.config.app_id is not None
        now = int(self.clock())
        claims = {
            "iat": now - JWT_BACKDATE,
            "exp": now + JWT_LIFETIME,
            "iss": str(self.config.app_id),
        }
        try:
            return jwt.encode(claims, self.config.private_key, algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise ActionFailed(
                f"GitHub connector {self.name!r}: private_key is not a usable RSA key "
                f"({type(exc).__name__})",
                status=401,
            ) from None

    def cache_key(self, installation_id: int) -> str:
        return f"github:{self.name}:{self.base_url}:{installation_id}"

    def _fresh(self, found: tuple[str, float] | None, stale: str | None) -> str | None:
        if found is None:
            return None
        token, expires_at = found
        if token == stale or expires_at - REFRESH_MARGIN <= self.clock():
            return None
        return token

    async def installation_token(self, installation_id: int, *, stale: str | None = None) -> str:
        """A token of the installation valid for 5 more minutes at least, other than ``stale``
        (one GitHub refused): from memory, the store's cache, or minted now."""
        lock = self._locks.setdefault(installation_id, asyncio.Lock())
        async with lock:
            token = self._fresh(self._minted.get(installation_id), stale)
            if token is not None:
                return token
            self._minted.pop(installation_id, None)
            key = self.cache_key(installation_id)
            if self.tokens is not None:
                found = await self.tokens.get(key)
                token = self._fresh(found, stale)
                if token is not None and found is not None:
                    self._minted[installation_id] = found
                    return token
            doc = await self.clients.json(
                self.clients.app, "POST", f"/app/installations/{installation_id}/access_tokens"
            )
            token = doc.get("token") if isinstance(doc, dict) else None
            if not isinstance(token, str) or not token:
                raise ActionFailed(
                    "GitHub answered an access token request without one", status=502
                )
            expires_at = parse_expiry(doc.get("expires_at"))
            self._minted[installation_id] = (token, expires_at)
            if self.tokens is not None:
                await self.tokens.put(key, token, expires_at)
            return token

    async def installation_of(self, owner: str, repo: str) -> int:
        """The App's installation on ``owner/repo`` (asked once per repository)."""
        name = f"{owner}/{repo}".lower()
        async with self._lookup:  # concurrent calls on one repository ask once
            found = self._installations.get(name)
            if found is None:
                path = repo_path({"owner": owner, "repo": repo}, "/installation")
                doc = await self.clients.json(self.clients.app, "GET", path)
                found = doc.get("id") if isinstance(doc, dict) else None
                if not isinstance(found, int):
                    raise ActionFailed(
                        f"GitHub named no installation of the App on {name}", status=502
                    )
                self._installations[name] = found
            return found

    async def installation(
        self,
        installation_id: int | None,
        owner: str | None,
        repo: str | None,
        *,
        hint: str = ACTION_HINT,
    ) -> int:
        """The installation to act as (see the module docstring); without one,
        :class:`ActionInputInvalid` ending with ``hint``."""
        if installation_id is not None:
            return installation_id
        if self.config.installation_id is not None:
            return self.config.installation_id
        if owner is None or repo is None:
            raise ActionInputInvalid(
                f"GitHub connector {self.name!r} is a GitHub App without installation_id: {hint}"
            )
        return await self.installation_of(owner, repo)

    # -- requests -----------------------------------------------------------------------------
    def _client_for(self, path: str, installation_id: int | None) -> Any:
        """Authenticated with the token, the App JWT (the App's own endpoints), or an
        installation token."""
        if self.is_app and is_app_path(path):
            return self.clients.app
        return self.clients.of(installation_id, hint=ACTION_HINT)

    async def call(
        self, method: str, path: str, *, json: Any = None, installation_id: int | None = None
    ) -> Any:
        """GitHub's JSON answer (None for an empty one) to one request."""
        client = self._client_for(path, installation_id)
        return await self.clients.json(client, method, path, json)

    async def send(self, method: str, path: str) -> Any:
        """GitHub's whole answer (githubkit's ``Response``: headers, ``json()``), for a caller
        that reads headers (a ``Link`` to the next page)."""
        return await self.clients.send(self._client_for(path, None), method, path)

    async def repo_json(self, method: str, data: dict[str, Any], rest: str, body: Any) -> Any:
        """A call on the input's repository; GitHub's JSON (None for an empty answer)."""
        path = repo_path(data, rest)
        return await self.call(method, path, json=body, installation_id=data.get("installation_id"))

    async def request(self, data: dict[str, Any]) -> Any:
        path = api_path(data["path"], "github.request")
        return await self.call(
            data["method"],
            path,
            json=data.get("body"),
            installation_id=data.get("installation_id"),
        )

    async def aclose(self) -> None:
        await self.clients.aclose()


def _given(data: dict[str, Any], *names: str) -> dict[str, Any]:
    return {n: data[n] for n in names if data.get(n) is not None}


# -- actions ------------------------------------------------------------------------------------
@action(
    "github.create_comment",
    ConnectorKind.GITHUB,
    "Comment on an issue or pull request.",
    {
        "owner": OWNER,
        "repo": REPO,
        "issue_number": POSITIVE,
        "body": {"type": "string", "minLength": 1, "maxLength": 65536},
        "installation_id": INSTALLATION,
    },
    required=("owner", "repo", "issue_number", "body"),
    output="GitHub's comment: {id, html_url, body, user, created_at, ...}",
)
async def create_comment(connector: GitHub, data: dict[str, Any]) -> Any:
    rest = f"/issues/{int(data['issue_number'])}/comments"
    return await connector.repo_json("POST", data, rest, {"body": data["body"]})


@action(
    "github.add_labels",
    ConnectorKind.GITHUB,
    "Add labels to an issue or pull request (labels that do not exist are created).",
    {
        "owner": OWNER,
        "repo": REPO,
        "issue_number": POSITIVE,
        "labels": {"type": "array", "minItems": 1, "maxItems": 100, "items": TEXT},
        "installation_id": INSTALLATION,
    },
    required=("owner", "repo", "issue_number", "labels"),
    output="GitHub's answer: every label of the issue now, [{id, name, color, ...}]",
)
async def add_labels(connector: GitHub, data: dict[str, Any]) -> Any:
    rest = f"/issues/{int(data['issue_number'])}/labels"
    return await connector.repo_json("POST", data, rest, {"labels": data["labels"]})


@action(
    "github.create_commit_status",
    ConnectorKind.GITHUB,
    "Set a commit status (the checks list of a pull request shows it under its context).",
    {
        "owner": OWNER,
        "repo": REPO,
        "sha": SHA,
        "state": {"enum": ["error", "failure", "pending", "success"]},
        "context": TEXT,
        "description": {"type": "string", "maxLength": 1024},
        "target_url": URL,
        "installation_id": INSTALLATION,
    },
    required=("owner", "repo", "sha", "state", "context"),
    output="GitHub's status: {id, state, context, description, target_url, creator, ...}",
)
async def create_commit_status(connector: GitHub, data: dict[str, Any]) -> Any:
    rest = f"/statuses/{segment(data['sha'], _SHA, 'commit SHA')}"
    body = _given(data, "state", "context", "description", "target_url")
    return await connector.repo_json("POST", data, rest, body)


@action(
    "github.create_check_run",
    ConnectorKind.GITHUB,
    "Create a check run on a commit (a GitHub App only).",
    {
        "owner": OWNER,
        "repo": REPO,
        "name": TEXT,
        "head_sha": SHA,
        "status": {"enum": ["queued", "in_progress", "completed"]},
        "conclusion": {
            "enum": [
                "action_required",
                "cancelled",
                "failure",
                "neutral",
                "success",
                "skipped",
                "stale",
                "timed_out",
            ]
        },
        "output": {
            "type": "object",
            "properties": {"title": TEXT, "summary": TEXT, "text": {"type": "string"}},
            "required": ["title", "summary"],
        },
        "details_url": URL,
        "installation_id": INSTALLATION,
    },
    required=("owner", "repo", "name", "head_sha"),
    output="GitHub's check run: {id, name, head_sha, status, conclusion, html_url, output, ...}",
)
async def create_check_run(connector: GitHub, data: dict[str, Any]) -> Any:
    segment(data["head_sha"], _SHA, "commit SHA")
    body = _given(data, "name", "head_sha", "status", "conclusion", "output", "details_url")
    return await connector.repo_json("POST", data, "/check-runs", body)


@action(
    "github.create_deployment",
    ConnectorKind.GITHUB,
    "Create a deployment of a ref to an environment.",
    {
        "owner": OWNER,
        "repo": REPO,
        "ref": TEXT,
        "environment": TEXT,
        "description": {"type": "string"},
        "payload": {"type": "object"},
        "auto_merge": {"type": "boolean"},
        "required_contexts": {"type": "array", "items": TEXT},
        "installation_id": INSTALLATION,
    },
    required=("owner", "repo", "ref", "environment"),
    output="GitHub's deployment: {id, sha, ref, environment, payload, statuses_url, ...}",
)
async def create_deployment(connector: GitHub, data: dict[str, Any]) -> Any:
    body = _given(
        data, "ref", "environment", "description", "payload", "auto_merge", "required_contexts"
    )
    return await connector.repo_json("POST", data, "/deployments", body)


@action(
    "github.create_deployment_status",
    ConnectorKind.GITHUB,
    "Record a deployment's state.",
    {
        "owner": OWNER,
        "repo": REPO,
        "deployment_id": POSITIVE,
        "state": {
            "enum": ["error", "failure", "inactive", "in_progress", "queued", "pending", "success"]
        },
        "environment_url": URL,
        "log_url": URL,
        "description": {"type": "string", "maxLength": 140},
        "installation_id": INSTALLATION,
    },
    required=("owner", "repo", "deployment_id", "state"),
    output="GitHub's deployment status: {id, state, environment, log_url, ...}",
)
async def create_deployment_status(connector: GitHub, data: dict[str, Any]) -> Any:
    rest = f"/deployments/{int(data['deployment_id'])}/statuses"
    body = _given(data, "state", "environment_url", "log_url", "description")
    return await connector.repo_json("POST", data, rest, body)


@action(
    "github.repository_dispatch",
    ConnectorKind.GITHUB,
    "Trigger the repository_dispatch event (workflows on: repository_dispatch).",
    {
        "owner": OWNER,
        "repo": REPO,
        "event_type": {"type": "string", "minLength": 1, "maxLength": 100},
        "client_payload": {"type": "object", "maxProperties": 10},
        "installation_id": INSTALLATION,
    },
    required=("owner", "repo", "event_type"),
    output='{"dispatched": true} (GitHub answers 204)',
)
async def repository_dispatch(connector: GitHub, data: dict[str, Any]) -> Any:
    body = _given(data, "event_type", "client_payload")
    await connector.repo_json("POST", data, "/dispatches", body)
    return {"dispatched": True}


@action(
    "github.request",
    ConnectorKind.GITHUB,
    "Any GitHub REST call, authenticated as the connector (for what no other action does).",
    {
        "method": {"enum": ["GET", "POST", "PATCH", "PUT", "DELETE"]},
        "path": {
            "type": "string",
            "pattern": r"^/",
            "maxLength": 2048,
            "description": "the API path, e.g. /repos/OWNER/REPO/pulls?state=open (no '..')",
        },
        "body": {"description": "the JSON body"},
        "installation_id": INSTALLATION,
    },
    required=("method", "path"),
    output="GitHub's JSON answer (null for an empty one)",
)
async def request(connector: GitHub, data: dict[str, Any]) -> Any:
    return await connector.request(data)
