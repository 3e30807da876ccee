"""The project configuration ``ghapplets.yaml`` as pydantic models.

Source entries are kept loose here (``kind`` plus kind-specific keys) and validated against
their kind's own settings model by :mod:`ghapplets.config.loader`, so errors name the right keys.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ghapplets.applets.model import NAME_PATTERN
from ghapplets.connectors.config import ConnectorConfig
from ghapplets.secrets.config import EmbeddedSecrets, SecretsConfig
from ghapplets.store.records import Role

DEFAULT_MAX_BODY = 25 * 1024 * 1024
HEADER_NAME = r"^[A-Za-z0-9-]{1,64}$"


class AdminSsoConfig(BaseModel):
    """``server.admin_sso``: single sign-on to the admin API through an authenticating proxy
    (oauth2-proxy, ...). A request whose TCP peer is one of ``server.trusted_proxies`` and that
    carries ``user_header`` is the user it names, with the highest role its groups map to in
    ``groups`` (``groups_header`` lists them, comma-separated), else ``default_role``; a user
    with neither is refused (403). From any other peer these headers are ignored."""

    model_config = ConfigDict(extra="forbid")

    user_header: Annotated[str, Field(pattern=HEADER_NAME)] = "X-Forwarded-User"
    email_header: Annotated[str, Field(pattern=HEADER_NAME)] | None = "X-Forwarded-Email"
    groups_header: Annotated[str, Field(pattern=HEADER_NAME)] | None = "X-Forwarded-Groups"
    groups: dict[Annotated[str, Field(min_length=1, max_length=256)], Role] = Field(
        default_factory=dict
    )
    default_role: Role | None = None


class SecureCookie(StrEnum):
    """When the dashboard's session cookie is marked ``Secure`` (sent over HTTPS only)."""

    AUTO = "auto"  # when the request came over HTTPS (as the trusted proxies tell)
    ALWAYS = "always"
    NEVER = "never"


class DashboardConfig(BaseModel):
    """``server.dashboard``: the web dashboard at the root of ``server.admin_address``
    (docs/dashboard.md). Its limits are per gateway process."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True  # false: the admin address serves the API alone
    session_hours: Annotated[float, Field(gt=0, le=24 * 30)] = 8.0  # a sign-in lasts this long
    secure_cookie: SecureCookie = SecureCookie.AUTO
    live_connections: Annotated[int, Field(ge=0, le=10_000)] = 50  # open live streams, at most
    live_seconds: Annotated[float, Field(ge=5, le=86_400)] = 300.0  # one stream's life, at most


class ServerConfig(BaseModel):
    """The HTTP server of the gateway: where it listens, whom it believes, and its limits.

    Every limit is per gateway process (``serve --processes N`` runs N of them).
    """

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    max_body_bytes: Annotated[int, Field(gt=0)] = DEFAULT_MAX_BODY
    body_timeout: Annotated[float, Field(gt=0)] = 30.0
    drain_timeout: Annotated[float, Field(ge=0)] = 30.0
    # the proxies (CIDRs) whose X-Forwarded-For is believed; empty: the TCP peer is the client
    trusted_proxies: list[str] = Field(default_factory=list)
    # host:port of a separate /metrics listener; unset: /metrics on the webhook port
    metrics_address: str | None = None
    # host:port of the admin API (/api/v1), never on the webhook port; null or "": none
    admin_address: str | None = "127.0.0.1:8081"
    # single sign-on to the admin API through an authenticating proxy (off when unset)
    admin_sso: AdminSsoConfig | None = None
    # the web dashboard at the root of the admin address
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig)
    header_timeout: Annotated[float, Field(gt=0, le=3600)] = 10.0
    max_headers: Annotated[int, Field(ge=8, le=10_000)] = 100
    max_header_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 64 * 1024
    keep_alive_timeout: Annotated[float, Field(gt=0, le=3600)] = 5.0
    max_connections: Annotated[int, Field(ge=1, le=1_000_000)] = 1024

    # removed: any value is an error that names its replacement (``trusted_proxies``)
    trust_forwarded_for: Annotated[None, Field(exclude=True)] = None

    @field_validator("trust_forwarded_for", mode="before")
    @classmethod
    def _removed(cls, value: Any) -> None:
        raise ValueError(
            "trust_forwarded_for was replaced by trusted_proxies: list the proxies whose "
            "X-Forwarded-For may be believed, as CIDRs (e.g. [10.0.0.0/8]); see docs/security.md"
        )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_list(cls, value: Any) -> Any:
        if isinstance(value, str):  # GHAPPLETS_SERVER__TRUSTED_PROXIES=10.0.0.0/8,192.0.2.7
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"{cidr!r} is not an IP address or CIDR network") from None
        return value

    @field_validator("admin_address", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("metrics_address", "admin_address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None:
            split_address(value)
        return value

    @model_validator(mode="after")
    def _ports_are_their_own(self) -> ServerConfig:
        taken = {self.port: "the webhook port"}
        for key in ("metrics_address", "admin_address"):
            address = getattr(self, key)
            if address is None:
                continue
            _, port = split_address(address)
            if port != 0 and port in taken:
                raise ValueError(f"{key} {address!r} uses {taken[port]} {port}")
            taken[port] = f"the port of {key}"
        return self

    @model_validator(mode="after")
    def _sso_needs_proxies(self) -> ServerConfig:
        if self.admin_sso is not None and not self.trusted_proxies:
            raise ValueError(
                "admin_sso needs trusted_proxies: the proxies whose user headers are believed"
            )
        return self

    @property
    def metrics_listener(self) -> tuple[str, int] | None:
        """``metrics_address`` as ``(host, port)``, or None when /metrics is on the webhook port."""
        return None if self.metrics_address is None else split_address(self.metrics_address)

    @property
    def admin_listener(self) -> tuple[str, int] | None:
        """``admin_address`` as ``(host, port)``, or None when there is no admin API."""
        return None if self.admin_address is None else split_address(self.admin_address)


def split_address(value: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> ``(host, port)``; ``ValueError`` saying what is wrong."""
    host, sep, port = value.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{value!r} is not host:port (e.g. 127.0.0.1:9090 or [::1]:9090)")
    return host, int(port)


