"""The embedded secret vault: named values, encrypted in the store, scoped, redacted from logs.

Every path that hands a secret to something reads through a scope check
(:mod:`ghapplets.secrets.scopes`):

- :meth:`SecretVault.for_applet`: the declared secrets of an applet, each global or scoped to
  that applet (the worker, ``ghapplets invoke``, and through the worker the test kit's gateway);
- :meth:`SecretVault.get_global`: ``${secret:name}`` in a source's settings, global only;
- :meth:`SecretVault.get`: any secret, for the operator (``ghapplets secrets get``) only.

Keys: the vault writes with the current key of its :class:`~ghapplets.secrets.crypto.Keyring`
and reads each secret with the key its ``key_id`` names. When it lacks that key (another
process rotated it) it reloads the keyring once (``reload``: the key files read again) and
tries again, so a rotation needs no restart where the key is a file.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from ghapplets.exceptions import InvalidSecret, NotFound, SecretKeyMismatch, SecretScopeError
from ghapplets.logging import register_secret
from ghapplets.secrets.crypto import KEY_ENV, KEY_FILE, V1, Cipher, Keyring
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
    key_id: str | None = None


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

    async def delete(self, name: str) -> bool:
        return await self.store.delete_secret(name)

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

    # -- reads -----------------------------------------------------------------------------
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
            SecretInfo(r.name, r.scope, r.created_at, r.updated_at, r.key_id)
            for r in await self.store.list_secrets()
        ]

    async def uses_key(self, key_id: str) -> bool:
        """Is any stored secret encrypted with the key ``key_id``?"""
        return any(r.key_id == key_id for r in await self.store.list_secrets())
