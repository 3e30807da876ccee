"""Every error of the admin API as an RFC 9457 problem document (``application/problem+json``).

:class:`ApiProblem` is raised by the API's own code; :func:`problem_of` turns the platform's
errors (:class:`~ghapplets.exceptions.NotFound`, ...) into one. A problem names what was wrong
(``parameter`` for a bad query parameter or body field) and never echoes a credential.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from starlette.responses import Response

from ghapplets.exceptions import (
    AlreadyExists,
    GhappletsError,
    InvalidRecord,
    NotFound,
    Unavailable,
)

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "urn:ghapplets:problem:"

TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    500: "Internal error",
    503: "Unavailable",
}


class ApiProblem(Exception):
    """An answer that is an error: ``kind`` names it (``bad-parameter``, ``unauthorized``...),
    ``parameter`` the query parameter or body field at fault."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        parameter: str | None = None,
        errors: Sequence[Mapping[str, str]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.parameter = parameter
        self.errors = list(errors)
        self.headers = dict(headers or {})

    def document(self, instance: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": TYPE_BASE + self.kind,
            "title": TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            doc["instance"] = instance
        if self.parameter is not None:
            doc["parameter"] = self.parameter
        if self.errors:
            doc["errors"] = self.errors
        return doc

    def response(self, instance: str | None = None) -> Response:
        return Response(
            orjson.dumps(self.document(instance)),
            status_code=self.status,
            media_type=MEDIA_TYPE,
            headers=self.headers,
        )


def bad_parameter(name: str, detail: str) -> ApiProblem:
    return ApiProblem(
        400,
        "bad-parameter",
        f"{name}: {detail}",
        parameter=name,
        errors=[{"parameter": name, "message": detail}],
    )


def unauthorized(detail: str) -> ApiProblem:
    return ApiProblem(
        401, "unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="ghapplets"'}
    )


def forbidden(detail: str) -> ApiProblem:
    return ApiProblem(403, "forbidden", detail)


def conflict(detail: str) -> ApiProblem:
    return ApiProblem(409, "conflict", detail)


def problem_of(exc: GhappletsError) -> ApiProblem:
    """The problem a platform error means to an API caller."""
    if isinstance(exc, NotFound):
        return ApiProblem(404, "not-found", str(exc))
    if isinstance(exc, AlreadyExists):
        return conflict(str(exc))
    if isinstance(exc, InvalidRecord):
        return ApiProblem(400, "invalid", str(exc))
    if isinstance(exc, Unavailable):
        return ApiProblem(503, "unavailable", str(exc), headers={"Retry-After": "5"})
    return ApiProblem(500, "internal", "the request failed; the server's log says why")
