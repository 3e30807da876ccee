"""Our extensions' calls, for every host: one applet, or one connector action, as a task.

``call: <applet>`` hands the applet a CloudEvent of type ``ghapplets.blueprint.call`` whose
``data`` is the task's evaluated ``with``; the applet's result is the task's output as it is.
``call: <connector>.<action>`` runs the action of the connector catalog.

Their failures become the DSL's errors, so ``try``/``catch``/``retry`` handle them like any
other call's: a retryable failure (the vendor or the applet may do it later) is a
``communication`` error with status 503, a timeout a ``timeout`` error (408), a refused input
``validation`` (400), a connector the blueprint may not use ``authorization`` (403), a missing
applet or unusable connector ``configuration`` (400), and any other failure ``runtime`` (500).
The ``title`` is the platform's error type (``ActionFailed``, ``Timeout``...); a vendor's
refusal keeps the vendor's status.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from ghapplets.applets.result import AppletOutcome
from ghapplets.applets.runtime import Invocation, Runtime
from ghapplets.blueprints.errors import ErrorKind, raise_error
from ghapplets.connectors.registry import Connectors
from ghapplets.events import CloudEvent
from ghapplets.exceptions import (
    ActionFailed,
    ActionInputInvalid,
    AppletError,
    BlueprintError,
    ConnectorNotAllowed,
    ConnectorUnusable,
    ErrorType,
)

CALL_EVENT_TYPE = "ghapplets.blueprint.call"


def secret_values(values: Mapping[str, str]) -> dict[str, Any]:
    """Stored secrets as a blueprint sees them: a value that is a JSON object is that object
    (``basic: {use: name}`` takes a ``{username, password}`` secret), any other is its text."""
    found: dict[str, Any] = {}
    for name, value in values.items():
        found[name] = value
        if value.lstrip().startswith("{"):
            with contextlib.suppress(orjson.JSONDecodeError):
                found[name] = orjson.loads(value)
    return found


def call_event(key: str, blueprint: str, applet: str, data: Any) -> CloudEvent:
    """The event an applet gets for a ``call:`` task; its id is stable for the step."""
    return CloudEvent(
        id=hashlib.sha256(key.encode()).hexdigest()[:32],
        source=f"/blueprints/{blueprint}",
        type=CALL_EVENT_TYPE,
        subject=applet,
        data=data,
    )


def outcome_value(outcome: AppletOutcome, what: str) -> Any:
    """An applet's result, or the DSL error its failure is."""
    if outcome.ok:
        return outcome.result
    title = outcome.error_type or ErrorType.APPLET_ERROR.value
    detail = f"{what}: {outcome.error_message or title}"
    if title == ErrorType.TIMEOUT:
        raise raise_error(ErrorKind.TIMEOUT, detail, title=title)
    if outcome.retryable:
        raise raise_error(ErrorKind.COMMUNICATION, detail, status=503, title=title)
    raise raise_error(ErrorKind.RUNTIME, detail, title=title)


async def call_applet(
    runtimes: Mapping[str, Runtime],
    name: str,
    data: Any,
    *,
    key: str,
    blueprint: str,
    secrets: Mapping[str, str] | None = None,
    connectors: Connectors | None = None,
) -> Any:
    runtime = runtimes.get(name)
    if runtime is None:
        raise raise_error(ErrorKind.CONFIGURATION, f"no applet named {name!r} is installed")
    event = call_event(key, blueprint, name, data)
    spec = runtime.spec
    outcome = await runtime.invoke(
        Invocation(
            event=event,
            job_id=key,
            delivery_id=key,
            secrets=secrets or {},
            actions=connectors.caller(spec.connectors, event) if connectors else None,
            clients=connectors.clients(spec.connectors, event) if connectors else None,
        )
    )
    return outcome_value(outcome, f"applet {name!r}")


async def call_action(connectors: Connectors | None, name: str, data: Any) -> Any:
    if connectors is None:
        raise raise_error(ErrorKind.CONFIGURATION, f"no connectors to run {name!r} with")
    try:
        return await connectors.act(name, data if isinstance(data, Mapping) else {})
    except BlueprintError:
        raise
    except ActionInputInvalid as exc:
        raise raise_error(ErrorKind.VALIDATION, f"{name}: {exc.message}", title=exc.type) from exc
    except ConnectorNotAllowed as exc:
        raise raise_error(
            ErrorKind.AUTHORIZATION, f"{name}: {exc.message}", title=exc.type
        ) from exc
    except ConnectorUnusable as exc:
        raise raise_error(
            ErrorKind.CONFIGURATION, f"{name}: {exc.message}", title=exc.type
        ) from exc
    except ActionFailed as exc:
        raise raise_error(
            ErrorKind.COMMUNICATION, f"{name}: {exc.message}", status=exc.status, title=exc.type
        ) from exc
    except AppletError as exc:
        outcome = AppletOutcome.from_error(exc)
        return outcome_value(outcome, name)
