"""The GitHub REST fake: App authentication, installation tokens, the repository endpoints the
connectors use, and the App hook deliveries API (github.com at ``/``, GHES at ``/api/v3``).

Authentication as GitHub does it: the ``/app...`` endpoints and
``GET /repos/{o}/{r}/installation`` take an App JWT (:mod:`ghapplets.fakes.github_jwt`); the
repository endpoints take an installation token (``Authorization: token ghs_...`` or
``Bearer ghs_...``) that ``POST /app/installations/{id}/access_tokens`` mints: a new one per
exchange, valid ``token_ttl`` seconds (an hour), counted per installation in
:attr:`GitHubFake.token_exchanges`. An unknown or expired token is "Bad credentials" (401); a
repository the token's installation cannot see is "Not Found" (404); a permission the token
lacks is "Resource not accessible by integration" (403).

Every answer carries GitHub's headers: ``X-RateLimit-Limit/-Remaining/-Reset/-Used/-Resource``
(``rate_limit`` requests an hour per token or App; past it, 403 "API rate limit exceeded"),
``X-GitHub-Request-Id``, ``X-GitHub-Media-Type``, ``X-GitHub-Api-Version-Selected`` and, under
``/api/v3``, ``X-GitHub-Enterprise-Version``. Errors are ``{"message", "documentation_url",
"status"}``, validation errors (422) with an ``errors`` list. An injected 403/429 with a
``retry_after`` is GitHub's secondary rate limit (``Retry-After``); without one, its primary
rate limit, spent: "API rate limit exceeded for ..." with ``X-RateLimit-Remaining: 0`` and the
credential's ``X-RateLimit-Reset``.
"""

from __future__ import annotations

import secrets
import string
import uuid
from collections import defaultdict
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

import httpx
import jwt
import orjson
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from ghapplets.exceptions import NotFound
from ghapplets.fakes.config import GitHubConfig
from ghapplets.fakes.core import (
    Clock,
    Fake,
    Fault,
    RecordedRequest,
    Refused,
    control_json,
    json_response,
)
from ghapplets.fakes.github_jwt import AppKey, JwtRejected, verify_app_jwt
from ghapplets.fakes.github_state import (
    App,
    HookDelivery,
    Installation,
    Issue,
    RedeliveryAttempt,
    Repo,
    Token,
    delivery_status,
    fake_sha,
    iso,
    node_id,
)
from ghapplets.fakes.webhooks import Webhook, deliver, hmac_sha1_hex, hmac_sha256

DOCS = "https://docs.github.com/rest"
RATE_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
SECONDARY_DOCS = f"{RATE_DOCS}#about-secondary-rate-limits"
API_VERSION = "2022-11-28"
GHES_PREFIX = "/api/v3"
GHES_VERSION = "3.14.0"
HOOK_ID = 460893012
ANONYMOUS_LIMIT = 60
LEVELS = {"read": 1, "write": 2, "admin": 3}
STATUS_STATES = ("error", "failure", "pending", "success")
CHECK_STATUSES = ("queued", "in_progress", "completed", "waiting", "requested", "pending")
CHECK_CONCLUSIONS = (
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "success",
    "skipped",
    "stale",
    "timed_out",
)
DEPLOYMENT_STATES = ("error", "failure", "inactive", "in_progress", "queued", "pending", "success")
_TOKEN_ALPHABET = string.ascii_letters + string.digits


@dataclass
class _Window:
    limit: int
    used: int
    reset: float


def _problem(resource: str, field: str, code: str, message: str | None = None) -> dict[str, str]:
    item = {"resource": resource, "field": field, "code": code}
    if message:
        item["message"] = message
    return item


