"""The embedded secret vault: named values, encrypted in the store, scoped, redacted from logs.

Every path that hands a secret to something reads through a scope check
(:mod:`ghapplets.secrets.scopes`):

- :meth:`SecretVault.for_applet`: the declared secrets of an applet, each global or scoped to
  that applet (the worker, ``ghapplets invoke``, and through the worker the test kit's gateway);
- :meth:`SecretVault.get_global`: ``${secret:name}`` in a source's settings, global only;
- :meth:`SecretVault.get`: any secret, for the operator (``ghapplets secrets get``) only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ghapplets.exceptions import InvalidSecret, SecretScopeError
from ghapplets.logging import register_secret
from ghapplets.secrets.crypto import Cipher
from ghapplets.secrets.names import check_name
from ghapplets.secrets.scopes import GLOBAL, Scope
from ghapplets.store.base import SecretStore
from ghapplets.store.records import SecretRecord


@dataclass(frozen=True, slots=True)
class SecretInfo:
    name: str
    scope: str
    created_at: float
    updated_at: float


class SecretVault:
    def __init__(self, store: SecretStore, cipher: Cipher) -> None:
        self.store = store
        self.cipher = cipher

    @staticmethod
    def check_name(name: str) -> None:
        check_name(name)

    async def set(self, name: str, value: str, scope: str = "global") -> None:
        """Store ``value`` as ``name`` (scope ``global``, ``applet:<name>`` or
        ``blueprint:<name>``), encrypted."""
        check_name(name)
        where = str(Scope.parse(scope))
        if not value:
            raise InvalidSecret("a secret value cannot be empty")
        now = time.time()
        blob = self.cipher.encrypt(name, value.encode())
        await self.store.put_secret(SecretRecord(name, where, blob, now, now))
        register_secret(value)

    def _open(self, record: SecretRecord) -> str:
        value = self.cipher.decrypt(record.name, record.ciphertext).decode()
        register_secret(value)
        return value

    async def get(self, name: str) -> str:
        """Any secret, whatever its scope: for the operator, never for an applet or a source."""
        return self._open(await self.store.get_secret(name))

    async def get_global(self, name: str) -> str:
        """A global secret: what ``${secret:name}`` in a source's settings may read."""
        return await self._read_as(GLOBAL, name, "a source's settings")

    async def for_applet(self, applet: str, names: Sequence[str]) -> Mapping[str, str]:
        """The values of ``names`` for ``applet``: each must be global or scoped to
        ``applet:<applet>`` (:class:`SecretScopeError` otherwise; NotFound if missing)."""
        reader = Scope.applet(applet)
        return {name: await self._read_as(reader, name, f"applet {applet!r}") for name in names}

    async def _read_as(self, reader: Scope, name: str, who: str) -> str:
        record = await self.store.get_secret(name)
        try:
            scope = Scope.parse(record.scope)
        except InvalidSecret:
            raise SecretScopeError(
                f"secret {name!r} has scope {record.scope!r}, which is not global, applet:<name> "
                f"or blueprint:<name>: store it again with 'ghapplets secrets set {name} --scope'"
            ) from None
        if not scope.admits(reader):
            allowed = "global secrets" + ("" if reader == GLOBAL else f" and those of {reader}")
            raise SecretScopeError(
                f"secret {name!r} is scoped to {scope}: {who} may read only {allowed}"
            )
        return self._open(record)

    async def list(self) -> list[SecretInfo]:
        return [
            SecretInfo(r.name, r.scope, r.created_at, r.updated_at)
            for r in await self.store.list_secrets()
        ]

    async def delete(self, name: str) -> bool:
        return await self.store.delete_secret(name)
