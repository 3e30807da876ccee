"""Secret backends: where secret values are kept, behind one interface.

:class:`SecretBackend` is what :class:`~ghapplets.secrets.access.SecretAccess` reads through
and what ``ghapplets secrets`` writes through. The backends, one module each, chosen by
``secrets.backend`` (:mod:`ghapplets.secrets.config`) in :mod:`ghapplets.backends`:

- :mod:`.embedded`: encrypted in the store (:class:`~ghapplets.secrets.vault.SecretVault`), each
  secret a name with a scope beside it;
- :mod:`.openbao`: OpenBao or HashiCorp Vault KV v2, and :mod:`.kubernetes`: the files of a
  mounted Kubernetes Secret; both keep each secret at a path made of its scope and its name
  (:mod:`.paths`).

A backend hands out what a reader's scope admits, and nothing else; it neither audits nor
registers values for redaction (the access layer does both, once, for every backend).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from ghapplets.secrets.config import BackendKind
from ghapplets.secrets.scopes import Scope


@dataclass(frozen=True, slots=True)
class Secret:
    """A value read, and the scope it was found in (as stored: the embedded store may hold a
    scope an older version wrote, which no reader is given)."""

    value: str
    scope: str


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """A secret as ``secrets list`` shows it: never its value. ``key_id``: the key that
    encrypts it (the embedded backend only)."""

    name: str
    scope: str
    created_at: float
    updated_at: float
    key_id: str | None = None


class SecretBackend(ABC):
    kind: BackendKind

    @abstractmethod
    async def read(self, name: str, reader: Scope) -> Secret:
        """The secret ``name`` for a reader of the scope ``reader``: one of that scope or a
        global one, never another (:class:`~ghapplets.exceptions.NotFound`, or
        :class:`~ghapplets.exceptions.SecretScopeError` where the backend knows the secret
        exists in another scope)."""

    @abstractmethod
    async def get(self, name: str, scope: Scope | None = None) -> Secret:
        """The operator's read: the secret ``name`` of ``scope`` (None: the embedded backend
        reads it whatever its scope, the others read the global one)."""

    @abstractmethod
    async def list(self) -> list[SecretInfo]: ...

    @abstractmethod
    async def set(self, name: str, value: str, scope: Scope | None = None) -> Scope:
        """Store ``value`` as ``name`` in ``scope``; the scope it was stored in.
        :class:`~ghapplets.exceptions.SecretsReadOnly` where the backend only reads."""

    @abstractmethod
    async def delete(self, name: str, scope: Scope | None = None) -> bool:
        """Delete ``name`` (of ``scope``, as for :meth:`get`); false when there was none."""

    async def close(self) -> None:  # noqa: B027 - a default: most backends hold no connection
        """Let go of connections (nothing to do by default)."""
