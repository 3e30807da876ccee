"""Admin API tokens: made from the operating system's random source, kept as hashes only.

A token reads ``gha_<id>_<secret>``: ``id`` (16 hex digits) names its row, ``secret`` is 32
random bytes (URL-safe base64). The store keeps the hex SHA-256 of the whole token, never the
token: a token has 256 bits of entropy, so a fast hash is enough (nothing to brute-force), and
:func:`hmac.compare_digest` compares the hashes. The token is shown once, when it is made.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from ghapplets.exceptions import NotFound
from ghapplets.store.base import AdminStore
from ghapplets.store.records import ApiTokenRecord, Role

PREFIX = "gha_"
_FORM = re.compile(r"^gha_([0-9a-f]{16})_[A-Za-z0-9_-]{43}$")
TOKEN_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"  # noqa: S105 - a name's pattern
TOUCH_EVERY = 60.0  # seconds: a token's last_used_at is written at most this often


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class NewToken:
    """A token just made: ``token`` is shown once and never stored."""

    record: ApiTokenRecord
    token: str


def make_token(name: str, role: Role, now: float | None = None) -> NewToken:
    token_id = secrets.token_hex(8)
    token = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    record = ApiTokenRecord(
        id=token_id,
        name=name,
        role=Role(role),
        hash=hash_token(token),
        created_at=time.time() if now is None else now,
    )
    return NewToken(record, token)


def token_id(token: str) -> str | None:
    """The id written in a token of our form, or None when it is not one."""
    found = _FORM.match(token)
    return found.group(1) if found else None


class TokenStore:
    """Makes, lists, revokes and checks tokens on an :class:`AdminStore`."""

    def __init__(self, store: AdminStore) -> None:
        self.store = store

    async def create(self, name: str, role: Role) -> NewToken:
        """A new token; AlreadyExists when a live token has that name."""
        new = make_token(name, role)
        await self.store.create_api_token(new.record)
        return new

    async def list(self) -> list[ApiTokenRecord]:
        return await self.store.api_tokens()

    async def revoke(self, name: str) -> ApiTokenRecord:
        return await self.store.revoke_api_token(name, time.time())

    async def check(self, token: str) -> ApiTokenRecord | None:
        """The live token ``token`` is, or None (malformed, unknown, wrong, or revoked). Its
        ``last_used_at`` is brought up to date (at most every :data:`TOUCH_EVERY` seconds)."""
        found_id = token_id(token)
        if found_id is None:
            return None
        try:
            record = await self.store.api_token(found_id)
        except NotFound:
            return None
        if not hmac.compare_digest(hash_token(token), record.hash):
            return None
        if record.revoked_at is not None:
            return None
        now = time.time()
        if record.last_used_at is None or now - record.last_used_at >= TOUCH_EVERY:
            await self.store.touch_api_token(record.id, now)
        return record
