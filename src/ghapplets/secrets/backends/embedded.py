"""The embedded backend: secrets encrypted in the project's store by the vault.

Each secret is a name with its scope stored beside it (so a name is one secret, whatever its
scope); :class:`~ghapplets.secrets.vault.SecretVault` does the encryption, keys and scope check.
The vault is opened on first use (it loads the secrets key, so a malformed key is an error
there, even for a listing), so a process that touches no secret needs no key.
"""

from __future__ import annotations

from collections.abc import Callable

from ghapplets.exceptions import NotFound
from ghapplets.secrets.backends import Secret, SecretBackend, SecretInfo
from ghapplets.secrets.config import BackendKind
from ghapplets.secrets.scopes import Scope
from ghapplets.secrets.vault import SecretVault


def _missing(name: str) -> NotFound:
    return NotFound(f"no stored secret named {name!r}: add it with 'ghapplets secrets set {name}'")


class EmbeddedBackend(SecretBackend):
    kind = BackendKind.EMBEDDED

    def __init__(self, vault: Callable[[], SecretVault]) -> None:
        self._vault = vault

    async def read(self, name: str, reader: Scope) -> Secret:
        try:
            return Secret(*await self._vault().read(name, reader))
        except NotFound:
            raise _missing(name) from None

    async def get(self, name: str, scope: Scope | None = None) -> Secret:
        try:
            found = Secret(*await self._vault().read(name))
        except NotFound:
            raise _missing(name) from None
        if scope is not None and found.scope != str(scope):
            raise NotFound(f"secret {name!r} is of scope {found.scope}, not {scope}")
        return found

    async def list(self) -> list[SecretInfo]:
        return await self._vault().list()

    async def set(self, name: str, value: str, scope: Scope | None = None) -> Scope:
        stored = await self._vault().set(name, value, None if scope is None else str(scope))
        return Scope.parse(stored)

    async def delete(self, name: str, scope: Scope | None = None) -> bool:
        vault = self._vault()
        if scope is not None:  # only the secret of that scope (its row: no need to decrypt)
            try:
                if (await vault.store.get_secret(name)).scope != str(scope):
                    return False
            except NotFound:
                return False
        return await vault.delete(name)
