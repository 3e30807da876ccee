"""The building blocks of the DSL models: base classes, string forms, durations and timeouts.

Each model follows the DSL reference (``dsl-reference.md``) and the official JSON Schema: an object
that the schema closes (``unevaluatedProperties: false``) is a :class:`Closed` model, which
refuses unknown properties and explicit nulls; a mapping the schema leaves open on purpose
(CloudEvents extension attributes, ``additionalProperties: true``) is an :class:`Open` one.

Every union is discriminated (by the value's shape, or by which key is present) so that a wrong
value gets one precise error, not one per alternative. Union tags are written ``<like this>``;
:func:`file_path` drops them from an error location to get the key path in the file.

The models validate; they are not used to execute. The engine runs the plain data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ghapplets.blueprints.expressions import is_expression

# --- bases -------------------------------------------------------------------------------------


def _reject_null(cls: type[BaseModel], value: Any, info: ValidationInfo) -> Any:
    nullable: frozenset[str] = getattr(cls, "nullable", frozenset())
    if value is None and info.field_name not in nullable:
        raise PydanticCustomError("null", "expected a value, not null (leave the key out)")
    return value


class Closed(BaseModel):
    """A DSL object with a fixed set of properties: unknown ones are refused, and so is an
    explicit ``null`` for a property that is not ``any`` (``nullable``: those that may be)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    nullable: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _no_null(cls, value: Any, info: ValidationInfo) -> Any:
        return _reject_null(cls, value, info)

    def present(self, *keys: str) -> list[str]:
        """Which of the properties ``keys`` (as written in the file) are set."""
        fields = type(self).model_fields
        by_key = {(info.alias or name): name for name, info in fields.items()}
        return [key for key in keys if getattr(self, by_key[key]) is not None]

    def one_of(self, *keys: str, required: bool = True) -> None:
        """Refuse more than one of ``keys`` (and none, when ``required``)."""
        found = self.present(*keys)
        if len(found) > 1:
            raise PydanticCustomError(
                "one_of",
                "{found} cannot be combined: set exactly one of {keys}",
                {"found": " and ".join(found), "keys": ", ".join(keys)},
            )
        if required and not found:
            raise PydanticCustomError(
                "one_of", "set exactly one of {keys}", {"keys": ", ".join(keys)}
            )


class Open(Closed):
    """A DSL object whose listed properties are typed and whose other properties are free
    (CloudEvents extension attributes)."""

    model_config = ConfigDict(extra="allow", strict=True)


_TAG = re.compile(r"<[^<>]*>")


def file_path(loc: Iterable[str | int]) -> tuple[str | int, ...]:
    """A pydantic error location as a key path in the file: without the union tags."""
    return tuple(part for part in loc if not (isinstance(part, str) and _TAG.fullmatch(part)))


def shape(value: Any) -> str | None:
    """The discriminator of a "string or mapping" union."""
    if isinstance(value, str):
        return "<string>"
    if isinstance(value, dict):
        return "<object>"
    return None


def keyed(*keys: str) -> Any:
    """A discriminator that picks ``<key>`` for the first of ``keys`` present in a mapping, else
    ``<other>`` for a mapping (or None for anything else)."""

    def pick(value: Any) -> str | None:
        if not isinstance(value, dict):
            return None
        return next((f"<{key}>" for key in keys if key in value), "<other>")

    return pick


# --- strings -----------------------------------------------------------------------------------

_URI = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*://")
_TEMPLATE = re.compile(r"[^{}]*(\{[^{}]+\}[^{}]*)*", re.DOTALL)
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_NAME = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")
ISO_DURATION = re.compile(
    r"^P(?!$)(\d+(?:\.\d+)?Y)?(\d+(?:\.\d+)?M)?(\d+(?:\.\d+)?W)?(\d+(?:\.\d+)?D)?"
    r"(T(?=\d)(\d+(?:\.\d+)?H)?(\d+(?:\.\d+)?M)?(\d+(?:\.\d+)?S)?)?$"
)
_POINTER = re.compile(r"^(/([^~/]|~[01])*)*$", re.DOTALL)
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _expression(value: str) -> str:
    if not is_expression(value):
        raise PydanticCustomError("expression", "expected a runtime expression: ${ ... }")
    return value


def _uri(value: str) -> str:
    if not _URI.match(value):
        raise PydanticCustomError(
            "uri",
            "expected a URI with a scheme, like https://host/path (got {value})",
            {"value": repr(value)},
        )
    if not _TEMPLATE.fullmatch(value):
        raise PydanticCustomError(
            "uri_template",
            "unbalanced or nested braces in the URI template {value}",
            {"value": repr(value)},
        )
    return value