class GitHubFake(Fake):
    """See the module docstring. State: :attr:`apps`, :attr:`installations`, :attr:`repos`
    (with what the API created), :attr:`tokens`, :attr:`token_exchanges`,
    :attr:`deliveries` and :attr:`redeliveries`."""

    name: ClassVar[str] = "github"

    def __init__(self, config: GitHubConfig | None = None, *, clock: Clock | None = None) -> None:
        self.config = config or GitHubConfig()
        self._keys: dict[str, AppKey] = {}
        for app in self.config.apps:
            pem = app.public_pem()
            if pem is None:
                raise ValueError(f"GitHub App {app.id} has no public key")
            key = AppKey.from_pem(app.id, app.client_id, pem)
            self._keys[str(app.id)] = key
            self._keys[app.client_id] = key
        super().__init__(clock=clock)

    # -- state ------------------------------------------------------------------------------------
    def reset_state(self) -> None:
        now = self.now()
        self.apps: dict[int, App] = {
            a.id: App(
                a.id,
                a.client_id,
                a.slug,
                a.name,
                a.owner,
                dict(a.permissions),
                list(a.events),
                a.webhook_secret,
                now,
            )
            for a in self.config.apps
        }
        self.repos: dict[str, Repo] = {}
        self.installations: dict[int, Installation] = {}
        for inst in self.config.installations:
            app = self.apps[inst.app_id or self.config.apps[0].id]
            self.installations[inst.id] = Installation(
                inst.id,
                app,
                inst.account,
                inst.account_type,
                list(inst.repositories),
                inst.repository_selection,
                dict(inst.permissions or app.permissions),
                inst.suspended,
                now,
            )
            for full_name in inst.repositories:
                self._ensure_repo(full_name)
        self._next_id = 3_000_000
        for issue in self.config.issues:
            self.add_issue(issue.repo, issue.number, issue.title, issue.body, issue.state)
        self.tokens: dict[str, Token] = {}
        self.token_exchanges: defaultdict[int, int] = defaultdict(int)
        self.deliveries: list[HookDelivery] = []
        self.redeliveries: list[RedeliveryAttempt] = []
        self._windows: dict[str, _Window] = {}

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _ensure_repo(self, full_name: str) -> Repo:
        key = full_name.lower()
        if key not in self.repos:
            owner, _, name = full_name.partition("/")
            if not owner or not name or "/" in name:
                raise ValueError(f"not an owner/name repository: {full_name!r}")
            self.repos[key] = Repo(owner, name, 1_296_269 + len(self.repos))
        return self.repos[key]

    def snapshot(self) -> dict[str, Any]:
        return {
            "token_exchanges": {str(k): v for k, v in self.token_exchanges.items()},
            "tokens": len(self.tokens),
            "repos": {
                r.full_name: {
                    "issues": {
                        str(n): {"title": i.title, "labels": r.labels_of(n)}
                        for n, i in r.issues.items()
                    },
                    "comments": r.comments,
                    "statuses": r.statuses,
                    "check_runs": r.check_runs,
                    "deployments": r.deployments,
                    "deployment_statuses": r.deployment_statuses,
                    "dispatches": r.dispatches,
                }
                for r in self.repos.values()
            },
            "deliveries": [d.summary_json() for d in self.deliveries],
            "redeliveries": [
                {"delivery_id": a.delivery_id, "new_delivery_id": a.new_delivery_id}
                for a in self.redeliveries
            ],
        }

    # -- the Python API ---------------------------------------------------------------------------
    def repo(self, full_name: str) -> Repo:
        """A repository's state (what the API created in it); :class:`NotFound` if unknown."""
        with self.lock:
            found = self.repos.get(full_name.lower())
        if found is None:
            raise NotFound(f"no repository {full_name!r} in the GitHub fake")
        return found

    def add_repo(self, full_name: str, installation_id: int | None = None) -> Repo:
        """Make a repository, visible to ``installation_id`` when given."""
        with self.lock:
            repo = self._ensure_repo(full_name)
            if installation_id is not None:
                inst = self.installations[installation_id]
                if repo.full_name not in inst.repositories:
                    inst.repositories.append(repo.full_name)
            return repo

    def add_issue(
        self,
        repo: str,
        number: int,
        title: str = "Example issue",
        body: str | None = None,
        state: str = "open",
    ) -> Issue:
        with self.lock:
            target = self._ensure_repo(repo)
            issue = Issue(number, self._new_id(), title, body, state, self.now())
            target.issues[number] = issue
            return issue

    def exchanges(self, installation_id: int) -> int:
        """How many installation tokens were minted for ``installation_id``."""
        with self.lock:
            return self.token_exchanges[installation_id]

    def expire_tokens(self, installation_id: int | None = None) -> int:
        """Expire every token (of one installation); how many were live."""
        now = self.now()
        count = 0
        with self.lock:
            for token in self.tokens.values():
                if installation_id in (None, token.installation_id) and token.expires_at > now:
                    token.expires_at = now
                    count += 1
        return count

    def add_delivery(
        self,
        event: str,
        *,
        action: str | None = None,
        payload: dict[str, Any] | None = None,
        status_code: int = 200,
        installation_id: int | None = None,
        repository_id: int | None = None,
        guid: str | None = None,
        redelivery: bool = False,
        delivered_at: float | None = None,
        duration: float = 0.31,
        app_id: int | None = None,
    ) -> HookDelivery:
        """Record a delivery GitHub made (nothing is sent): for the deliveries API."""
        body = dict(payload or {})
        if action is not None:
            body.setdefault("action", action)
        with self.lock:
            app = self._app(app_id)
            delivery = HookDelivery(
                id=self._new_id() * 10,
                guid=guid or str(uuid.uuid4()),
                delivered_at=self.now() if delivered_at is None else delivered_at,
                redelivery=redelivery,
                duration=duration,
                status=delivery_status(status_code, None if status_code else "no answer"),
                status_code=status_code,
                event=event,
                action=action,
                installation_id=installation_id,
                repository_id=repository_id,
                payload=body,
                url=self.config.webhook_url or "",
            )
            delivery.request_headers = self.webhook(event, body, delivery.guid, app.id).headers
            self.deliveries.append(delivery)
            return delivery

    def webhook(
        self, event: str, payload: dict[str, Any], guid: str, app_id: int | None = None
    ) -> Webhook:
        """The webhook GitHub would send for ``event``, signed with the App's webhook secret."""
        app = self._app(app_id)
        body = orjson.dumps(payload)
        headers = {
            "Accept": "*/*",
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/fake",
            "X-GitHub-Delivery": guid,
            "X-GitHub-Event": event,
            "X-GitHub-Hook-ID": str(HOOK_ID),
            "X-GitHub-Hook-Installation-Target-ID": str(app.id),
            "X-GitHub-Hook-Installation-Target-Type": "integration",
        }
        if app.webhook_secret:
            headers["X-Hub-Signature"] = "sha1=" + hmac_sha1_hex(app.webhook_secret, body)
            headers["X-Hub-Signature-256"] = "sha256=" + hmac_sha256(app.webhook_secret, body)
        return Webhook(self.config.webhook_url or "", headers, body)

    async def send_webhook(
        self,
        event: str,
        payload: dict[str, Any],
        *,
        installation_id: int | None = None,
        app_id: int | None = None,
        guid: str | None = None,
        url: str | None = None,
        client: httpx.AsyncClient | None = None,
        redelivery: bool = False,
    ) -> HookDelivery:
        """Send a webhook as GitHub does (to ``url``, default ``webhook_url``) and record the
        delivery with the answer it got, as the deliveries API then lists it."""
        body = dict(payload)
        if installation_id is not None and "installation" not in body:
            body["installation"] = {
                "id": installation_id,
                "node_id": node_id("MDIz", installation_id),
            }
        with self.lock:
            hook = self.webhook(event, body, guid or str(uuid.uuid4()), app_id)
        outcome = await deliver(hook, url=url, client=client)
        action = body.get("action")
        repo_id = (
            body.get("repository", {}).get("id")
            if isinstance(body.get("repository"), dict)
            else None
        )
        with self.lock:
            delivery = HookDelivery(
                id=self._new_id() * 10,
                guid=hook.headers["X-GitHub-Delivery"],
                delivered_at=self.now(),
                redelivery=redelivery,
                duration=outcome.duration,
                status=delivery_status(outcome.status_code, outcome.error),
                status_code=outcome.status_code,
                event=event,
                action=action if isinstance(action, str) else None,
                installation_id=installation_id,
                repository_id=repo_id if isinstance(repo_id, int) else None,
                payload=body,
                request_headers=hook.headers,
                response_body=outcome.body.decode("utf-8", "replace"),
                url=outcome.url,
            )
            self.deliveries.append(delivery)
        return delivery

    def _app(self, app_id: int | None) -> App:
        if app_id is None:
            return next(iter(self.apps.values()))
        return self.apps[app_id]

    # -- errors and headers -----------------------------------------------------------------------
    def error(
        self,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
        *,
        errors: list[dict[str, str]] | None = None,
        documentation_url: str = DOCS,
    ) -> Response:
        body: dict[str, Any] = {"message": message, "documentation_url": documentation_url}
        if errors:
            body["errors"] = errors
        body["status"] = str(status)
        return json_response(body, status, headers)

    def _refuse(self, status: int, message: str, **kw: Any) -> Refused:
        return Refused(self.error(status, message, **kw))

    def _invalid(self, *problems: dict[str, str]) -> Refused:
        return self._refuse(422, "Validation Failed", errors=list(problems))

    def fault_response(self, fault: Fault, request: RecordedRequest) -> Response:
        status = fault.status or 503
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        elif status in (403, 429):
            return self._rate_limit_spent(status, request)
        if status in (403, 429):
            rid = self._request_id()
            return self.error(
                status,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you "
                f"try again. If you reach out to GitHub Support for help, please include the "
                f"request ID {rid}.",
                headers,
                documentation_url=SECONDARY_DOCS,
            )
        if status == 401:
            return self.error(401, "Bad credentials", headers)
        message = "Server Error" if status == 500 else HTTPStatus(status).phrase
        return self.error(status, message, headers)

    def _rate_limit_spent(self, status: int, request: RecordedRequest) -> Response:
        """The primary rate limit's answer, as if the credential's window were spent."""
        with self.lock:
            key, limit = self._rate_key(request.headers.get("authorization"))
            reset = self._window(key, limit).reset
        kind, _, ident = key.partition(":")
        headers = {
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Used": str(limit),
            "X-RateLimit-Reset": str(int(reset)),
        }
        what = f"{kind} ID {ident}" if ident else "this IP address"
        return self.error(
            status, f"API rate limit exceeded for {what}.", headers, documentation_url=RATE_DOCS
        )

    def answer_headers(self, request: RecordedRequest) -> dict[str, str]:
        with self.lock:
            key, limit = self._rate_key(request.headers.get("authorization"))
            window = self._window(key, limit)
        headers = {
            "X-GitHub-Api-Version-Selected": API_VERSION,
            "X-GitHub-Media-Type": "github.v3; format=json",
            "X-GitHub-Request-Id": self._request_id(),
            "X-RateLimit-Limit": str(window.limit),
            "X-RateLimit-Remaining": str(max(0, window.limit - window.used)),
            "X-RateLimit-Reset": str(int(window.reset)),
            "X-RateLimit-Used": str(window.used),
            "X-RateLimit-Resource": "core",
        }
        if request.path.startswith(GHES_PREFIX + "/"):
            headers["X-GitHub-Enterprise-Version"] = GHES_VERSION
        return headers

    @staticmethod
    def _request_id() -> str:
        return ":".join(secrets.token_hex(n).upper() for n in (2, 3, 4, 4, 4))

    # -- rate limits and authentication -----------------------------------------------------------
    def _rate_key(self, authorization: str | None) -> tuple[str, int]:
        credential = _credential(authorization)
        if credential:
            token = self.tokens.get(credential)
            if token is not None:
                return f"installation:{token.installation_id}", self.config.rate_limit
            if credential.count(".") == 2:
                try:
                    iss = jwt.decode(credential, options={"verify_signature": False}).get("iss")
                except jwt.PyJWTError:
                    iss = None
                app = self._keys.get(str(iss))
                if app is not None:
                    return f"app:{app.app_id}", self.config.rate_limit
        return "anonymous", ANONYMOUS_LIMIT

    def _window(self, key: str, limit: int) -> _Window:
        now = self.now()
        window = self._windows.get(key)
        if window is None or window.reset <= now:
            window = self._windows[key] = _Window(limit, 0, now + 3600)
        return window

    def _consume(self, key: str, what: str) -> None:
        window = self._window(key, self.config.rate_limit)
        if window.used >= window.limit:
            raise self._refuse(
                403, f"API rate limit exceeded for {what}.", documentation_url=RATE_DOCS
            )
        window.used += 1

    def _app_auth(self, request: Request) -> App:
        credential = _credential(request.headers.get("authorization"))
        if not credential:
            raise self._refuse(401, "A JSON web token could not be decoded")
        try:
            key = verify_app_jwt(
                credential,
                self._keys,
                now=self.now(),
                max_age=self.config.jwt_max_age,
                leeway=self.config.jwt_leeway,
            )
        except JwtRejected as exc:
            raise self._refuse(401, str(exc)) from None
        self._consume(f"app:{key.app_id}", f"app ID {key.app_id}")
        return self.apps[key.app_id]

    def _token_auth(self, request: Request) -> tuple[Installation, Token]:
        authorization = request.headers.get("authorization")
        if not authorization:
            raise self._refuse(401, "Requires authentication")
        token = self.tokens.get(_credential(authorization) or "")
        if token is None or token.expires_at <= self.now():
            raise self._refuse(401, "Bad credentials")
        inst = self.installations[token.installation_id]
        if inst.suspended:
            raise self._refuse(403, "This installation has been suspended")
        self._consume(f"installation:{inst.id}", f"installation ID {inst.id}")
        return inst, token

    def _repo_for(self, request: Request, inst: Installation, token: Token) -> Repo:
        full_name = f"{request.path_params['owner']}/{request.path_params['repo']}"
        repo = self.repos.get(full_name.lower())
        visible = repo is not None and repo.full_name.lower() in {
            r.lower() for r in inst.repositories
        }
        if visible and token.repositories is not None:
            visible = full_name.lower() in {r.lower() for r in token.repositories}
        if repo is None or not visible:
            raise self._refuse(404, "Not Found")
        return repo

    def _require(self, token: Token, permission: str, level: str = "write") -> None:
        have = LEVELS.get(token.permissions.get(permission, ""), 0)
        if have < LEVELS[level]:
            raise self._refuse(403, "Resource not accessible by integration")

    def _json(self, raw: bytes) -> Any:
        """The body as JSON, read once the request is authenticated (GitHub's order)."""
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise self._refuse(400, "Problems parsing JSON") from None

    def _object(self, raw: bytes) -> dict[str, Any]:
        doc = self._json(raw)
        if not isinstance(doc, dict):
            raise self._refuse(400, "Problems parsing JSON")
        return doc

    def _roots(self, request: Request) -> tuple[str, str]:
        """``(web, api)``: the origin, and the API root the request came through."""
        origin = f"{request.url.scheme}://{request.url.netloc}"
        ghes = request.url.path.startswith(GHES_PREFIX + "/")
        return origin, origin + GHES_PREFIX if ghes else origin

    # -- routes -----------------------------------------------------------------------------------
    def vendor_routes(self) -> list[BaseRoute]:
        return [Mount(GHES_PREFIX, routes=self._api_routes()), *self._api_routes()]

    def _api_routes(self) -> list[BaseRoute]:
        repo = "/repos/{owner}/{repo}"
        return [
            Route("/app", self._get_app, methods=["GET"]),
            Route("/app/installations", self._list_installations, methods=["GET"]),
            Route(
                "/app/installations/{installation_id:int}", self._get_installation, methods=["GET"]
            ),
            Route(
                "/app/installations/{installation_id:int}/access_tokens",
                self._access_token,
                methods=["POST"],
            ),
            Route("/app/hook/deliveries", self._list_deliveries, methods=["GET"]),
            Route("/app/hook/deliveries/{delivery_id:int}", self._get_delivery, methods=["GET"]),
            Route(
                "/app/hook/deliveries/{delivery_id:int}/attempts", self._redeliver, methods=["POST"]
            ),
            Route("/installation/repositories", self._installation_repos, methods=["GET"]),
            Route(f"{repo}/installation", self._repo_installation, methods=["GET"]),
            Route(f"{repo}/issues/{{number:int}}", self._get_issue, methods=["GET"]),
            Route(f"{repo}/issues/{{number:int}}/comments", self._create_comment, methods=["POST"]),
            Route(f"{repo}/issues/{{number:int}}/labels", self._labels, methods=["GET", "POST"]),
            Route(f"{repo}/statuses/{{sha}}", self._create_status, methods=["POST"]),
            Route(f"{repo}/check-runs", self._create_check_run, methods=["POST"]),
            Route(f"{repo}/deployments", self._create_deployment, methods=["POST"]),
            Route(
                f"{repo}/deployments/{{deployment_id:int}}/statuses",
                self._create_deployment_status,
                methods=["POST"],
            ),
            Route(f"{repo}/dispatches", self._dispatch, methods=["POST"]),
        ]

    # -- App endpoints (JWT) ----------------------------------------------------------------------
    async def _get_app(self, request: Request) -> Response:
        web, api = self._roots(request)
        with self.lock:
            app = self._app_auth(request)
            body = app.to_json(web, api)
            body["installations_count"] = sum(
                1 for i in self.installations.values() if i.app.id == app.id
            )
        return json_response(body)

    async def _list_installations(self, request: Request) -> Response:
        web, api = self._roots(request)
        with self.lock:
            app = self._app_auth(request)
            found = [i.to_json(web, api) for i in self.installations.values() if i.app.id == app.id]
        return json_response(found)

    def _own_installation(self, request: Request, app: App) -> Installation:
        inst = self.installations.get(request.path_params["installation_id"])
        if inst is None or inst.app.id != app.id:
            raise self._refuse(404, "Not Found")
        return inst

    async def _get_installation(self, request: Request) -> Response:
        web, api = self._roots(request)
        with self.lock:
            inst = self._own_installation(request, self._app_auth(request))
            return json_response(inst.to_json(web, api))

    async def _access_token(self, request: Request) -> Response:
        web, api = self._roots(request)
        raw = await request.body()
        with self.lock:
            inst = self._own_installation(request, self._app_auth(request))
            doc = self._object(raw) if raw.strip() else {}
            if inst.suspended:
                raise self._refuse(403, "This installation has been suspended")
            repositories = self._token_repositories(inst, doc)
            permissions = self._token_permissions(inst, doc.get("permissions"))
            token = Token(
                "ghs_" + "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(36)),
                inst.id,
                self.now() + self.config.token_ttl,
                permissions,
                repositories,
            )
            self.tokens[token.token] = token
            self.token_exchanges[inst.id] += 1
            body: dict[str, Any] = {
                "token": token.token,
                "expires_at": iso(token.expires_at),
                "permissions": permissions,
                "repository_selection": "selected"
                if repositories is not None
                else inst.repository_selection,
            }
            if repositories is not None:
                body["repositories"] = [
                    self.repos[r.lower()].to_json(web, api) for r in repositories
                ]
        return json_response(body, 201)

    def _token_repositories(self, inst: Installation, doc: dict[str, Any]) -> list[str] | None:
        names, ids = doc.get("repositories"), doc.get("repository_ids")
        if names is None and ids is None:
            return None
        visible = {r.lower(): self.repos[r.lower()] for r in inst.repositories}
        chosen: list[str] = []
        for name in names or []:
            full = f"{inst.account}/{name}".lower() if isinstance(name, str) else ""
            if full not in visible:
                raise self._refuse(
                    422,
                    "There is at least one repository that does not exist or is not "
                    "accessible to the parent installation.",
                )
            chosen.append(visible[full].full_name)
        by_id = {r.id: r for r in visible.values()}
        for id_ in ids or []:
            if id_ not in by_id:
                raise self._refuse(
                    422,
                    "There is at least one repository that does not exist or is not "
                    "accessible to the parent installation.",
                )
            chosen.append(by_id[id_].full_name)
        return chosen

    def _token_permissions(self, inst: Installation, asked: Any) -> dict[str, str]:
        if asked is None:
            return dict(inst.permissions)
        if not isinstance(asked, dict) or not all(
            isinstance(v, str) and v in LEVELS for v in asked.values()
        ):
            raise self._refuse(422, "The permissions requested are not valid.")
        for name, level in asked.items():
            if LEVELS.get(inst.permissions.get(name, ""), 0) < LEVELS[level]:
                raise self._refuse(
                    422, "The permissions requested are not granted to this installation."
                )
        return dict(asked)

    async def _repo_installation(self, request: Request) -> Response:
        web, api = self._roots(request)
        full = f"{request.path_params['owner']}/{request.path_params['repo']}".lower()
        with self.lock:
            app = self._app_auth(request)
            for inst in self.installations.values():
                if inst.app.id == app.id and full in {r.lower() for r in inst.repositories}:
                    return json_response(inst.to_json(web, api))
        raise self._refuse(404, "Not Found")

    # -- hook deliveries --------------------------------------------------------------------------
    async def _list_deliveries(self, request: Request) -> Response:
        _, api = self._roots(request)
        params = request.query_params
        try:
            per_page = min(max(int(params.get("per_page", "30")), 1), 100)
        except ValueError:
            raise self._refuse(422, "Invalid per_page") from None
        cursor = params.get("cursor")
        after: int | None = None
        if cursor:
            if not cursor.startswith("v1_") or not cursor[3:].isdigit():
                raise self._refuse(422, "Invalid cursor")
            after = int(cursor[3:])
        wanted = params.get("status")
        with self.lock:
            self._app_auth(request)
            found = sorted(self.deliveries, key=lambda d: d.id, reverse=True)
        if wanted == "success":
            found = [d for d in found if not d.failed]
        elif wanted == "failure":
            found = [d for d in found if d.failed]
        if after is not None:
            found = [d for d in found if d.id < after]
        page, more = found[:per_page], len(found) > per_page
        headers = {}
        if more:
            query = f"per_page={per_page}&cursor=v1_{page[-1].id}"
            if wanted:
                query += f"&status={wanted}"
            headers["Link"] = f'<{api}/app/hook/deliveries?{query}>; rel="next"'
        return json_response([d.summary_json() for d in page], headers=headers)

    def _delivery(self, request: Request) -> HookDelivery:
        wanted = request.path_params["delivery_id"]
        for delivery in self.deliveries:
            if delivery.id == wanted:
                return delivery
        raise self._refuse(404, "Not Found")

    async def _get_delivery(self, request: Request) -> Response:
        with self.lock:
            self._app_auth(request)
            return json_response(self._delivery(request).full_json())

    async def _redeliver(self, request: Request) -> Response:
        with self.lock:
            app = self._app_auth(request)
            original = self._delivery(request)
            attempt = RedeliveryAttempt(original.id, self.now())
            self.redeliveries.append(attempt)
        task = None
        if self.config.webhook_url:
            task = BackgroundTask(self._send_again, original, attempt, app.id)
        return _accepted(task)

    async def _send_again(
        self, original: HookDelivery, attempt: RedeliveryAttempt, app_id: int
    ) -> None:
        delivery = await self.send_webhook(
            original.event,
            original.payload,
            app_id=app_id,
            guid=original.guid,
            installation_id=original.installation_id,
            redelivery=True,
        )
        with self.lock:
            attempt.new_delivery_id = delivery.id

    # -- installation endpoints -------------------------------------------------------------------
    async def _installation_repos(self, request: Request) -> Response:
        web, api = self._roots(request)
        with self.lock:
            inst, token = self._token_auth(request)
            names = token.repositories if token.repositories is not None else inst.repositories
            repos = [self.repos[n.lower()].to_json(web, api) for n in names]
        return json_response({"total_count": len(repos), "repositories": repos})

    def _issue(self, repo: Repo, request: Request) -> Issue:
        issue = repo.issues.get(request.path_params["number"])
        if issue is None:
            raise self._refuse(404, "Not Found")
        return issue

    async def _get_issue(self, request: Request) -> Response:
        web, api = self._roots(request)
        with self.lock:
            inst, token = self._token_auth(request)
            repo = self._repo_for(request, inst, token)
            self._require(token, "issues", "read")
            return json_response(repo.issue_json(self._issue(repo, request), web, api))

    async def _create_comment(self, request: Request) -> Response:
        web, api = self._roots(request)
        raw = await request.body()
        with self.lock:
            inst, token = self._token_auth(request)
            repo = self._repo_for(request, inst, token)
            self._require(token, "issues")
            doc = self._object(raw)
            issue = self._issue(repo, request)
            body = doc.get("body")
            if not isinstance(body, str) or not body:
                raise self._invalid(_problem("IssueComment", "body", "missing_field"))
            now = iso(self.now())
            id_ = self._new_id()
            comment = {
                "id": id_,
                "node_id": node_id("IC", id_),
                "url": f"{api}/repos/{repo.full_name}/issues/comments/{id_}",
                "html_url": f"{web}/{repo.full_name}/issues/{issue.number}#issuecomment-{id_}",
                "body": body,
                "user": inst.app.bot(web, api),
                "created_at": now,
                "updated_at": now,
                "issue_url": f"{api}/repos/{repo.full_name}/issues/{issue.number}",
                "author_association": "NONE",
                "performed_via_github_app": inst.app.to_json(web, api),
            }
            repo.comments.append(comment)
            issue.comments += 1
        return json_response(comment, 201)

    async def _labels(self, request: Request) -> Response:
        _, api = self._roots(request)
        raw = await request.body()
        with self.lock:
            inst, token = self._token_auth(request)
            repo = self._repo_for(request, inst, token)
            self._require(token, "issues", "write" if request.method == "POST" else "read")
            issue = self._issue(repo, request)
            if request.method == "POST":
                for name in _label_names(self._json(raw), self._invalid):
                    if name not in repo.labels_of(issue.number):
                        id_ = self._new_id()
                        issue.labels.append(
                            {
                                "id": id_,
                                "node_id": node_id("LA", id_),
                                "url": f"{api}/repos/{repo.full_name}/labels/{name}",
                                "name": name,
                                "description": None,
                                "color": "ededed",
                                "default": False,
                            }
                        )
            return json_response(list(issue.labels))

    async def _create_status(self, request: Request) -> Response:
        web, api = self._roots(request)
        raw = await request.body()
        sha = request.path_params["sha"]
        with self.lock:
            inst, token = self._token_auth(request)
            repo = self._repo_for(request, inst, token)
            self._require(token, "statuses")
            doc = self._object(raw)
            if not 7 <= len(sha) <= 40 or any(c not in "0123456789abcdef" for c in sha.lower()):
                raise self._refuse(422, f"No commit found for SHA: {sha}")
            state = doc.get("state")
            if state is None:
                raise self._invalid(_problem("Status", "state", "missing_field"))
            if state not in STATUS_STATES:
                raise self._invalid(
                    _problem("Status", "state", "custom", "state is not included in the list")
                )
            now = iso(self.now())
            id_ = self._new_id()
            status = {
                "url": f"{api}/repos/{repo.full_name}/statuses/{sha}",
                "avatar_url": f"{web}/avatars/u/{id_}",
                "id": id_,
                "node_id": node_id("SC", id_),
                "state": state,
                "description": doc.get("description"),
                "target_url": doc.get("target_url"),
                "context": doc.get("context") or "default",
                "created_at": now,
                "updated_at": now,
                "creator": inst.app.bot(web, api),
                "sha": sha,
            }
            repo.statuses.append(status)
        return json_response({k: v for k, v in status.items() if k != "sha"}, 201)

    async def _create_check_run(self, request: Request) -> Response:
        web, api = self._roots(request)
        raw = await request.body()
        with self.lock:
            inst, token = self._token_auth(request)
            repo = self._repo_for(request, inst, token)
            self._require(token, "checks")
            doc = self._object(raw)
            missing = [f for f in ("name", "head_sha") if not isinstance(doc.get(f), str)]
            if missing:
                raise self._invalid(*(_problem("CheckRun", f, "missing_field") for f in missing))
            status = doc.get("status", "completed" if doc.get("conclusion") else "queued")
            conclusion = doc.get("conclusion")
            if status not in CHECK_STATUSES:
                raise self._invalid(_problem("CheckRun", "status", "invalid"))
            if conclusion is not None and conclusion not in CHECK_CONCLUSIONS:
                raise self._invalid(_problem("CheckRun", "conclusion", "invalid"))
            if (status == "completed" or doc.get("completed_at")) and conclusion is None:
                raise self._invalid(
                    _problem(
                        "CheckRun",
                        "conclusion",
                        "missing_field",
                        "conclusion is required when status is completed",
                    )
                )
            now = iso(self.now())
            id_ = self._new_id()
            given = doc.get("output")
            output: dict[str, Any] = given if isinstance(given, dict) else {}
            run = {
                "id": id_,
                "head_sha": doc["head_sha"],
                "node_id": node_id("CR", id_),
                "external_id": doc.get("external_id", ""),
                "url": f"{api}/repos/{repo.full_name}/check-runs/{id_}",
                "html_url": f"{web}/{repo.full_name}/runs/{id_}",
                "details_url": doc.get("details_url"),
                "status": status,
                "conclusion": conclusion,
                "started_at": doc.get("started_at", now),
                "completed_at": doc.get("completed_at", now if status == "completed" else None),
                "output": {
                    "title": output.get("title"),
                    "summary": output.get("summary"),
                    "text": output.get("text"),
                    "annotations_count": len(output.get("annotations") or []),
                    "annotations_url": f"{api}/repos/{repo.full_name}/check-runs/{id_}/annotations",
                },
                "name": doc["name"],
                "check_suite": {"id": id_ + 1},
                "app": inst.app.to_json(web, api),
                "pull_requests": [],
            }
            repo.check_runs.append(run)
        return json_response(run, 201)

    async def _create_deployment(self, request: Request) -> Response:
        web, api = self._roots(request)
        raw = await request.body()
        with self.lock:
            inst, token = self._token_auth(request)
            repo = self._repo_for(request, inst, token)
            self._require(token, "deployments")
            doc = self._object(raw)
            ref = doc.get("ref")
            if not isinstance(ref, str) or not ref:
                raise self._invalid(_problem("Deployment", "ref", "missing_field"))
            payload = doc.get("payload", {})
            if isinstance(payload, str):
                try:
                    payload = orjson.loads(payload) if payload else {}
                except orjson.JSONDecodeError:
                    raise self._invalid(_problem("Deployment", "payload", "invalid")) from None
            now = iso(self.now())
            id_ = self._new_id()
            environment = doc.get("environment") or "production"
            url = f"{api}/repos/{repo.full_name}/deployments/{id_}"
            deployment = {
                "url": url,
                "id": id_,
                "node_id": node_id("DE", id_),
                "sha": fake_sha(ref),
                "ref": ref,
                "task": doc.get("task") or "deploy",
                "payload": payload,
                "original_environment": environment,
                "environment": environment,
                "description": doc.get("description"),
                "creator": inst.app.bot(web, api),
                "created_at": now,
                "updated_at": now,
                "statuses_url": f"{url}/statuses",
                "repository_url": f"{api}/repos/{repo.full_name}",
                "transient_environment": bool(doc.get("transient_environment", False)),
                "production_environment": bool(
                    doc.get("production_environment", environment == "production")
                ),
                "performed_via_github_app": inst.app.to_json(web, api),
            }
            repo.deployments.append(deployment)
        return json_response(deployment, 201)

    async def _create_deployment_status(self, request: Request) -> Response:
        web, api = self._roots(request)
        raw = await request.body()
        wanted = request.path_params["deployment_id"]
        with self.lock:
            inst, token = self._token_auth(request)
            repo = self._repo_for(request, inst, token)
            self._require(token, "deployments")
            doc = self._object(raw)
            deployment = next((d for d in repo.deployments if d["id"] == wanted), None)
            if deployment is None:
                raise self._refuse(404, "Not Found")
            state = doc.get("state")
            if state is None:
                raise self._invalid(_problem("DeploymentStatus", "state", "missing_field"))
            if state not in DEPLOYMENT_STATES:
                raise self._invalid(_problem("DeploymentStatus", "state", "invalid"))
            now = iso(self.now())
            id_ = self._new_id()
            status = {
                "url": f"{deployment['url']}/statuses/{id_}",
                "id": id_,
                "node_id": node_id("DES", id_),
                "state": state,
                "creator": inst.app.bot(web, api),
                "description": doc.get("description", ""),
                "environment": doc.get("environment") or deployment["environment"],
                "target_url": doc.get("target_url") or doc.get("log_url") or "",
                "log_url": doc.get("log_url") or doc.get("target_url") or "",
                "environment_url": doc.get("environment_url", ""),
                "created_at": now,
                "updated_at": now,
                "deployment_url": deployment["url"],
                "repository_url": f"{api}/repos/{repo.full_name}",
                "performed_via_github_app": inst.app.to_json(web, api),
                "deployment_id": wanted,
            }
            repo.deployment_statuses.append(status)
        return json_response({k: v for k, v in status.items() if k != "deployment_id"}, 201)

    async def _dispatch(self, request: Request) -> Response:
        raw = await request.body()
        with self.lock:
            inst, token = self._token_auth(request)
            repo = self._repo_for(request, inst, token)
            self._require(token, "contents")
            doc = self._object(raw)
            event_type = doc.get("event_type")
            if not isinstance(event_type, str) or not 1 <= len(event_type) <= 100:
                raise self._invalid(_problem("Repository", "event_type", "missing_field"))
            client_payload = doc.get("client_payload", {})
            if not isinstance(client_payload, dict):
                raise self._invalid(_problem("Repository", "client_payload", "invalid"))
            if len(client_payload) > 10:
                raise self._refuse(
                    422,
                    "Invalid request.\n\nNo more than 10 properties are allowed; "
                    f"{len(client_payload)} were supplied.",
                )
            repo.dispatches.append({"event_type": event_type, "client_payload": client_payload})
        return Response(status_code=204)

    # -- control ----------------------------------------------------------------------------------
    def control_routes(self) -> list[BaseRoute]:
        return [
            Route("/_fakes/deliveries", self._c_add_delivery, methods=["POST"]),
            Route("/_fakes/webhooks", self._c_send_webhook, methods=["POST"]),
            Route("/_fakes/issues", self._c_add_issue, methods=["POST"]),
            Route("/_fakes/tokens/expire", self._c_expire, methods=["POST"]),
        ]

    async def _c_add_delivery(self, request: Request) -> Response:
        doc = await control_json(request)
        try:
            delivery = self.add_delivery(
                str(doc["event"]),
                action=doc.get("action"),
                payload=doc.get("payload"),
                status_code=int(doc.get("status_code", 200)),
                installation_id=doc.get("installation_id"),
                repository_id=doc.get("repository_id"),
                guid=doc.get("guid"),
                redelivery=bool(doc.get("redelivery", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            return json_response({"error": f"bad delivery: {exc}"}, 422)
        return json_response(delivery.summary_json(), 201)

    async def _c_send_webhook(self, request: Request) -> Response:
        doc = await control_json(request)
        if not isinstance(doc.get("event"), str) or not isinstance(doc.get("payload"), dict):
            return json_response({"error": "event (string) and payload (object) are required"}, 422)
        delivery = await self.send_webhook(
            doc["event"],
            doc["payload"],
            installation_id=doc.get("installation_id"),
            url=doc.get("url"),
        )
        return json_response(delivery.summary_json(), 201)

    async def _c_add_issue(self, request: Request) -> Response:
        doc = await control_json(request)
        try:
            issue = self.add_issue(
                str(doc["repo"]),
                int(doc["number"]),
                str(doc.get("title", "Example issue")),
                doc.get("body"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            return json_response({"error": f"bad issue: {exc}"}, 422)
        return json_response({"number": issue.number, "id": issue.id}, 201)

    async def _c_expire(self, request: Request) -> Response:
        doc = await control_json(request)
        return json_response({"expired": self.expire_tokens(doc.get("installation_id"))})


def _credential(authorization: str | None) -> str | None:
    """The token of ``Authorization: token X`` or ``Bearer X``."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() not in ("token", "bearer") or not value.strip():
        return None
    return value.strip()


def _label_names(doc: Any, invalid: Any) -> list[str]:
    """The label names of any body GitHub takes: ``{"labels": [...]}`` or a bare list, of
    names or ``{"name": ...}`` objects."""
    items = doc.get("labels") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise invalid(_problem("Label", "labels", "missing_field"))
    names: list[str] = []
    for item in items:
        name = item.get("name") if isinstance(item, dict) else item
        if not isinstance(name, str) or not name.strip():
            raise invalid(_problem("Label", "name", "invalid"))
        names.append(name)
    return names


def _accepted(task: BackgroundTask | None) -> Response:
    """202 with an empty JSON object, running ``task`` after the answer is sent."""
    return Response(
        orjson.dumps({}),
        status_code=202,
        media_type="application/json; charset=utf-8",
        background=task,
    )