class SyncMode(StrEnum):
    """How the embedded SQLite database commits (its ``PRAGMA synchronous``).

    ``normal``: a commit reaches the operating system before it is acknowledged; it survives a
    crash or ``kill -9`` of any process, but a power loss or kernel crash may lose the last
    commits before it (never corrupting the file). ``full``: every commit is also flushed to
    the disk (an fsync) first, so it survives a power loss too, at the cost of that fsync.
    """

    NORMAL = "normal"
    FULL = "full"


class StorageConfig(BaseModel):
    """Where deliveries, jobs, the embedded secrets and the audit of secret reads are kept: the
    embedded SQLite file or PostgreSQL."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["sqlite", "postgresql"] = "sqlite"
    url: str | None = None  # postgresql://user@host:5432/db (postgresql only)
    pool_size: Annotated[int, Field(ge=1, le=1000)] = 10
    sync: SyncMode = SyncMode.NORMAL
    # the old name of ``sync``, still read (see ProjectConfig.deprecations)
    synchronous: SyncMode | None = None
    batch_max: Annotated[int, Field(ge=1, le=10000)] = 512
    retention_days: Annotated[float, Field(gt=0)] = 30.0
    dead_letter_retention_days: Annotated[float, Field(gt=0)] = 90.0
    # the audit log of secret reads (ghapplets secrets audit)
    audit_retention_days: Annotated[float, Field(gt=0)] = 90.0

    @model_validator(mode="after")
    def _url_for_postgresql(self) -> StorageConfig:
        if self.backend == "postgresql" and not self.url:
            raise ValueError("storage.url is required with backend: postgresql")
        if self.url and not self.url.startswith(("postgresql://", "postgres://")):
            raise ValueError("storage.url must start with postgresql://")
        return self

    @model_validator(mode="after")
    def _old_sync_name(self) -> StorageConfig:
        if self.synchronous is None:
            return self
        if "sync" in self.model_fields_set and self.sync != self.synchronous:
            raise ValueError(
                "storage.synchronous is the old name of storage.sync: give only storage.sync"
            )
        self.sync = self.synchronous
        return self


class BrokerConfig(BaseModel):
    """The durable queue between gateway and workers: embedded SQLite or NATS JetStream."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["sqlite", "nats"] = "sqlite"
    url: str | None = None  # nats://h1:4222,nats://h2:4222 (nats only)
    replicas: Literal[1, 3, 5] = 1
    prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")] = "ghapplets"
    duplicate_window: Annotated[float, Field(gt=0, le=86400)] = 120.0
    ack_wait: Annotated[float, Field(gt=0, le=3600)] = 30.0
    max_ack_pending: Annotated[int, Field(ge=1, le=1_000_000)] = 1024
    publish_timeout: Annotated[float, Field(gt=0, le=300)] = 8.0  # rides out a leader election

    @model_validator(mode="after")
    def _url_for_nats(self) -> BrokerConfig:
        if self.backend == "nats" and not self.url:
            raise ValueError("broker.url is required with backend: nats")
        if self.url and not all(
            u.strip().startswith(("nats://", "tls://")) for u in self.url.split(",")
        ):
            raise ValueError("broker.url must be nats://host:port, comma-separated for a cluster")
        return self


