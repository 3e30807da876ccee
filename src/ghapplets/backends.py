"""The one way to open a project's backends: broker, history store, secret store, vault, and
the secrets backend with the audited access to it.

:func:`open_backends` (or :class:`Backends` with ``start``/``close``) picks each backend from the
configuration: the embedded SQLite file under the data folder by default, NATS JetStream for
``broker.backend: nats``, PostgreSQL for ``storage.backend: postgresql``, and OpenBao or
Kubernetes files for ``secrets.backend``. The gateway, the worker, ``serve`` and every CLI query
open them here, so each sees the same data.

Secret values are read through :attr:`Backends.secrets` (scoped, audited, redacted), from the
backend ``secrets.backend`` names. The embedded :attr:`Backends.vault` (the store and the
secrets key) is there whatever that backend: it keeps the connectors' token cache.

This module imports no gateway or worker code: CLI queries stay light.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from ghapplets.broker.base import Broker
from ghapplets.broker.nats import NatsBroker
from ghapplets.broker.sqlite import SqliteBroker
from ghapplets.config.models import ProjectConfig
from ghapplets.secrets.access import SecretAccess
from ghapplets.secrets.audit import SecretAudit
from ghapplets.secrets.backends import SecretBackend
from ghapplets.secrets.backends.embedded import EmbeddedBackend
from ghapplets.secrets.backends.kubernetes import KubernetesBackend
from ghapplets.secrets.config import KubernetesSecrets, OpenBaoSecrets
from ghapplets.secrets.crypto import load_keyring
from ghapplets.secrets.vault import SecretVault
from ghapplets.store.base import SecretStore, Store
from ghapplets.store.database import Database
from ghapplets.store.sqlite import SqliteHistoryStore, SqliteSecretStore

if TYPE_CHECKING:
    from ghapplets.store.postgres import PostgresDatabase

DB_FILE = "ghapplets.db"


def embedded(config: ProjectConfig) -> bool:
    """Does the project keep a backend (store or broker) in the data folder's database?"""
    return config.storage.backend == "sqlite" or config.broker.backend == "sqlite"


class Backends:
    """The broker, the stores and the secret vault of one project, opened from its config."""

    def __init__(
        self,
        config: ProjectConfig,
        data_dir: Path,
        *,
        create_key: bool = True,
        consume: bool = False,
    ) -> None:
        """``consume``: this process runs the dispatcher and workers (the others only publish
        and query)."""
        self.consume = consume
        self.config = config
        self.data_dir = data_dir
        self.create_key = create_key
        self.db: Database | None = None
        self.pg: PostgresDatabase | None = None
        self.broker: Broker
        self.store: Store
        self.secret_store: SecretStore
        self._vault: SecretVault | None = None
        self._build()
        self.secret_backend = self._secret_backend()
        self.audit = SecretAudit(self.secret_store, self.secret_backend.kind)
        self.secrets = SecretAccess(self.secret_backend, self.audit)

    def _build(self) -> None:
        storage = self.config.storage
        if embedded(self.config):
            self.db = Database(
                self.data_dir / DB_FILE,
                synchronous=storage.sync,
                batch_max=storage.batch_max,
            )
        self.broker = self._broker()
        if storage.backend == "postgresql":
            # imported here: asyncpg is not loaded by projects that do not use it
            from ghapplets.store.postgres import (
                PostgresDatabase,
                PostgresHistoryStore,
                PostgresSecretStore,
            )

            assert storage.url is not None  # the config requires it
            self.pg = PostgresDatabase(storage.url, storage.pool_size, batch_max=storage.batch_max)
            self.store = PostgresHistoryStore(self.pg)
            self.secret_store = PostgresSecretStore(self.pg)
        else:
            assert self.db is not None
            self.store = SqliteHistoryStore(self.db)
            self.secret_store = SqliteSecretStore(self.db)

    def _broker(self) -> Broker:
        cfg = self.config.broker
        if cfg.backend == "nats":
            assert cfg.url is not None  # the config model requires it
            return NatsBroker(
                cfg.url,
                replicas=cfg.replicas,
                prefix=cfg.prefix,
                duplicate_window=cfg.duplicate_window,
                ack_wait=cfg.ack_wait,
                max_ack_pending=cfg.max_ack_pending,
                publish_timeout=cfg.publish_timeout,
            )
        assert self.db is not None
        return SqliteBroker(
            self.db,
            consume=self.consume,
            poll_interval=self.config.worker.poll_interval,
            ack_wait=cfg.ack_wait,
        )

    def _secret_backend(self) -> SecretBackend:
        cfg = self.config.secrets
        if isinstance(cfg, OpenBaoSecrets):
            # imported here: hvac (and requests) are not loaded by projects that do not use it
            from ghapplets.secrets.backends.openbao import OpenBaoBackend

            return OpenBaoBackend(cfg, self.config.root)
        if isinstance(cfg, KubernetesSecrets):
            return KubernetesBackend(self.config.root / cfg.path)
        return EmbeddedBackend(lambda: self.vault)

    @property
    def vault(self) -> SecretVault:
        if self._vault is None:
            keys = load_keyring(self.data_dir, create=self.create_key)
            self._vault = SecretVault(
                self.secret_store, keys, reload=lambda: load_keyring(self.data_dir, create=False)
            )
        return self._vault

    async def start(self) -> None:
        """Open every backend (migrating the databases); on failure, close what was opened."""
        try:
            if self.db is not None:
                await asyncio.to_thread(self.db.open)
            if self.pg is not None:
                await self.pg.open()
            await self.broker.start()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        await self.audit.close()  # while the store is open
        await self.secret_backend.close()
        await self.broker.close()
        if self.pg is not None:
            await self.pg.close()
        if self.db is not None:
            await asyncio.to_thread(self.db.close)


@contextlib.asynccontextmanager
async def open_backends(
    config: ProjectConfig, data_dir: Path, *, create_key: bool = True
) -> AsyncIterator[Backends]:
    backends = Backends(config, data_dir, create_key=create_key)
    await backends.start()
    try:
        yield backends
    finally:
        await backends.close()
