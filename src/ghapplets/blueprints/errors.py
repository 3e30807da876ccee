"""The DSL's errors: the standard error types, building a :class:`BlueprintError`, catch filters.

A blueprint error is a Problem Details object (RFC 7807, see the DSL's "Errors" and the
reference's "Error"); :class:`~ghapplets.exceptions.BlueprintError` carries one. This module
owns what the DSL says about them:

- :class:`ErrorKind`: the eight standard error types, each with its URI and default status;
- :func:`raise_error`: a :class:`BlueprintError` of a standard kind, to ``raise``;
- :func:`type_matches` and :func:`error_matches`: whether a ``catch.errors.with`` filter catches
  an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from ghapplets.exceptions import BlueprintError

__all__ = [
    "ERROR_TYPE_PREFIX",
    "LEGACY_ERROR_TYPE_PREFIX",
    "BlueprintError",
    "ErrorKind",
    "error_matches",
    "raise_error",
    "type_matches",
]

ERROR_TYPE_PREFIX = "https://serverlessworkflow.io/spec/1.0.0/errors/"
"""The standard error types of DSL 1.0: this prefix and the kind (``.../errors/timeout``)."""

LEGACY_ERROR_TYPE_PREFIX = "https://serverlessworkflow.io/dsl/errors/types/"
"""The older spelling of the same types, still in the reference's ``try`` example."""


class ErrorKind(StrEnum):
    """The standard error types (the reference's "Standard Error Types" table)."""

    CONFIGURATION = "configuration"
    VALIDATION = "validation"
    EXPRESSION = "expression"
    AUTHENTICATION = "authentication"
    AUTHORIZATION = "authorization"
    TIMEOUT = "timeout"
    COMMUNICATION = "communication"
    RUNTIME = "runtime"

    @property
    def type(self) -> str:
        """The type URI, e.g. ``https://serverlessworkflow.io/spec/1.0.0/errors/timeout``."""
        return ERROR_TYPE_PREFIX + self.value

    @property
    def status(self) -> int:
        """The default status of the kind (the table's; the best-fitting one should be used)."""
        return _STATUS[self]

    @property
    def default_title(self) -> str:
        """The title :func:`raise_error` gives an error of this kind when none is given."""
        return _TITLE[self]

    @classmethod
    def from_type(cls, type_: str) -> ErrorKind | None:
        """The standard kind a type URI names, in either spelling; None for any other URI."""
        for prefix in (ERROR_TYPE_PREFIX, LEGACY_ERROR_TYPE_PREFIX):
            if type_.startswith(prefix):
                try:
                    return cls(type_[len(prefix) :])
                except ValueError:
                    return None
        return None


_STATUS: dict[ErrorKind, int] = {
    ErrorKind.CONFIGURATION: 400,
    ErrorKind.VALIDATION: 400,
    ErrorKind.EXPRESSION: 400,
    ErrorKind.AUTHENTICATION: 401,
    ErrorKind.AUTHORIZATION: 403,
    ErrorKind.TIMEOUT: 408,
    ErrorKind.COMMUNICATION: 500,
    ErrorKind.RUNTIME: 500,
}

_TITLE: dict[ErrorKind, str] = {
    ErrorKind.CONFIGURATION: "Configuration Error",
    ErrorKind.VALIDATION: "Validation Error",
    ErrorKind.EXPRESSION: "Expression Error",
    ErrorKind.AUTHENTICATION: "Authentication Error",
    ErrorKind.AUTHORIZATION: "Authorization Error",
    ErrorKind.TIMEOUT: "Timeout",
    ErrorKind.COMMUNICATION: "Communication Error",
    ErrorKind.RUNTIME: "Runtime Error",
}


def raise_error(
    kind: ErrorKind,
    detail: str,
    *,
    instance: str | None = None,
    status: int | None = None,
    title: str | None = None,
) -> BlueprintError:
    """A :class:`BlueprintError` of a standard kind: its type, its default status and title
    unless given. Returned, not raised: write ``raise raise_error(...)``."""
    kind = ErrorKind(kind)
    return BlueprintError(
        kind.type,
        kind.status if status is None else status,
        kind.default_title if title is None else title,
        detail,
        instance,
    )


def type_matches(expected: str, actual: str) -> bool:
    """Whether a filter's ``type`` catches an error's ``type``: the same URI, or both naming
    the same standard kind, each in either spelling (``.../spec/1.0.0/errors/<kind>`` or
    ``.../dsl/errors/types/<kind>``)."""
    if expected == actual:
        return True
    kind = ErrorKind.from_type(expected)
    return kind is not None and kind is ErrorKind.from_type(actual)


_FILTERED = ("type", "status", "instance", "title", "detail")


def error_matches(filter_with: Mapping[str, Any], error: BlueprintError) -> bool:
    """Whether a ``catch.errors.with`` filter catches ``error``.

    The filter (the schema's ``errorFilter``) may set ``type``, ``status``, ``instance``,
    ``title`` and ``detail`` (also spelled ``details``, the schema's name for it); it catches
    the error when every property it sets equals the error's, ``type`` compared by
    :func:`type_matches`. A property set to null counts as not set; a property the error does
    not have (an unknown name) never matches, so a mistyped filter catches nothing rather than
    everything. An empty filter catches every error.
    """
    for name, expected in filter_with.items():
        if expected is None:
            continue
        key = "detail" if name == "details" else name
        if key not in _FILTERED:
            return False
        actual = getattr(error, key)
        if key == "type":
            if not (isinstance(expected, str) and type_matches(expected, actual)):
                return False
        elif key == "status":
            if isinstance(expected, bool) or not isinstance(expected, int) or expected != actual:
                return False
        elif expected != actual:
            return False
    return True
