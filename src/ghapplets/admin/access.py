"""Who may do what: the access each route needs, and the principal a request acts as.

Roles (:class:`~ghapplets.store.records.Role`) are ordered: a viewer reads, an operator also
replays and steers runs, an admin also manages tokens and reads secret names and the audit log.
A route declares one :class:`Access`; :func:`allows` is the one rule that decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from ghapplets.store.records import Role


class Access(StrEnum):
    """What a route needs."""

    PUBLIC = "public"  # anyone (the OpenAPI document)
    READ = "read"  # viewer and up
    OPERATE = "operate"  # operator and up: replays, run controls
    MANAGE = "manage"  # admin: tokens, secret names, the audit log


LEAST_ROLE: Final[dict[Access, Role]] = {
    Access.READ: Role.VIEWER,
    Access.OPERATE: Role.OPERATOR,
    Access.MANAGE: Role.ADMIN,
}


def allows(role: Role, access: Access) -> bool:
    """May a principal of ``role`` use a route that needs ``access``?"""
    return access == Access.PUBLIC or role.rank >= LEAST_ROLE[access].rank


class AuthMethod(StrEnum):
    """How a principal was established."""

    TOKEN = "token"  # noqa: S105 - a name, not a secret
    SSO = "sso"  # an authenticating proxy's headers
    SESSION = "session"  # the dashboard's session cookie


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: ``name`` is what the audit log records (a token's name,
    ``sso:<user>``, a session's user)."""

    name: str
    role: Role
    method: AuthMethod
    email: str | None = None

    def may(self, access: Access) -> bool:
        return allows(self.role, access)
