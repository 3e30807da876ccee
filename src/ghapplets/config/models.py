"""The project configuration ``ghapplets.yaml`` as pydantic models.

Source entries are kept loose here (``kind`` plus kind-specific keys) and validated against
their kind's own settings model by :mod:`ghapplets.config.loader`, so errors name the right keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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


class StorageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["sqlite"] = "sqlite"
    synchronous: Literal["normal", "full"] = "normal"
    batch_max: Annotated[int, Field(ge=1, le=10000)] = 512
    retention_days: Annotated[float, Field(gt=0)] = 30.0


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
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)

    # not part of the file: where it was read from
    root: Path = Field(default=Path("."), exclude=True)

    def applet_dirs(self) -> list[Path]:
        return [(self.root / p).resolve() for p in self.applets]


def source_extra(entry: SourceEntry) -> dict[str, Any]:
    return entry.model_dump()
