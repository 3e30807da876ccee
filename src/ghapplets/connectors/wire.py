"""The local action endpoint's wire format, apart from the network (sans-I/O): how an action's
outcome travels between the worker's endpoint (:mod:`ghapplets.connectors.endpoint`) and a
client in the applet's process (``ghapplets action`` inside a job, or an HTTP applet).

A call is ``POST {url}/{action name}`` with ``Authorization: Bearer {token}`` and the action's
input as the JSON body. The answer is ``200 {"output": …}``, or an error status with
``{"error": {"type", "message", "retryable", "retry_after", "status"}}`` (``status``: the
vendor's HTTP status, when the vendor answered), where ``type`` is one of the
action errors of :class:`~ghapplets.exceptions.ErrorType`; :func:`error_of` turns it back into
the same exception the worker raised, so an exec applet's ``ghapplets action`` exits as a
Python applet's ``ctx.action`` would fail.
"""

from __future__ import annotations

from typing import Any

from ghapplets.exceptions import (
    ActionFailed,
    ActionInputInvalid,
    ActionUnavailable,
    AppletError,
    ConnectorNotAllowed,
    ConnectorUnusable,
    ErrorType,
)

URL_VARIABLE = "GHAPPLETS_ACTION_URL"  # in an exec applet's environment, inside a job
TOKEN_VARIABLE = "GHAPPLETS_ACTION_TOKEN"  # noqa: S105 - a name
URL_HEADER = "X-Ghapplets-Action-Url"  # on the request to an HTTP applet
TOKEN_HEADER = "X-Ghapplets-Action-Token"  # noqa: S105 - a name
MAX_INPUT = 10 * 1024 * 1024  # bytes of JSON input an action takes, from any caller

# the HTTP status each action error is answered with
STATUS = {
    ErrorType.ACTION_INPUT_INVALID: 400,
    ErrorType.CONNECTOR_NOT_ALLOWED: 403,
    ErrorType.CONNECTOR_UNUSABLE: 409,
    ErrorType.ACTION_FAILED: 422,
    ErrorType.ACTION_UNAVAILABLE: 503,
}


def error_body(exc: AppletError) -> tuple[int, dict[str, Any]]:
    """The status and JSON document that carry ``exc`` to the caller."""
    doc = {
        "type": str(exc.type),
        "message": exc.message,
        "retryable": exc.retryable,
        "retry_after": exc.retry_after,
        "status": getattr(exc, "status", None),
    }
    return STATUS.get(ErrorType(exc.type), 500), {"error": doc}


def refusal(message: str) -> dict[str, Any]:
    """The document of an answer the endpoint gives before any action runs (401, 404, 413)."""
    return {"error": {"type": "Refused", "message": message, "retryable": False}}


def error_of(status: int, doc: Any) -> AppletError:
    """The exception an error answer stands for; an answer not in this format (a proxy's page,
    a 5xx of the endpoint itself) is an :class:`ActionUnavailable` for 5xx and an
    :class:`ActionFailed` otherwise."""
    error = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        message = f"the action endpoint answered {status}"
        if status >= 500:
            return ActionUnavailable(message, status=status)
        return ActionFailed(message, status=status)
    message = error["message"]
    kind = error.get("type")
    vendor = error.get("status")
    vendor_status = vendor if isinstance(vendor, int) else None
    if kind == ErrorType.ACTION_INPUT_INVALID:
        return ActionInputInvalid(message)
    if kind == ErrorType.CONNECTOR_NOT_ALLOWED:
        return ConnectorNotAllowed(message)
    if kind == ErrorType.CONNECTOR_UNUSABLE:
        return ConnectorUnusable(message)
    if kind == ErrorType.ACTION_UNAVAILABLE or (status >= 500 and error.get("retryable")):
        after = error.get("retry_after")
        retry_after = float(after) if isinstance(after, int | float) else None
        return ActionUnavailable(message, status=vendor_status, retry_after=retry_after)
    return ActionFailed(message, status=vendor_status or status)
