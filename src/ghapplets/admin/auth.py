"""Who is calling: :class:`Authenticator` resolves the :class:`~.access.Principal` of a request.

The one piece every admin surface uses (the API now, the dashboard later). In order:

1. **SSO** through an authenticating proxy (``server.admin_sso``): only when the TCP peer is one
   of ``server.trusted_proxies`` (:class:`~ghapplets.gateway.forwarded.TrustedProxies`) and the
   request carries the user header; the role is the highest its groups map to, else the
   configured default; a user with no role is refused (403). From any other peer the headers
   are ignored, whatever they say.
2. **Bearer token**: ``Authorization: Bearer gha_...`` (:mod:`.tokens`).
3. **Session cookie** (:data:`SESSION_COOKIE`): resolved by the ``sessions`` hook, a coroutine
   from the cookie's value to a principal or None, which the dashboard supplies. A request
   authenticated by a cookie that changes something (not GET/HEAD) must also carry
   ``X-Requested-With`` (:data:`CSRF_HEADER`): a header no other site's page can make a
   browser send here without a CORS preflight this API never grants.

Nothing here logs or echoes a token. Failures are :class:`~.problems.ApiProblem` 401 (with
``WWW-Authenticate: Bearer``) or 403.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request

from ghapplets.admin.access import AuthMethod, Principal
from ghapplets.admin.problems import forbidden, unauthorized
from ghapplets.admin.tokens import TokenStore
from ghapplets.config.models import AdminSsoConfig
from ghapplets.gateway.forwarded import TrustedProxies, parse_address
from ghapplets.store.records import Role

SESSION_COOKIE = "ghapplets_session"
CSRF_HEADER = "x-requested-with"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_USER = 200  # characters of an SSO user name or e-mail kept
SessionResolver = Callable[[str], Awaitable[Principal | None]]


class Authenticator:
    def __init__(
        self,
        tokens: TokenStore,
        *,
        proxies: TrustedProxies,
        sso: AdminSsoConfig | None = None,
        sessions: SessionResolver | None = None,
    ) -> None:
        self.tokens = tokens
        self.proxies = proxies
        self.sso = sso
        self.sessions = sessions

    async def principal(self, request: Request) -> Principal:
        """The principal of ``request``; ApiProblem 401 or 403 when there is none."""
        found = self._sso(request)
        if found is not None:
            return found
        header = request.headers.get("authorization")
        if header is not None:
            return await self._bearer(header)
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie and self.sessions is not None:
            session = await self.sessions(cookie)
            if session is None:
                raise unauthorized("the session has ended: sign in again")
            if request.method not in SAFE_METHODS and not request.headers.get(CSRF_HEADER):
                raise forbidden(f"a change made with a session cookie needs {CSRF_HEADER}")
            return session
        raise unauthorized("no credentials: send Authorization: Bearer <token>")

    def single_sign_on(self, request: Request) -> Principal | None:
        """The SSO principal of ``request`` alone (None without one; ApiProblem 403 for a user
        with no role): how the dashboard signs in a user the proxy vouched for."""
        return self._sso(request)

    async def _bearer(self, header: str) -> Principal:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("Authorization must be: Bearer <token>")
        record = await self.tokens.check(token.strip())
        if record is None:
            raise unauthorized("the token is not valid (unknown, wrong or revoked)")
        return Principal(record.name, record.role, AuthMethod.TOKEN)

    def _sso(self, request: Request) -> Principal | None:
        sso = self.sso
        if sso is None or request.client is None:
            return None
        peer = parse_address(request.client.host)
        if peer is None or not self.proxies.trusts(peer):
            return None  # a client's own claim: ignored
        user = (request.headers.get(sso.user_header) or "").strip()[:MAX_USER]
        if not user:
            return None
        email = None
        if sso.email_header:
            email = (request.headers.get(sso.email_header) or "").strip()[:MAX_USER] or None
        role = self._role_of(request)
        if role is None:
            raise forbidden(f"the user {user!r} has no role in Ghapplets' admin API")
        return Principal(f"sso:{user}", role, AuthMethod.SSO, email)

    def _role_of(self, request: Request) -> Role | None:
        sso = self.sso
        assert sso is not None
        roles: list[Role] = []
        if sso.groups_header:
            listed = request.headers.get(sso.groups_header) or ""
            roles = [sso.groups[g.strip()] for g in listed.split(",") if g.strip() in sso.groups]
        if roles:
            return max(roles, key=lambda r: r.rank)
        return sso.default_role