def _uri_or_expression(value: str) -> str:
    return value if is_expression(value) else _uri(value)


def _semver(value: str) -> str:
    if not _SEMVER.match(value):
        raise PydanticCustomError(
            "semver", "expected a semantic version like 1.0.0 (got {value})", {"value": repr(value)}
        )
    return value


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise PydanticCustomError(
            "name",
            "expected 1 to 63 letters, digits or '-', starting and ending with a letter or a "
            "digit (got {value})",
            {"value": repr(value)},
        )
    return value


def _pointer_or_expression(value: str) -> str:
    if not is_expression(value) and not _POINTER.match(value):
        raise PydanticCustomError(
            "json_pointer", "expected a JSON pointer like /do/0/task, or a runtime expression"
        )
    return value


def _date_time_or_expression(value: str) -> str:
    if not is_expression(value) and not _DATE_TIME.match(value):
        raise PydanticCustomError(
            "date_time",
            "expected an RFC 3339 date-time like 2024-07-26T16:59:57Z, or a runtime expression",
        )
    return value


def _duration_string(value: str) -> str:
    if not is_expression(value) and not ISO_DURATION.match(value):
        raise PydanticCustomError(
            "duration",
            "expected an ISO 8601 duration like PT30S, a runtime expression, or a mapping like "
            "{seconds: 30} (got {value})",
            {"value": repr(value)},
        )
    return value


def _non_empty(value: str) -> str:
    if not value:
        raise PydanticCustomError("empty", "expected a non-empty string")
    return value


RuntimeExpression = Annotated[str, AfterValidator(_expression)]
UriTemplate = Annotated[str, AfterValidator(_uri)]
UriOrExpression = Annotated[str, AfterValidator(_uri_or_expression)]
SemVer = Annotated[str, AfterValidator(_semver)]
DnsName = Annotated[str, AfterValidator(_name)]
NonEmpty = Annotated[str, AfterValidator(_non_empty)]
PointerOrExpression = Annotated[str, AfterValidator(_pointer_or_expression)]
DateTimeOrExpression = Annotated[str, AfterValidator(_date_time_or_expression)]
DurationString = Annotated[str, AfterValidator(_duration_string)]

StringOrMapping = Annotated[
    Annotated[str, Tag("<string>")] | Annotated[dict[str, Any], Tag("<object>")],
    Discriminator(
        shape,
        custom_error_type="string_or_mapping",
        custom_error_message="expected a runtime expression (a string) or a mapping",
    ),
]

# --- durations and timeouts --------------------------------------------------------------------


class DurationObject(Closed):
    """A duration by its parts (at least one)."""

    days: int | None = None
    hours: int | None = None
    minutes: int | None = None
    seconds: int | None = None
    milliseconds: int | None = None

    @model_validator(mode="after")
    def _some(self) -> DurationObject:
        if not self.present("days", "hours", "minutes", "seconds", "milliseconds"):
            raise PydanticCustomError(
                "duration", "a duration needs days, hours, minutes, seconds or milliseconds"
            )
        return self


Duration = Annotated[
    Annotated[DurationString, Tag("<string>")] | Annotated[DurationObject, Tag("<object>")],
    Discriminator(
        shape,
        custom_error_type="duration",
        custom_error_message="expected a duration: an ISO 8601 string like PT30S, a runtime "
        "expression, or a mapping like {seconds: 30}",
    ),
]


class Timeout(Closed):
    after: Duration


TimeoutOrName = Annotated[
    Annotated[str, Tag("<string>")] | Annotated[Timeout, Tag("<object>")],
    Discriminator(
        shape,
        custom_error_type="timeout",
        custom_error_message="expected a timeout ({after: duration}) or the name of one in "
        "use.timeouts",
    ),
]


__all__ = [
    "ISO_DURATION",
    "Closed",
    "DateTimeOrExpression",
    "DnsName",
    "Duration",
    "DurationObject",
    "DurationString",
    "NonEmpty",
    "Open",
    "PointerOrExpression",
    "RuntimeExpression",
    "SemVer",
    "StringOrMapping",
    "Timeout",
    "TimeoutOrName",
    "UriOrExpression",
    "UriTemplate",
    "file_path",
    "is_expression",
    "keyed",
    "shape",
]
