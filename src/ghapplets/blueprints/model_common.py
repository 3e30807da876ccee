"""Pydantic models of the DSL objects that the tasks share: schemas and the data flow (``input``,
``output``, ``export``), errors and error filters, retry policies, and events (properties,
filters, correlations, consumption strategies). See :mod:`.model_base` for the conventions.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag, model_validator
from pydantic_core import PydanticCustomError

from ghapplets.blueprints.model_auth import ExternalResource
from ghapplets.blueprints.model_base import (
    Closed,
    DateTimeOrExpression,
    Duration,
    Open,
    PointerOrExpression,
    StringOrMapping,
    UriOrExpression,
    shape,
)

# --- schemas and the data flow -----------------------------------------------------------------


class Schema(Closed):
    """A schema, inline (``document``) or external (``resource``). ``format`` defaults to
    ``json`` (the JSON Schema's default; the reference calls it required, its examples omit
    it)."""

    format: str = "json"
    document: dict[str, Any] | None = None
    resource: ExternalResource | None = None

    @model_validator(mode="after")
    def _one(self) -> Schema:
        self.one_of("document", "resource")
        return self


class Input(Closed):
    schema_: Schema | None = Field(None, alias="schema")
    from_: StringOrMapping | None = Field(None, alias="from")


class Output(Closed):
    schema_: Schema | None = Field(None, alias="schema")
    as_: StringOrMapping | None = Field(None, alias="as")


class Export(Closed):
    schema_: Schema | None = Field(None, alias="schema")
    as_: StringOrMapping | None = Field(None, alias="as")


# --- errors and retries ------------------------------------------------------------------------


class Error(Closed):
    """A Problem Details error (RFC 7807)."""

    type: UriOrExpression
    status: int
    instance: PointerOrExpression | None = None
    title: str | None = None
    detail: str | None = None


ErrorOrName = Annotated[
    Annotated[str, Tag("<string>")] | Annotated[Error, Tag("<object>")],
    Discriminator(
        shape,
        custom_error_type="error",
        custom_error_message="expected an error (a mapping) or the name of one in use.errors",
    ),
]


class ErrorFilter(Closed):
    """The static error filter of a catch. The JSON Schema names the detail ``details`` while an
    error's property is ``detail``: both are accepted."""

    type: str | None = None
    status: int | None = None
    instance: str | None = None
    title: str | None = None
    details: str | None = None
    detail: str | None = None

    @model_validator(mode="after")
    def _some(self) -> ErrorFilter:
        if not self.model_fields_set:
            raise PydanticCustomError(
                "error_filter", "an error filter needs at least one of type, status, ..."
            )
        return self


class CatchErrors(Closed):
    with_: ErrorFilter | None = Field(None, alias="with")


class Backoff(Closed):
    """Exactly one strategy; its settings are not specified by the DSL (any mapping)."""

    constant: dict[str, Any] | None = None
    exponential: dict[str, Any] | None = None
    linear: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one(self) -> Backoff:
        self.one_of("constant", "exponential", "linear")
        return self


class AttemptLimit(Closed):
    count: int | None = None
    duration: Duration | None = None


class RetryLimit(Closed):
    attempt: AttemptLimit | None = None
    duration: Duration | None = None


class Jitter(Closed):
    from_: Duration = Field(alias="from")
    to: Duration


class RetryPolicy(Closed):
    when: str | None = None
    except_when: str | None = Field(None, alias="exceptWhen")
    delay: Duration | None = None
    backoff: Backoff | None = None
    limit: RetryLimit | None = None
    jitter: Jitter | None = None


RetryOrName = Annotated[
    Annotated[str, Tag("<string>")] | Annotated[RetryPolicy, Tag("<object>")],
    Discriminator(
        shape,
        custom_error_type="retry",
        custom_error_message="expected a retry policy (a mapping) or the name of one in "
        "use.retries",
    ),
]

# --- events ------------------------------------------------------------------------------------


class EventProperties(Open):
    """CloudEvents attributes; other (extension) attributes are free."""

    nullable = frozenset({"data"})

    id: str | None = None
    source: UriOrExpression | None = None
    type: str | None = None
    time: DateTimeOrExpression | None = None
    subject: str | None = None
    datacontenttype: str | None = None
    dataschema: UriOrExpression | None = None
    data: Any = None


class FilterProperties(EventProperties):
    """The attributes an event filter matches: at least one."""

    @model_validator(mode="after")
    def _some(self) -> FilterProperties:
        if not self.model_fields_set and not self.model_extra:
            raise PydanticCustomError(
                "event_filter", "an event filter needs at least one attribute (type, source, ...)"
            )
        return self


class EmittedProperties(EventProperties):
    """The attributes of an event to emit: ``source`` and ``type`` are required (``id``, that
    the reference also calls required, is generated by the runtime when absent, as in the
    official examples)."""

    source: UriOrExpression
    type: str


class Correlation(Closed):
    from_: str = Field(alias="from")
    expect: str | None = None


class EventFilter(Closed):
    with_: FilterProperties = Field(alias="with")
    correlate: dict[str, Correlation] | None = None


class EventConsumptionUntil(Closed):
    """The events whose consumption stops a listen (an ``until`` has no ``until`` itself)."""

    all: list[EventFilter] | None = None
    any: list[EventFilter] | None = None
    one: EventFilter | None = None

    @model_validator(mode="after")
    def _one(self) -> EventConsumptionUntil:
        self.one_of("all", "any", "one")
        return self


Until = Annotated[
    Annotated[str, Tag("<string>")] | Annotated[EventConsumptionUntil, Tag("<object>")],
    Discriminator(
        shape,
        custom_error_type="until",
        custom_error_message="expected a runtime expression or the events to consume (all, "
        "any or one)",
    ),
]


class EventConsumptionStrategy(EventConsumptionUntil):
    """Which events to consume: ``all``, ``any`` (with an optional ``until``) or ``one``."""

    until: Until | None = None

    @model_validator(mode="after")
    def _until_with_any(self) -> EventConsumptionStrategy:
        if self.until is not None and self.any is None:
            raise PydanticCustomError("until", "'until' only applies to 'any'")
        return self


__all__ = [
    "AttemptLimit",
    "Backoff",
    "CatchErrors",
    "Correlation",
    "EmittedProperties",
    "Error",
    "ErrorFilter",
    "ErrorOrName",
    "EventConsumptionStrategy",
    "EventConsumptionUntil",
    "EventFilter",
    "EventProperties",
    "Export",
    "FilterProperties",
    "Input",
    "Jitter",
    "Output",
    "RetryLimit",
    "RetryOrName",
    "RetryPolicy",
    "Schema",
    "Until",
]