HEC_EVENT_PATH = "/services/collector/event"


class SplunkHecConfig(BaseModel):
    """``logging.splunk_hec``: ship each process's own log lines to Splunk's HTTP Event
    Collector (:mod:`ghapplets.logsink`). ``token`` may be a ``${env:..}``/``${secret:..}``
    reference, resolved when the process starts; ``verify`` a CA bundle's path (relative to the
    project), checked by the loader."""

    model_config = ConfigDict(extra="forbid")

    url: str  # the HEC's base: scheme, host, port (and a proxy's path prefix, if any)
    token: Annotated[str, Field(min_length=1)]
    index: Annotated[str, Field(min_length=1)] | None = None  # None: the token's default index
    sourcetype: Annotated[str, Field(min_length=1)] = "ghapplets"
    source: Annotated[str, Field(min_length=1)] | None = None  # None: ghapplets:<command>
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 100
    flush_interval: Annotated[float, Field(gt=0, le=60)] = 1.0
    queue_size: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000
    timeout: Annotated[float, Field(gt=0, le=300)] = 10.0
    verify: bool | str = True  # false, or a CA bundle (PEM) to trust instead of the public CAs

    @field_validator("url")
    @classmethod
    def _hec_base(cls, value: str) -> str:
        example = "e.g. https://splunk.example.com:8088"
        parts = urlsplit(value.strip())
        try:
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            port_ok = False
        if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
            raise ValueError(f"{value!r} is not an http(s)://host[:port] URL ({example})")
        if parts.username is not None or parts.query or parts.fragment:
            raise ValueError("url takes no credentials, query or fragment: the token is 'token'")
        if "/services/collector" in parts.path:
            raise ValueError(
                f"url is the HEC's base URL ({example}), without /services/collector: "
                f"the log lines go to <url>{HEC_EVENT_PATH}"
            )
        return value.strip().rstrip("/")

    @property
    def endpoint(self) -> str:
        return self.url + HEC_EVENT_PATH


class LoggingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["auto", "console", "json"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"
    splunk_hec: SplunkHecConfig | None = None  # ship the log lines to Splunk too


class WorkerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    poll_interval: Annotated[float, Field(gt=0, le=60)] = 0.5
    dispatch_batch: Annotated[int, Field(ge=1, le=10000)] = 256
    # the local action endpoint of exec and HTTP applets (port 0: a free one)
    actions_address: str = "127.0.0.1:0"
    actions_url: Annotated[str, Field(pattern=r"^https?://")] | None = None  # as handed out

    @field_validator("actions_address")
    @classmethod
    def _address(cls, value: str) -> str:
        split_address(value)
        return value

    @property
    def actions_listener(self) -> tuple[str, int]:
        return split_address(self.actions_address)


class SourceEntry(BaseModel):
    """A source as written in the file: ``kind`` plus the keys its kind accepts."""

    model_config = ConfigDict(extra="allow")

    kind: str


class ProjectConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: Annotated[str, Field(pattern=NAME_PATTERN)] = "ghapplets"
    sources: dict[Annotated[str, Field(pattern=NAME_PATTERN)], SourceEntry] = Field(
        default_factory=dict
    )
    applets: list[str] = Field(default_factory=list)
    blueprints: list[str] = Field(default_factory=list)  # folders of blueprint files
    connectors: dict[Annotated[str, Field(pattern=NAME_PATTERN)], ConnectorConfig] = Field(
        default_factory=dict
    )
    server: ServerConfig = Field(default_factory=ServerConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    secrets: SecretsConfig = Field(default_factory=EmbeddedSecrets)

    # not part of the file: where it was read from
    root: Path = Field(default=Path("."), exclude=True)

    def applet_dirs(self) -> list[Path]:
        return [(self.root / p).resolve() for p in self.applets]

    def blueprint_dirs(self) -> list[Path]:
        return [(self.root / p).resolve() for p in self.blueprints]

    def deprecations(self) -> list[str]:
        """Old spellings still accepted, each with what to write instead."""
        notes = []
        if self.storage.synchronous is not None:
            notes.append(
                f"storage.synchronous is deprecated: write 'storage.sync: "
                f"{self.storage.synchronous.value}' instead"
            )
        return notes
