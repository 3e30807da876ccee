"""The applet model every runtime shares: manifest fields, subscriptions, retry policy.

An ``applet.yaml`` manifest and the Python ``@on(...)`` decorator both produce an
:class:`AppletSpec`. This module is sans-I/O.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


def _secret_name(name: str) -> str:
    from ghapplets.secrets.names import check_name  # light: no cryptography, no I/O

    try:
        check_name(name)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    return name


SecretName = Annotated[str, AfterValidator(_secret_name)]


class Subscription(BaseModel):
    """A CloudEvent ``type`` pattern (``*`` matches any run of characters, dots included) and
    an optional jq condition evaluated on the structured event; truthy means match."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(min_length=1)
    when: str | None = None


class RetryPolicy(BaseModel):
    """Exponential backoff with full jitter: delay n = uniform(0, min(max, initial*factor^(n-1)))
    bounded below by ``initial/2`` so delays always grow in expectation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: Annotated[int, Field(ge=1, le=100)] = 5
    initial_delay: Annotated[float, Field(gt=0, le=3600)] = 1.0
    max_delay: Annotated[float, Field(gt=0, le=86400)] = 300.0
    factor: Annotated[float, Field(ge=1, le=10)] = 2.0
    jitter: bool = True


class AppletSpec(BaseModel):
    """One applet, whatever its runtime."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    runtime: Literal["python", "exec", "http"]
    on: list[Subscription] = Field(default_factory=list)
    description: str | None = None
    # exec
    command: list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    max_output_bytes: Annotated[int, Field(gt=0)] = 1024 * 1024
    # http
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    # python
    entry: str | None = None
    # common
    secrets: list[SecretName] = Field(default_factory=list)
    # the project's connectors (ghapplets.yaml connectors:) whose actions the applet may call
    connectors: list[Annotated[str, Field(pattern=NAME_PATTERN)]] = Field(default_factory=list)
    timeout: Annotated[float, Field(gt=0, le=3600)] = 30.0
    concurrency: Annotated[int, Field(ge=1, le=1024)] = 4
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    enabled: bool = True
    # where it was loaded from (not part of the manifest)
    folder: Path | None = Field(default=None, exclude=True)

    @field_validator("on", mode="before")
    @classmethod
    def _coerce_subscriptions(cls, value: object) -> object:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [{"type": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _runtime_fields(self) -> AppletSpec:
        if self.runtime == "exec" and not self.command:
            raise ValueError("runtime 'exec' needs 'command': [program, args...]")
        if self.runtime == "http" and not self.url:
            raise ValueError("runtime 'http' needs 'url'")
        if self.runtime == "http" and self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError("'url' must start with http:// or https://")
        if self.runtime == "python" and not self.entry:
            raise ValueError("runtime 'python' needs 'entry': 'module.py' or 'module.py:object'")
        return self
