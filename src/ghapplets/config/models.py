"""The project configuration ``ghapplets.yaml`` as pydantic models.

Source entries are kept loose here (``kind`` plus kind-specific keys) and validated against
their kind's own settings model by :mod:`ghapplets.config.loader`, so errors name the right keys.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ghapplets.applets.model import NAME_PATTERN

DEFAULT_MAX_BODY = 25 * 1024 * 1024


class ServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    max_body_bytes: Annotated[int, Field(gt=0)] = DEFAULT_MAX_BODY
    body_timeout: Annotated[float, Field(gt=0)] = 30.0
    drain_timeout: Annotated[float, Field(ge=0)] = 30.0
    trust_forwarded_for: bool = False


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
    """Where deliveries, jobs and secrets are kept: the embedded SQLite file or PostgreSQL."""

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


class LoggingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["auto", "console", "json"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


class WorkerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    poll_interval: Annotated[float, Field(gt=0, le=60)] = 0.5
    dispatch_batch: Annotated[int, Field(ge=1, le=10000)] = 256


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
    server: ServerConfig = Field(default_factory=ServerConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)

    # not part of the file: where it was read from
    root: Path = Field(default=Path("."), exclude=True)

    def applet_dirs(self) -> list[Path]:
        return [(self.root / p).resolve() for p in self.applets]

    def deprecations(self) -> list[str]:
        """Old spellings still accepted, each with what to write instead."""
        notes = []
        if self.storage.synchronous is not None:
            notes.append(
                f"storage.synchronous is deprecated: write 'storage.sync: "
                f"{self.storage.synchronous.value}' instead"
            )
        return notes
