"""Connectors' short-lived tokens, cached in the store for every process of the project.

A GitHub App's installation token lives an hour and each mint counts against the App, so the
worker processes, replicas and ``ghapplets action`` share the tokens they mint through the
secret store's ``connector_tokens`` table (:meth:`SecretStore.get_token`/``put_token``). A
token is encrypted at rest like a secret (AES-256-GCM under the project's current secrets
key, :class:`~ghapplets.secrets.crypto.Cipher`), with associated data binding it to its key
name and to the scope :data:`TOKEN_SCOPE`, which no secret can have: a row copied onto another
key, or into ``secrets``, does not decrypt.

The cache is an optimisation, never a requirement: a row that does not decrypt (another key,
after a rotation; tampered) and a store that cannot serve are a miss, and the connector mints.
"""

from __future__ import annotations

from collections.abc import Callable

from ghapplets.exceptions import SecretKeyError, StoreUnavailable
from ghapplets.logging import get_logger, register_secret
from ghapplets.secrets.crypto import Keyring
from ghapplets.secrets.vault import SecretVault
from ghapplets.store.base import SecretStore

TOKEN_SCOPE = "connector-token"  # noqa: S105 - not a secret: the scope tokens are bound to

log = get_logger("ghapplets.secrets.tokens")


class TokenCache:
    """Tokens by key in ``store``, encrypted with the current key of ``keys()``."""

    def __init__(self, store: SecretStore, keys: Callable[[], Keyring]) -> None:
        self.store = store
        self._keys = keys

    @classmethod
    def of(cls, vault: SecretVault) -> TokenCache:
        """The cache in the vault's store, under the vault's keys (as they are reloaded)."""
        return cls(vault.store, lambda: vault.keys)

    async def get(self, key: str) -> tuple[str, float] | None:
        """``(token, expires_at)`` stored under ``key``, or None (none, unreadable, or the store
        is unavailable)."""
        try:
            found = await self.store.get_token(key)
        except StoreUnavailable as exc:
            log.warning("the token cache cannot be read", key=key, error=str(exc))
            return None
        if found is None:
            return None
        ciphertext, expires_at = found
        try:
            token = self._keys().current.decrypt(key, TOKEN_SCOPE, ciphertext).decode()
        except (SecretKeyError, UnicodeDecodeError):
            return None
        register_secret(token)
        return token, expires_at

    async def put(self, key: str, token: str, expires_at: float) -> None:
        """Store ``token`` under ``key`` for every process; a store that cannot take it is
        logged and skipped (the token still serves this process)."""
        ciphertext = self._keys().current.encrypt(key, TOKEN_SCOPE, token.encode())
        try:
            await self.store.put_token(key, ciphertext, expires_at)
        except StoreUnavailable as exc:
            log.warning("the token cache cannot be written", key=key, error=str(exc))
