"""Sign-in sessions of the dashboard, kept in the store (so every gateway process sharing the
admin address knows them).

A session starts when a browser gives a valid API token (:class:`~ghapplets.admin.tokens.
TokenStore`): the cookie gets a fresh random secret, the store only its SHA-256 (as for tokens,
256 random bits need no slow hash). The session acts as the token's name and role, carries its
own CSRF token for the forms, ends after ``server.dashboard.session_hours``, on sign-out, or as
soon as its token is revoked. A user signed in by an authenticating proxy (``server.admin_sso``)
gets a session the same way, as ``sso:<user>`` with the role the proxy's groups give. Nothing
here logs a token, a secret or a CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from ghapplets.admin.access import AuthMethod, Principal
from ghapplets.admin.tokens import TokenStore
from ghapplets.exceptions import AlreadyExists, NotFound
from ghapplets.store.base import Store
from ghapplets.store.records import Role, SessionRecord

MAX_COOKIE = 128  # characters of a session cookie's value looked at (ours has 43)
MAX_TOKEN = 256  # characters of a token typed into the login form looked at
SSO = "sso"  # the token id of a session started by single sign-on (no token's id is this)


def session_id(secret: str) -> str:
    """The stored id of the session whose cookie holds ``secret``."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same(expected: str, given: str | None) -> bool:
    """Does ``given`` equal ``expected`` (a CSRF token), compared in constant time? An empty
    or missing one never does."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


class Sessions:
    """Starts, finds and ends dashboard sessions."""

    def __init__(self, store: Store, hours: float, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.tokens = TokenStore(store)
        self.lifetime = hours * 3600
        self.clock = clock

    async def sign_in(self, token: str) -> tuple[str, SessionRecord] | None:
        """A new session for a valid, live ``token``: the cookie's secret and the record; None
        for a token that is not one (malformed, unknown, wrong or revoked)."""
        if not token or len(token) > MAX_TOKEN:
            return None
        record = await self.tokens.check(token.strip())
        if record is None:
            return None
        return await self._start(record.id, record.name, record.role)

    async def sign_in_as(self, principal: Principal) -> tuple[str, SessionRecord]:
        """A new session for a user an authenticating proxy vouched for (``server.admin_sso``)."""
        return await self._start(SSO, principal.name, principal.role)

    async def _start(self, token_id: str, name: str, role: Role) -> tuple[str, SessionRecord]:
        now = self.clock()
        await self.store.prune_sessions(now)
        while True:
            secret = secrets.token_urlsafe(32)
            session = SessionRecord(
                id=session_id(secret),
                token_id=token_id,
                name=name,
                role=role,
                csrf=secrets.token_urlsafe(32),
                created_at=now,
                expires_at=now + self.lifetime,
            )
            try:
                await self.store.create_session(session)
            except AlreadyExists:  # 256 random bits met another: practically never
                continue
            return secret, session

    async def find(self, secret: str | None) -> SessionRecord | None:
        """The live session of a cookie's ``secret``: None when there is none, it expired, or
        its token was revoked (then it is ended too)."""
        if not secret or len(secret) > MAX_COOKIE:
            return None
        session = await self.store.get_session(session_id(secret), self.clock())
        if session is None:
            return None
        if session.token_id == SSO:
            return session
        try:
            token = await self.store.api_token(session.token_id)
        except NotFound:
            token = None
        if token is None or token.revoked_at is not None:
            await self.store.delete_session(session.id)
            return None
        return session

    async def principal(self, secret: str) -> Principal | None:
        """The admin API's session hook (:data:`ghapplets.admin.auth.SessionResolver`)."""
        session = await self.find(secret)
        return None if session is None else principal_of(session)

    async def sign_out(self, secret: str | None) -> None:
        if secret and len(secret) <= MAX_COOKIE:
            await self.store.delete_session(session_id(secret))


def principal_of(session: SessionRecord) -> Principal:
    return Principal(session.name, session.role, AuthMethod.SESSION)
