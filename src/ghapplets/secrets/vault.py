"""The embedded secret vault: named values, encrypted in the store, scoped, redacted from logs.

A secret is a name with a scope beside it (:mod:`ghapplets.secrets.scopes`). :meth:`read`
hands a reader of a scope only what that scope admits; without a reader scope it is the
operator's read of any secret (``ghapplets secrets get``). The vault is the embedded backend
(:mod:`ghapplets.secrets.backends.embedded`); readers reach it through
:class:`~ghapplets.secrets.access.SecretAccess`, which audits every read.

Keys: the vault writes with the current key of its :class:`~ghapplets.secrets.crypto.Keyring`
and reads each secret with the key its ``key_id`` names. When it lacks that key (another
process rotated it) it reloads the keyring once (``reload``: the key files read again) and
tries again, so a rotation needs no restart where the key is a file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from ghapplets.exceptions import InvalidSecret, NotFound, SecretKeyMismatch, SecretScopeError
from ghapplets.logging import register_secret
from ghapplets.secrets.backends import SecretInfo
from ghapplets.secrets.crypto import KEY_ENV, KEY_FILE, V1, Cipher, Keyring
from ghapplets.secrets.names import check_name
from ghapplets.secrets.scopes import GLOBAL, Scope
from ghapplets.store.base import SecretStore
from ghapplets.store.records import SecretRecord


@dataclass(frozen=True, slots=True)
class Rotation:
    """What :meth:`SecretVault.rotate` did: ``count`` secrets re-encrypted under ``key_id``,
    ``upgraded`` of them from the v1 format, from the keys ``previous`` (None: no key id)."""

    count: int
    upgraded: int
    key_id: str
    previous: frozenset[str | None]


class SecretVault:
    def __init__(
        self,
        store: SecretStore,
        keys: Keyring,
        *,
        reload: Callable[[], Keyring] | None = None,
    ) -> None:
        self.store = store
        self._keys = keys
        self._reload = reload

    @property
    def keys(self) -> Keyring:
        return self._keys

    @staticmethod
    def check_name(name: str) -> None:
        check_name(name)

    # -- keys ------------------------------------------------------------------------------
    def _cipher(self, key_id: str | None) -> Cipher | None:
        cipher = self._keys.cipher(key_id)
        if cipher is None and self._reload is not None:
            self._keys = self._reload()
            cipher = self._keys.cipher(key_id)
        return cipher

    def _missing_key(self, key_id: str | None, what: str) -> SecretKeyMismatch:
        return SecretKeyMismatch(
            f"{what} encrypted with key {key_id}, and this process has key "
            f"{self._keys.current.key_id}: wrong {KEY_ENV} or {KEY_FILE}? (after 'ghapplets "
            "secrets rotate-key', every process needs the new key)",
            key_id,
        )

    def _open(self, record: SecretRecord) -> str:
        cipher = self._cipher(record.key_id)
        if cipher is None:
            raise self._missing_key(record.key_id, f"secret {record.name!r} is")
        value = cipher.decrypt(record.name, record.scope, record.ciphertext).decode()
        register_secret(value)
        return value

    # -- writes ----------------------------------------------------------------------------
    async def set(self, name: str, value: str, scope: str | None = None) -> str:
        """Store ``value`` as ``name``, encrypted with the key the stored secrets are under, in
        ``scope`` (``global``, ``applet:<name>`` or ``blueprint:<name>``); without one, a
        secret keeps the scope it has (a new one is global), so a new value never widens who
        may read it. The scope stored."""
        check_name(name)
        if not value:
            raise InvalidSecret("a secret value cannot be empty")
        if scope is None:
            try:
                scope = (await self.store.get_secret(name)).scope
            except NotFound:
                scope = str(GLOBAL)
        where = str(Scope.parse(scope))
        now = time.time()
        cipher = self._keys.current
        for last in (False, True):
            blob = cipher.encrypt(name, where, value.encode())
            try:
                record = SecretRecord(name, where, blob, now, now, cipher.key_id)
                await self.store.put_secret(record)
                break
            except SecretKeyMismatch as exc:  # rotated by another process since we loaded
                found = self._cipher(exc.stored)
                if last or found is None:
                    raise self._missing_key(exc.stored, "the stored secrets are") from None
                cipher = found
        register_secret(value)
        return where

    async def rotate(self, new_key: bytes) -> Rotation:
        """Re-encrypt every secret under ``new_key`` (format v2), in one transaction: each is
        read with the key its id names (or ``new_key``, after an interrupted rotation). If
        one cannot be read, nothing changes. Afterwards this vault writes with ``new_key``."""
        target = Cipher(new_key)
        previous: set[str | None] = set()
        upgraded = 0

        def transform(records: list[SecretRecord]) -> list[SecretRecord]:
            nonlocal upgraded
            previous.clear()
            upgraded = 0
            out = []
            for r in records:
                cipher = target if r.key_id == target.key_id else self._keys.cipher(r.key_id)
                if cipher is None:
                    raise self._missing_key(r.key_id, f"secret {r.name!r} is")
                plain = cipher.decrypt(r.name, r.scope, r.ciphertext)
                previous.add(r.key_id)
                upgraded += r.ciphertext[:2] == V1
                blob = target.encrypt(r.name, r.scope, plain)
                out.append(replace(r, ciphertext=blob, key_id=target.key_id))
            return out

        if self._reload is not None:  # the newest key files, and no key lacking mid-way
            self._keys = self._reload()
        count = await self.store.reencrypt_secrets(transform)
        self._keys = Keyring(new_key, [])
        return Rotation(count, upgraded, target.key_id, frozenset(previous))

    async def delete(self, name: str) -> bool:
        return await self.store.delete_secret(name)

    # -- reads -----------------------------------------------------------------------------
    async def get(self, name: str) -> str:
        """Any secret, whatever its scope: for the operator, never for an applet or a source."""
        return (await self.read(name))[0]

    async def read(self, name: str, reader: Scope | None = None) -> tuple[str, str]:
        """The value of ``name`` and its stored scope. For a ``reader`` scope the secret must
        be global or of that scope (:class:`SecretScopeError` otherwise, checked before it is
        decrypted); without one, any secret (the operator). NotFound when there is none."""
        record = await self.store.get_secret(name)
        if reader is not None:
            try:
                scope = Scope.parse(record.scope)
            except InvalidSecret:
                raise SecretScopeError(
                    f"secret {name!r} has the invalid scope {record.scope!r} (store it again "
                    f"with 'ghapplets secrets set {name} --scope SCOPE')"
                ) from None
            if not scope.admits(reader):
                raise SecretScopeError(f"secret {name!r} is scoped to {scope}")
        return self._open(record), record.scope

    async def list(self) -> list[SecretInfo]:
        """Every secret's name, scope and key id (reading them needs no key)."""
        return [
            SecretInfo(r.name, r.scope, r.created_at, r.updated_at, r.key_id)
            for r in await self.store.list_secrets()
        ]

    async def uses_key(self, key_id: str) -> bool:
        """Is any stored secret encrypted with the key ``key_id``?"""
        return any(r.key_id == key_id for r in await self.store.list_secrets())
