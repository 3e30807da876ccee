"""The whole platform in one process (``ghapplets serve``): gateway, dispatcher, workers.

:class:`Platform` composes the embedded database, broker and store, the configured sources, the
discovered applets and their runtimes, and runs the dispatcher and worker loops beside the
gateway. ``start`` and ``stop`` are the ASGI lifespan; ``stop`` drains jobs in flight (SIGTERM).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from ghapplets.applets.loader import discover
from ghapplets.applets.matching import Matcher
from ghapplets.applets.model import AppletSpec
from ghapplets.applets.runtime import Runtime, build_runtime
from ghapplets.broker.sqlite import SqliteBroker
from ghapplets.config.loader import LoadedConfig
from ghapplets.dispatch import messages as m
from ghapplets.dispatch.dispatcher import Dispatcher
from ghapplets.dispatch.worker import Worker
from ghapplets.gateway.app import GatewayApp
from ghapplets.gateway.ingest import IngestHandler
from ghapplets.logging import get_logger, register_secret
from ghapplets.metrics import Metrics
from ghapplets.secrets.crypto import Cipher, load_or_create_key
from ghapplets.secrets.refs import resolve
from ghapplets.secrets.vault import SecretVault
from ghapplets.sources.base import Source
from ghapplets.sources.registry import build_source
from ghapplets.store.database import Database
from ghapplets.store.sqlite import SqliteStore

log = get_logger("ghapplets.platform")
DB_FILE = "ghapplets.db"


class Backends:
    """The embedded database, broker, store and secret vault under one data directory.

    Any number of processes may open the same data directory; only the one that runs the
    workers opens it with ``consume=True`` (one at a time: a second one fails to start).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        synchronous: str = "normal",
        batch_max: int = 512,
        create_key: bool = True,
        consume: bool = False,
        poll_interval: float = 0.5,
    ) -> None:
        self.data_dir = data_dir
        self.create_key = create_key
        self.db = Database(data_dir / DB_FILE, synchronous=synchronous, batch_max=batch_max)
        self.broker = SqliteBroker(self.db, consume=consume, poll_interval=poll_interval)
        self.store = SqliteStore(self.db)
        self._vault: SecretVault | None = None

    @property
    def vault(self) -> SecretVault:
        if self._vault is None:
            key = load_or_create_key(self.data_dir, create=self.create_key)
            self._vault = SecretVault(self.store, Cipher(key))
        return self._vault

    async def start(self) -> None:
        await asyncio.to_thread(self.db.open)
        await self.broker.start()

    async def close(self) -> None:
        await self.broker.close()
        await asyncio.to_thread(self.db.close)


@contextlib.asynccontextmanager
async def open_backends(data_dir: Path) -> AsyncIterator[Backends]:
    backends = Backends(data_dir)
    await backends.start()
    try:
        yield backends
    finally:
        await backends.close()


async def build_sources(loaded: LoadedConfig, vault: SecretVault) -> dict[str, Source]:
    sources: dict[str, Source] = {}
    for name, settings in loaded.sources.items():
        secrets: list[bytes] = []
        for ref in (settings.secret, settings.previous_secret):
            if ref:
                value = await resolve(ref, vault.get)
                register_secret(value)
                secrets.append(value.encode())
        sources[name] = build_source(name, settings, secrets)
    return sources


class Platform:
    def __init__(
        self,
        loaded: LoadedConfig,
        data_dir: Path,
        *,
        applets: Sequence[AppletSpec] | None = None,
    ) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.data_dir = data_dir
        self.metrics = Metrics()
        self.backends = Backends(
            data_dir,
            synchronous=self.config.storage.synchronous,
            batch_max=self.config.storage.batch_max,
            consume=True,  # this process runs the dispatcher and the workers
            poll_interval=self.config.worker.poll_interval,
        )
        self._specs = list(applets) if applets is not None else None
        self.sources: dict[str, Source] = {}
        self.runtimes: dict[str, Runtime] = {}
        self.http: httpx.AsyncClient | None = None
        self.dispatcher: Dispatcher | None = None
        self.worker: Worker | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.ingest = IngestHandler(
            self.sources,
            self.backends.broker,
            self.metrics,
            max_body=self.config.server.max_body_bytes,
            body_timeout=self.config.server.body_timeout,
            trust_forwarded_for=self.config.server.trust_forwarded_for,
        )

    @property
    def specs(self) -> list[AppletSpec]:
        if self._specs is None:
            self._specs = discover(self.config.applet_dirs())
        return self._specs

    async def start(self) -> None:
        b = self.backends
        await b.start()
        self.sources.update(await build_sources(self.loaded, b.vault))
        self.http = httpx.AsyncClient(timeout=30.0)
        for spec in self.specs:
            if not spec.enabled:
                continue
            runtime = build_runtime(spec, http=self.http)
            await runtime.start()
            self.runtimes[spec.name] = runtime
        self.dispatcher = Dispatcher(
            b.broker, b.store, Matcher(self.specs), batch=self.config.worker.dispatch_batch
        )
        self.worker = Worker(
            b.broker,
            b.store,
            self.runtimes,
            metrics=self.metrics,
            secrets_for=b.vault.get_many,
            lease_refresh=b.broker.ack_wait / 3,
        )
        for stream in (m.EVENTS, m.JOBS):
            await b.broker.depth(stream)  # the gauge's first reading, then refreshed as read
            self.metrics.track_depth(stream, functools.partial(b.broker.depth_now, stream))
        self._tasks = [
            asyncio.create_task(self.dispatcher.run(), name="dispatcher"),
            asyncio.create_task(self.worker.run(), name="worker"),
            asyncio.create_task(self._housekeeping(), name="housekeeping"),
        ]
        log.info(
            "platform started",
            sources=sorted(self.sources),
            applets=sorted(self.runtimes),
            data_dir=str(self.data_dir),
        )

    async def _housekeeping(self, every: float = 3600.0) -> None:
        """Delete finished history older than ``storage.retention_days``, hourly."""
        while True:
            cutoff = time.time() - self.config.storage.retention_days * 86400
            try:
                pruned = await self.backends.store.prune(cutoff)
                if pruned:
                    log.info("old deliveries pruned", count=pruned)
            except Exception as exc:
                log.warning("pruning failed", error=str(exc))
            await asyncio.sleep(every)

    async def stop(self) -> None:
        drain = self.config.server.drain_timeout
        if self.dispatcher is not None:
            self.dispatcher.stop()
        left = 0
        if self.worker is not None:
            left = await self.worker.drain(drain)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for runtime in self.runtimes.values():
            with contextlib.suppress(Exception):
                await runtime.close()
        if self.http is not None:
            await self.http.aclose()
        await self.backends.close()
        log.info("platform stopped", jobs_left_for_redelivery=left)

    async def ready(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            await self.backends.broker.ping()
            checks["store"] = "ok"
        except Exception as exc:
            checks["store"] = f"unavailable: {exc}"
        return checks

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    def asgi(self) -> GatewayApp:
        return GatewayApp(self.ingest, self.ready, self.metrics.render, lifespan=self.lifespan)
