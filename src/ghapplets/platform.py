"""One Ghapplets process, in one or both roles: gateway (ingest) and worker (dispatch, applets).

:class:`Platform` composes the backends (:mod:`ghapplets.backends`) with what its roles need:

- :attr:`Role.GATEWAY`: the configured sources and the ingest handler (``POST /hooks/{source}``).
  Stateless: it verifies, normalises and publishes, then answers.
- :attr:`Role.WORKER`: the discovered applets and their runtimes, the dispatcher and worker loops,
  and housekeeping (retention), claimed by a lease so any number of workers can run. Each
  runtime opens its own HTTP client (``ctx.http``, the ``http`` runtime's calls): applets share
  no cookie jar, so a cookie one applet's server sets is never sent by another.

Every process serves ``/healthz``, ``/readyz`` (broker and store health) and ``/metrics`` (on
the webhook port, or on ``server.metrics_address`` when set), behind the HTTP limits of
:meth:`Platform.http_protocol`. A gateway also serves the admin API (:meth:`Platform.admin_api`)
on ``server.admin_address``.
``start`` and ``stop`` are the ASGI lifespan; ``stop`` drains jobs in flight (SIGTERM). The
process's Splunk log sink, when it has one, starts with the platform (its token may name a
stored secret) and ships what is left when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ghapplets import __version__
from ghapplets.applets.loader import discover
from ghapplets.applets.matching import Matcher
from ghapplets.applets.model import AppletSpec
from ghapplets.applets.runtime import Runtime, build_runtime
from ghapplets.backends import Backends
from ghapplets.blueprints.checks import project_catalog
from ghapplets.blueprints.loader import load_blueprints
from ghapplets.blueprints.transport import HttpxSender
from ghapplets.config.loader import LoadedConfig
from ghapplets.connectors.config import GithubConnector
from ghapplets.connectors.endpoint import ActionEndpoint
from ghapplets.connectors.github import GitHub
from ghapplets.connectors.github_catchup import catch_up
from ghapplets.connectors.registry import Connectors
from ghapplets.dispatch import messages as m
from ghapplets.dispatch.bodies import BodyCache
from ghapplets.dispatch.dispatcher import Dispatcher
from ghapplets.dispatch.runs import Blueprints, RunDriver, RunTimers, worker_effects
from ghapplets.dispatch.worker import Worker
from ghapplets.exceptions import AppletError, GhappletsError, RejectReason
from ghapplets.gateway.app import GatewayApp
from ghapplets.gateway.forwarded import TrustedProxies
from ghapplets.gateway.ingest import IngestHandler
from ghapplets.gateway.protocol import GuardedProtocol, HttpLimits, guarded_protocol
from ghapplets.logging import get_logger, register_secret
from ghapplets.metrics import UNKNOWN, Metrics
from ghapplets.secrets.refs import resolve
from ghapplets.secrets.scopes import Reader
from ghapplets.secrets.tokens import TokenCache
from ghapplets.sources.base import Source
from ghapplets.sources.registry import build_sources

if TYPE_CHECKING:
    from ghapplets.admin.app import AdminApi
    from ghapplets.admin.auth import SessionResolver
    from ghapplets.dashboard.site import AdminSite
    from ghapplets.logsink import SplunkHecSink

log = get_logger("ghapplets.platform")

RETENTION_LEASE = "retention"  # held by the one replica that prunes history
RETENTION_EVERY = 3600.0  # seconds between retention rounds


class Role(StrEnum):
    GATEWAY = "gateway"
    WORKER = "worker"


BOTH = frozenset(Role)


class Platform:
    def __init__(
        self,
        loaded: LoadedConfig,
        data_dir: Path,
        *,
        roles: frozenset[Role] = BOTH,
        applets: Sequence[AppletSpec] | None = None,
        log_sink: SplunkHecSink | None = None,
    ) -> None:
        self.roles = roles
        self.log_sink = log_sink
        self.loaded = loaded
        self.config = loaded.config
        self.data_dir = data_dir
        self.metrics = Metrics()
        # only a worker consumes: the embedded broker allows one consumer process per data folder
        self.backends = Backends(self.config, data_dir, consume=Role.WORKER in roles)
        self._specs = list(applets) if applets is not None else None
        self.sources: dict[str, Source] = {}
        self.runtimes: dict[str, Runtime] = {}
        self.connectors: Connectors | None = None  # opened by the worker role
        self.action_endpoint: ActionEndpoint | None = None  # for exec and HTTP applets
        self.dispatcher: Dispatcher | None = None
        self.worker: Worker | None = None
        self.http_sender: HttpxSender | None = None  # blueprints' HTTP calls
        self._tasks: list[asyncio.Task[None]] = []
        # this process among the replicas, for leases
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.ingest = IngestHandler(
            self.sources,
            self.backends.broker,
            self.metrics,
            max_body=self.config.server.max_body_bytes,
            body_timeout=self.config.server.body_timeout,
            trusted_proxies=TrustedProxies(self.config.server.trusted_proxies),
            stored=None if self.backends.broker.remembers_ids else self.backends.store.has_delivery,
        )

    @property
    def specs(self) -> list[AppletSpec]:
        if self._specs is None:
            self._specs = discover(self.config.applet_dirs(), connectors=self.config.connectors)
        return self._specs

    async def start(self) -> None:
        b = self.backends
        await b.start()
        # the secrets key (for the embedded secrets and the token cache), made on a first start
        # and checked now: a malformed or missing one stops the process here, not at a job
        _ = b.vault
        if self.log_sink is not None:
            await self.log_sink.start(b.secrets.lookup(Reader.platform("logging.splunk_hec")))
        if Role.GATEWAY in self.roles:
            self.sources.update(await build_sources(self.loaded.sources, b.secrets.lookup))
        else:
            await self._learn_source_secrets()
        if Role.WORKER in self.roles:
            await self._start_worker()
        log.info(
            "platform started",
            roles=sorted(r.value for r in self.roles),
            sources=sorted(self.sources),
            applets=sorted(self.runtimes),
            data_dir=str(self.data_dir),
        )

    async def _learn_source_secrets(self) -> None:
        """Register the sources' webhook secrets for redaction in a process without the gateway
        role (which registers them as it builds the sources), so an applet that echoes one has
        it redacted from its result and logs here too. A reference this process cannot resolve
        (an ``${env:X}`` only the gateways have) is skipped with a warning: a worker does not
        need the secret to work."""
        for name, settings in self.loaded.sources.items():
            for ref in (settings.secret, settings.previous_secret):
                if not ref:
                    continue
                try:
                    lookup = self.backends.secrets.lookup(Reader.source(name))
                    register_secret(await resolve(ref, lookup))
                except GhappletsError as exc:
                    log.warning(
                        "a webhook secret is unknown to this worker and not redacted here",
                        source=name,
                        error=str(exc),
                    )

    async def _start_worker(self) -> None:
        b = self.backends
        if self.config.connectors:
            self.connectors = await Connectors.open(
                self.config.connectors,
                b.secrets.lookup,
                tokens=TokenCache.of(b.vault),
                tolerant=True,  # one connector without its secret does not stop the others
            )
        if self.connectors is not None and any(
            s.enabled and s.connectors and s.runtime in ("exec", "http") for s in self.specs
        ):
            host, port = self.config.worker.actions_listener
            self.action_endpoint = ActionEndpoint(host, port, self.config.worker.actions_url)
            await self.action_endpoint.start()
        for spec in self.specs:
            if not spec.enabled:
                continue
            # no shared client: each applet has its own connections and cookie jar
            runtime = build_runtime(spec, metrics=self.metrics)
            await runtime.start()
            self.runtimes[spec.name] = runtime
        bodies = BodyCache(b.store)
        runs = self._run_driver()
        self.dispatcher = Dispatcher(
            b.broker,
            b.store,
            Matcher(self.specs),
            batch=self.config.worker.dispatch_batch,
            bodies=bodies,
            runs=runs,
        )
        self.worker = Worker(
            b.broker,
            b.store,
            self.runtimes,
            metrics=self.metrics,
            secrets_for=b.secrets.for_applet,
            bodies=bodies,
            lease_refresh=self.config.broker.ack_wait / 3,
            connectors=self.connectors,
            endpoint=self.action_endpoint,
            runs=runs,
        )
        self._tasks = [
            asyncio.create_task(self.dispatcher.run(), name="dispatcher"),
            asyncio.create_task(self.worker.run(), name="worker"),
            asyncio.create_task(self._housekeeping(), name="housekeeping"),
        ]
        if runs is not None:
            timers = RunTimers(b.store, b.broker, runs, instance=self.instance)
            self._tasks.append(asyncio.create_task(timers.run(), name="blueprint-timers"))
        for name, settings in self.config.connectors.items():
            connector = self.connectors.by_name.get(name) if self.connectors else None
            if isinstance(settings, GithubConnector) and isinstance(connector, GitHub):
                every = settings.catch_up_every
                if every is not None and connector.is_app:
                    loop = self._github_catch_up(connector, every, settings.catch_up_window)
                    self._tasks.append(asyncio.create_task(loop, name=f"catch-up-{name}"))

    def _run_driver(self) -> RunDriver | None:
        """The blueprint runs of this worker, when the project has blueprints."""
        blueprints = load_blueprints(
            self.config.blueprint_dirs(), project_catalog([s for s in self.specs if s.enabled])
        )
        if not blueprints:
            return None
        self.http_sender = HttpxSender()
        effects = worker_effects(
            self.runtimes, self.connectors, self.backends.secrets, self.http_sender
        )
        return RunDriver(
            self.backends.store,
            self.backends.broker,
            Blueprints(blueprints),
            effects,
            instance=self.instance,
            runtime_version=__version__,
        )

    async def _github_catch_up(self, github: GitHub, every: float, window: float) -> None:
        """Every ``every`` seconds, redeliver the App's failed webhooks of the last ``window``
        seconds that the store does not hold, if this replica holds the connector's catch-up
        lease (one replica a round; another takes over when it dies)."""
        lease, store = f"github-catch-up:{github.name}", self.backends.store
        while True:
            await asyncio.sleep(every)
            try:
                if not await store.claim_lease(lease, self.instance, 2 * every):
                    continue
                report = await catch_up(github, store.has_delivery, since=time.time() - window)
            except (AppletError, GhappletsError) as exc:
                log.warning("GitHub catch-up failed", connector=github.name, error=str(exc))
                continue
            if report.redelivered or report.errors:
                log.info("GitHub catch-up", connector=github.name, **report.to_json())

    async def _housekeeping(self, every: float = RETENTION_EVERY) -> None:
        """Retention, every ``every`` seconds, by one replica at a time: see :meth:`retention`."""
        while True:
            await self.retention(lease_ttl=2 * every)
            await asyncio.sleep(every)

    async def retention(self, *, lease_ttl: float = 2 * RETENTION_EVERY) -> int | None:
        """Delete finished history older than ``storage.retention_days`` (deliveries with dead
        letters older than ``storage.dead_letter_retention_days``, and the audit lines of secret
        reads and of the admin API older than ``storage.audit_retention_days``; the dashboard's
        expired sessions), if this replica holds the retention lease (claimed, or renewed, for
        ``lease_ttl`` seconds): the number of deliveries deleted, or None when another replica
        holds it. A holder that dies lets it expire, and another replica takes over at its next
        round."""
        store = self.backends.store
        storage = self.config.storage
        now = time.time()
        try:
            if not await store.claim_lease(RETENTION_LEASE, self.instance, lease_ttl):
                return None
            cutoff = now - storage.retention_days * 86400
            pruned = await store.prune(
                cutoff, dead_older_than=now - storage.dead_letter_retention_days * 86400
            )
            # the embedded broker keeps settled messages, the ids seen, as long as the history
            await self.backends.broker.prune(cutoff)
            audit_cutoff = now - storage.audit_retention_days * 86400
            audit = await self.backends.secret_store.prune_secret_reads(audit_cutoff)
            admin_audit = await store.prune_audit(audit_cutoff)
            await store.prune_sessions(now)  # the dashboard's expired sessions
        except Exception as exc:
            log.warning("pruning failed", error=str(exc))
            return None
        if pruned:
            log.info("old deliveries pruned", count=pruned)
        if audit:
            log.info("old audit lines of secret reads pruned", count=audit)
        if admin_audit:
            log.info("old audit lines of the admin API pruned", count=admin_audit)
        return pruned

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
        if self.action_endpoint is not None:
            with contextlib.suppress(Exception):
                await self.action_endpoint.stop()
        if self.connectors is not None:
            with contextlib.suppress(Exception):
                await self.connectors.aclose()
        if self.http_sender is not None:
            with contextlib.suppress(Exception):
                await self.http_sender.aclose()
        with contextlib.suppress(Exception):  # another replica may prune now, not in an hour
            await self.backends.store.release_lease(RETENTION_LEASE, self.instance)
        await self.backends.close()
        log.info("platform stopped", jobs_left_for_redelivery=left)
        if self.log_sink is not None:
            await asyncio.to_thread(self.log_sink.close)

    async def ready(self) -> dict[str, str]:
        """``/readyz``: can the broker and the store serve now?"""
        b = self.backends
        checks: dict[str, str] = {}
        for name, ping in (("broker", b.broker.ping), ("store", b.store.ping)):
            try:
                async with asyncio.timeout(5.0):
                    await ping()
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"unavailable: {exc or type(exc).__name__}"
        return checks

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def render_metrics(self) -> bytes:
        """The metrics, with the queue depths read from the broker now."""
        for stream in (m.EVENTS, m.JOBS):
            try:
                async with asyncio.timeout(2.0):
                    depth = await self.backends.broker.depth(stream)
            except Exception as exc:  # a scrape must not fail because the broker is slow
                log.warning("queue depth unavailable", stream=stream, error=str(exc))
                continue
            self.metrics.queue_depth.labels(stream).set(depth)
        return self.metrics.render()

    def asgi(self) -> GatewayApp:
        return GatewayApp(self.ingest, self.ready, self.render_metrics, lifespan=self.lifespan)

    def admin_api(self, sessions: SessionResolver | None = None) -> AdminApi:
        """The admin API (``/api/v1``) on this process's backends; ``sessions`` resolves the
        dashboard's session cookie (see :class:`ghapplets.admin.auth.Authenticator`)."""
        from ghapplets.admin.app import AdminApi
        from ghapplets.admin.auth import Authenticator
        from ghapplets.admin.context import AdminContext
        from ghapplets.admin.tokens import TokenStore

        server = self.config.server
        auth = Authenticator(
            TokenStore(self.backends.store),
            proxies=TrustedProxies(server.trusted_proxies),
            sso=server.admin_sso,
            sessions=sessions,
        )
        loaded = self.specs if Role.WORKER in self.roles else None  # a worker has them
        ctx = AdminContext(self.loaded, self.backends, self.ready, self.sources, loaded)
        return AdminApi(ctx, auth, body_timeout=server.body_timeout)

    def admin_site(self) -> AdminSite:
        """What ``server.admin_address`` serves: the admin API at ``/api/v1`` and, unless
        ``server.dashboard.enabled`` is false, the web dashboard at ``/`` (its sessions are
        the API's session hook, so htmx can call the API with the cookie)."""
        from ghapplets.dashboard.app import Dashboard
        from ghapplets.dashboard.sessions import Sessions
        from ghapplets.dashboard.site import AdminSite as Site

        server = self.config.server
        settings = server.dashboard
        if not settings.enabled:
            return Site(self.admin_api(), None)
        sessions = Sessions(self.backends.store, settings.session_hours)
        api = self.admin_api(sessions=sessions.principal)
        proxies = TrustedProxies(server.trusted_proxies)
        return Site(api, Dashboard(api, sessions, settings, proxies))

    def http_protocol(self) -> type[GuardedProtocol]:
        """The HTTP protocol for uvicorn, with the ``server.*`` limits; what it refuses is
        counted in ``ghapplets_webhooks_rejected_total{source="_unknown"}``."""
        server = self.config.server
        limits = HttpLimits(
            header_timeout=server.header_timeout,
            max_headers=server.max_headers,
            max_header_bytes=server.max_header_bytes,
            keep_alive_timeout=server.keep_alive_timeout,
            max_connections=server.max_connections,
        )
        return guarded_protocol(limits, self._refused)

    def _refused(self, reason: RejectReason) -> None:
        self.metrics.rejected.labels(UNKNOWN, reason.value).inc()
