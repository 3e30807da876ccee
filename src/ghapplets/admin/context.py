"""What the admin API's handlers reach: the project's backends and what it declares.

The applets and blueprints are read from the project's folders on first use (in a thread; the
Python applets are imported, as ``ghapplets replay`` does, so a delivery's replay matches what
the worker would), then kept for the life of the process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence

from ghapplets.admin.tokens import TokenStore
from ghapplets.applets.loader import discover
from ghapplets.applets.matching import Matcher
from ghapplets.applets.model import AppletSpec
from ghapplets.backends import Backends
from ghapplets.blueprints.checks import project_catalog
from ghapplets.blueprints.loader import Blueprint, load_blueprints
from ghapplets.config.loader import LoadedConfig
from ghapplets.sources.base import CREDENTIAL_HEADERS, Source

ReadyCheck = Callable[[], Awaitable[dict[str, str]]]


class AdminContext:
    def __init__(
        self,
        loaded: LoadedConfig,
        backends: Backends,
        ready: ReadyCheck,
        sources: Mapping[str, Source] | None = None,
        specs: Sequence[AppletSpec] | None = None,
    ) -> None:
        """``sources``: the built sources of a gateway (their credential headers are never
        shown); ``specs``: the applets this process has loaded already (a worker's), else they
        are discovered on first use."""
        self.loaded = loaded
        self.config = loaded.config
        self.backends = backends
        self.store = backends.store
        self.broker = backends.broker
        self.ready = ready
        self.sources = sources if sources is not None else {}  # built ones, when a gateway
        self.tokens = TokenStore(backends.store)
        self._specs: list[AppletSpec] | None = list(specs) if specs is not None else None
        self._blueprints: list[Blueprint] | None = None
        self._lock = asyncio.Lock()

    async def specs(self) -> list[AppletSpec]:
        async with self._lock:
            if self._specs is None:
                config = self.config
                self._specs = await asyncio.to_thread(
                    discover, config.applet_dirs(), connectors=config.connectors
                )
            return self._specs

    async def matcher(self) -> Matcher:
        return Matcher(await self.specs())

    async def blueprints(self) -> list[Blueprint]:
        specs = [s for s in await self.specs() if s.enabled]
        async with self._lock:
            if self._blueprints is None:
                folders = self.config.blueprint_dirs()
                self._blueprints = await asyncio.to_thread(
                    load_blueprints, folders, project_catalog(specs)
                )
            return self._blueprints

    def hidden_headers(self, source: str) -> frozenset[str]:
        """Header names never shown for a delivery of ``source`` (they are not stored either:
        this is the second line)."""
        built = self.sources.get(source)
        return CREDENTIAL_HEADERS | (built.credential_headers if built else frozenset())

    def redacts_payload(self, source: str) -> bool:
        settings = self.loaded.sources.get(source)
        return bool(settings is not None and settings.redact_payload)
