"""The GitHub connector's githubkit side: its clients, how they authenticate, and its errors.

Every request of the GitHub connector, a catalog action's and ``ctx.github``'s, is sent by
githubkit's async client: the actions with ``arequest`` (GitHub's JSON is their output, under
the API version :data:`API_VERSION`), an applet with anything githubkit offers (the typed
``rest`` API, ``arequest``, ``paginate``, ``graphql``). This module is imported when a GitHub
connector opens, not with the catalog, so a project without one never loads githubkit.

Authentication stays the connector's (:mod:`ghapplets.connectors.github`), lent to githubkit as
httpx auth flows (:class:`Lent`):

- :class:`BearerToken`: the connector's ``token``;
- :class:`AppJwt`: a fresh App JWT on each request (the ``/app`` endpoints, the installation
  lookups and the token exchanges);
- :class:`InstallationToken`: the installation's token from the connector's cache (memory,
  then the store every process shares, so one token is minted per installation between them);
  a 401 on it replaces it once and sends the request again.

githubkit's own App auth is not used: it would mint and keep installation tokens in a cache of
its process, not in the store.

The clients are made with ``auto_retry=False``: nothing sleeps in the process, a retry is the
job's, not before the ``retry_after`` an :class:`~ghapplets.exceptions.ActionUnavailable`
carries; and with ``http_cache=False``. Outside ``async with``, githubkit opens a short-lived
httpx client for each request; they all send through :class:`Borrowed`, the connector's
long-lived client, so connections are pooled and the environment's proxy and CA settings apply.

:func:`action_error` maps githubkit's exceptions onto the actions' errors (the mapping of every
vendor, :func:`~ghapplets.connectors.http.vendor_error`, plus GitHub's rate limits).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from githubkit import GitHub, GitHubCore, Response
from githubkit.auth.base import BaseAuthStrategy
from githubkit.exception import GitHubException, RequestError, RequestFailed, RequestTimeout

from ghapplets.connectors.github import API_VERSION, VENDOR, rate_limited, repository_of
from ghapplets.connectors.http import vendor_error
from ghapplets.exceptions import ActionUnavailable, AppletError

if TYPE_CHECKING:
    from ghapplets.connectors.github import GitHub as GitHubConnector

USER_AGENT = "ghapplets"
API_HEADERS = {"X-GitHub-Api-Version": API_VERSION}


class Borrowed(httpx.AsyncBaseTransport):
    """A transport that sends through ``client``, a long-lived one: closing the short-lived
    client githubkit made for one request leaves ``client`` and its connections open."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.client.send(request, stream=True)


@dataclass(frozen=True)
class Lent(BaseAuthStrategy):
    """A githubkit auth strategy for an httpx auth flow of ours."""

    auth: httpx.Auth

    def get_auth_flow(self, github: GitHubCore[Any]) -> httpx.Auth:
        return self.auth


