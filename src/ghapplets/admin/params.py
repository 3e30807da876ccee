"""What an admin API request may carry: query parameters and bodies as pydantic models, the
opaque page cursor, and turning them into the store's filters.

Every model forbids unknown fields, so a misspelt parameter is a 400 naming it, not a filter
silently ignored. ``limit`` is clamped to :data:`MAX_LIMIT`; text parameters are bounded.
Times (``since``, ``until``) are epoch seconds or ISO 8601 date-times (UTC unless they say).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from ghapplets.admin.problems import bad_parameter
from ghapplets.admin.tokens import TOKEN_NAME_PATTERN
from ghapplets.store import listing
from ghapplets.store.records import DeliveryStatus, JobStatus, Role, RunStatus

DEFAULT_LIMIT = 50
MAX_LIMIT = 200  # a larger limit is clamped to this
MAX_BULK = 1000  # dead letters replayed by one request at most
TEXT_MAX = 512  # characters of a filter's text


def _epoch(value: Any) -> Any:
    """Epoch seconds from a number or an ISO 8601 date-time text."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("not epoch seconds or an ISO 8601 date-time") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    return value


Epoch = Annotated[
    float,
    BeforeValidator(_epoch),
    Field(ge=0, le=1e11, allow_inf_nan=False),
    WithJsonSchema(
        {
            "anyOf": [{"type": "number"}, {"type": "string", "format": "date-time"}],
            "description": "epoch seconds, or an ISO 8601 date-time (UTC unless it says)",
        }
    ),
]
Text = Annotated[str, Field(min_length=1, max_length=TEXT_MAX)]


def _clamp(value: Any) -> Any:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > MAX_LIMIT:
        return MAX_LIMIT
    return value


Limit = Annotated[
    int,
    BeforeValidator(_clamp),
    Field(ge=1, le=MAX_LIMIT, description=f"page size, 1 to {MAX_LIMIT} (more is clamped)"),
]
Cursor = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        description="next_cursor of the previous page (opaque)",
    ),
]


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Paged(Params):
    limit: Limit = DEFAULT_LIMIT
    cursor: Cursor | None = None
    since: Epoch | None = Field(None, description="at or after this time")
    until: Epoch | None = Field(None, description="before this time")


class DeliveryQuery(Paged):
    source: Text | None = None
    type: Text | None = Field(None, description="exact CloudEvent type; ending in * a prefix")
    subject: Text | None = Field(None, description="exact subject")
    q: Text | None = Field(None, description="a substring of the subject, in any case")
    status: DeliveryStatus | None = None
    applet: Text | None = Field(None, description="deliveries with a job of this applet")

    def filter(self) -> listing.DeliveryFilter:
        return listing.DeliveryFilter(
            source=self.source,
            type=self.type,
            subject=self.subject,
            q=self.q,
            status=self.status,
            applet=self.applet,
            since=self.since,
            until=self.until,
        )


class JobQuery(Paged):
    source: Text | None = None
    applet: Text | None = None
    status: JobStatus | None = None
    delivery: Text | None = Field(None, description="the delivery's id")

    def filter(self) -> listing.JobFilter:
        return listing.JobFilter(
            source=self.source,
            applet=self.applet,
            status=self.status,
            delivery_id=self.delivery,
            since=self.since,
            until=self.until,
        )


MAX_TIMES = 5000  # attempts an applet-times answer holds at most


class AppletTimesQuery(Params):
    since: Epoch = Field(description="attempts that finished at or after this time")
    limit: Annotated[int, Field(ge=1, le=MAX_TIMES)] = 2000


class DeadLetterFilterFields(Params):
    source: Text | None = None
    applet: Text | None = None
    since: Epoch | None = Field(None, description="dead at or after this time")
    until: Epoch | None = Field(None, description="dead before this time")

    def filter(self) -> listing.DeadLetterFilter:
        return listing.DeadLetterFilter(
            source=self.source, applet=self.applet, since=self.since, until=self.until
        )


class DeadLetterQuery(DeadLetterFilterFields):
    limit: Limit = DEFAULT_LIMIT
    cursor: Cursor | None = None


class DeadLetterReplay(DeadLetterFilterFields):
    """The dead letters to replay: the list's filters, and how many at most (oldest first)."""

    limit: Annotated[int, Field(ge=1, le=MAX_BULK)] = 100


class RunQuery(Paged):
    status: RunStatus | None = None
    blueprint: Text | None = Field(None, description="the blueprint's name")

    def filter(self) -> listing.RunFilter:
        return listing.RunFilter(
            status=self.status, blueprint=self.blueprint, since=self.since, until=self.until
        )


class AuditQuery(Paged):
    actor: Text | None = None
    action: Text | None = None

    def filter(self) -> listing.AuditFilter:
        return listing.AuditFilter(
            actor=self.actor, action=self.action, since=self.since, until=self.until
        )


class Rerun(Params):
    from_: Annotated[str, Field(alias="from", min_length=1, max_length=TEXT_MAX)] = Field(
        description="the task (name or reference) to run again from"
    )
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TokenRequest(Params):
    name: Annotated[str, Field(pattern=TOKEN_NAME_PATTERN)]
    role: Role


# -- cursors -------------------------------------------------------------------------------------
def encode_cursor(kind: str, key: Sequence[Any]) -> str:
    """An opaque cursor: the list's kind and the last record's key, URL-safe base64 of JSON."""
    raw = orjson.dumps([kind, list(key)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str | None, kind: str, shape: Sequence[type]) -> tuple[Any, ...] | None:
    """The key a cursor carries, checked against the list's ``kind`` and key ``shape`` (its
    types); a 400 naming ``cursor`` when it is not one of this list's."""
    if text is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        found_kind, key = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise bad_parameter("cursor", "not a cursor this API gave") from None
    if found_kind != kind or not isinstance(key, list) or len(key) != len(shape):
        raise bad_parameter("cursor", f"not a cursor of this list ({kind})")
    values: list[Any] = []
    for value, wanted in zip(key, shape, strict=True):
        if wanted is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, wanted) or isinstance(value, bool):
            raise bad_parameter("cursor", "not a cursor this API gave")
        values.append(value)
    return tuple(values)
