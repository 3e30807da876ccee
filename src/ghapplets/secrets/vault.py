"""The embedded secret vault: named values, encrypted in the store, redacted from logs."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ghapplets.exceptions import InvalidSecret
from ghapplets.logging import register_secret
from ghapplets.secrets.crypto import Cipher
from ghapplets.secrets.names import check_name
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
        check_name(name)
        if not value:
            raise InvalidSecret("a secret value cannot be empty")
        now = time.time()
        blob = self.cipher.encrypt(name, value.encode())
        await self.store.put_secret(SecretRecord(name, scope, blob, now, now))
        register_secret(value)

    async def get(self, name: str) -> str:
        record = await self.store.get_secret(name)
        value = self.cipher.decrypt(name, record.ciphertext).decode()
        register_secret(value)
        return value

    async def get_many(self, names: Sequence[str]) -> Mapping[str, str]:
        return {name: await self.get(name) for name in names}

    async def list(self) -> list[SecretInfo]:
        return [
            SecretInfo(r.name, r.scope, r.created_at, r.updated_at)
            for r in await self.store.list_secrets()
        ]

    async def delete(self, name: str) -> bool:
        return await self.store.delete_secret(name)