class BearerToken(httpx.Auth):
    """The connector's ``token``, as a bearer token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


class AppJwt(httpx.Auth):
    """A fresh App JWT on each request (:meth:`GitHubConnector.app_jwt`)."""

    def __init__(self, connector: GitHubConnector) -> None:
        self.connector = connector

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.connector.app_jwt()}"
        yield request


class InstallationToken(httpx.Auth):
    """The token of the App installation ``installation_id``, else of the connector's
    ``installation_id``, else of the installation GitHub names for the request's repository
    (a path under ``/repos/OWNER/REPO``); without any, :class:`ActionInputInvalid` ending with
    ``hint``. Asynchronous only: a token may have to be minted."""

    requires_request_body = True  # a request refused with a stale token is sent again

    def __init__(
        self, connector: GitHubConnector, installation_id: int | None, *, hint: str
    ) -> None:
        self.connector = connector
        self.installation_id = installation_id
        self.hint = hint

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError(
            "a GitHub App's installation token is minted asynchronously: use githubkit's async "
            "methods (await ...async_create_comment(...), await ....arequest(...))"
        )
        yield request  # pragma: no cover - makes this a generator

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        connector = self.connector
        owner, repo = repository_of(route(request.url, connector.base_path))
        installation = await connector.installation(
            self.installation_id, owner, repo, hint=self.hint
        )
        token = await connector.installation_token(installation)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:  # revoked, or expired early: a new one, once
            token = await connector.installation_token(installation, stale=token)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request


def route(url: httpx.URL, base_path: str) -> str:
    """``url``'s path and query under the API root ``base_path`` (``/``, or ``/api/v3/`` on
    GHES), from ``/``."""
    raw = url.raw_path.decode("ascii")
    return "/" + raw[len(base_path) :] if raw.startswith(base_path) else raw


def action_error(exc: GitHubException, base_path: str = "/") -> AppletError | None:
    """The action error a githubkit exception stands for: GitHub's error answer (rate limits
    included) as :func:`~ghapplets.connectors.http.vendor_error` tells it, a timeout or no
    connection as :class:`ActionUnavailable`, and our own error raised in an auth flow (no
    installation to act as, a token exchange GitHub refused) as it is. None for anything
    else."""
    if isinstance(exc, RequestFailed):  # rate limits (githubkit's RateLimitExceeded) too
        request = exc.request
        return vendor_error(
            VENDOR,
            request.method,
            route(request.url, base_path),
            exc.response.raw_response,
            rate_limited=rate_limited,
        )
    if isinstance(exc, RequestTimeout):
        path = route(exc.request.url, base_path)
        return ActionUnavailable(f"{VENDOR} did not answer {exc.request.method} {path} in time")
    if isinstance(exc, RequestError):
        cause = exc.exc
        if isinstance(cause, AppletError):
            return cause
        if isinstance(cause, httpx.TransportError):
            return ActionUnavailable(f"cannot reach {VENDOR}: {type(cause).__name__}")
    return None


class Clients:
    """The githubkit clients of one GitHub connector, all sending through its connection
    pool: :attr:`app` as the App (JWT), and :meth:`of` as the token or an installation."""

    def __init__(self, connector: GitHubConnector) -> None:
        self.connector = connector
        self.pool = httpx.AsyncClient(timeout=connector.config.timeout, follow_redirects=False)
        # its own client, and so its own throttle: a token exchange made while an installation
        # request waits in its auth flow never waits for that request's slot
        self.app = self._client(AppJwt(connector))

    def _client(self, auth: httpx.Auth) -> GitHub[Lent]:
        return GitHub(
            Lent(auth),
            base_url=self.connector.base_url,
            user_agent=USER_AGENT,
            timeout=self.connector.config.timeout,
            async_transport=Borrowed(self.pool),
            http_cache=False,
            auto_retry=False,
        )

    def of(self, installation_id: int | None, *, hint: str) -> GitHub[Lent]:
        """A client authenticated as the connector: with its token, or as an installation of
        its App (see :class:`InstallationToken`)."""
        token = self.connector.config.token
        if token is not None:
            return self._client(BearerToken(token))
        return self._client(InstallationToken(self.connector, installation_id, hint=hint))

    async def send(
        self, client: GitHub[Lent], method: str, path: str, body: Any = None
    ) -> Response[Any]:
        """GitHub's answer to ``method path``, or the action error :func:`action_error` makes
        of a failure."""
        try:
            return await client.arequest(method, path, json=body, headers=API_HEADERS)
        except GitHubException as exc:
            error = action_error(exc, self.connector.base_path)
            if error is None:
                raise
            raise error from None

    async def json(self, client: GitHub[Lent], method: str, path: str, body: Any = None) -> Any:
        """GitHub's JSON answer to ``method path`` (None for an empty one)."""
        response = await self.send(client, method, path, body)
        return response.json() if response.content else None

    async def aclose(self) -> None:
        await self.pool.aclose()
