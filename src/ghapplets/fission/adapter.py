"""The Fission adapter: one request to a Fission function in, the applet's answer out.

This module owns the contract between Fission and an applet exported by ``ghapplets export
fission``. It knows nothing of Flask: a request is its headers and body
(:class:`FissionRequest`), an answer a status, headers and body (:class:`Reply`), so it runs
and is tested without Fission's environment; :mod:`ghapplets.fission` puts Flask around it.

Two kinds of request reach a function (:class:`Dialect`):

- **a CloudEvent**, POSTed by Ghapplets' ``http`` runtime through the Fission router in binary
  mode (``ce-*`` headers, the data as the body, ``Idempotency-Key``, ``X-Ghapplets-Attempt``,
  ``X-Ghapplets-Delivery-Id``). The answer is the result contract the ``http`` runtime reads:
  ``200 {"ok": true, "result": ...}``; ``503`` with ``{"ok": false, "error": {..., "retryable":
  true}}`` (and ``Retry-After``) for a retryable error; ``422`` with the error object
  (``"retryable": false``) for a permanent one.
- **a step of a Fission Workflow** (``X-Fission-Workflow-Run`` and ``-Attempt`` headers, the
  flowing JSON document as the body), which the applet sees as a blueprint's ``call:`` does: a
  CloudEvent of type ``ghapplets.blueprint.call`` whose data is that document. The answer is
  the result itself (the document the next state gets), or the same error answers, which the
  workflow engine classifies alike: a 5xx is retried by the state's ``retry``, a 4xx with
  ``errorType`` (the applet's error type) is permanent and goes to its ``catch``.

The applet runs exactly as in a Ghapplets worker, through its runtime
(:func:`~ghapplets.applets.runtime.build_runtime`): the same loading, handler choice, timeout,
concurrency and redaction. Its declared secrets are read from the folder where Fission mounts
the Kubernetes Secret of the function (``/secrets/<namespace>/<name>/<key>``), with the layout
of the ``kubernetes`` secrets backend (:class:`~ghapplets.secrets.backends.kubernetes.
KubernetesBackend`): a key named after the secret, or ``applets/<applet>/<secret>``.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from ghapplets.applets.loader import load_manifest
from ghapplets.applets.model import AppletSpec
from ghapplets.applets.result import AppletOutcome
from ghapplets.applets.runtime import Invocation, Runtime, build_runtime
from ghapplets.blueprints.effects import CALL_EVENT_TYPE
from ghapplets.events.cloudevent import CloudEvent
from ghapplets.exceptions import (
    AppletError,
    ConfigError,
    ErrorType,
    MalformedPayload,
    NotFound,
    SecretBackendError,
)
from ghapplets.logging import get_logger
from ghapplets.secrets.backends.kubernetes import KubernetesBackend
from ghapplets.secrets.scopes import Scope

SECRETS_ENV = "GHAPPLETS_FISSION_SECRETS_DIR"  # overrides the folder of the applet's secrets
WORKFLOW_RUN = "x-fission-workflow-run"
WORKFLOW_ATTEMPT = "x-fission-workflow-attempt"
WORKFLOW_BRANCH = "x-fission-workflow-branch"
RETRYABLE_STATUS = 503
PERMANENT_STATUS = 422
_JSON = {"content-type": "application/json"}


class Dialect(StrEnum):
    """Who sent a request, and so how to answer it."""

    CLOUDEVENT = "cloudevent"  # Ghapplets' http runtime
    WORKFLOW = "workflow"  # a Task state of a Fission Workflow


@dataclass(frozen=True)
class FissionRequest:
    """An HTTP request as Fission's environment hands it over; header names in any case."""

    headers: Mapping[str, str]
    body: bytes = b""

    def lowered(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}


@dataclass(frozen=True)
class Reply:
    """The answer: status, headers and body."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=lambda: dict(_JSON))

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass(frozen=True)
class Call:
    """What a request asks for: the invocation, and how its answer is written."""

    dialect: Dialect
    event: CloudEvent
    job_id: str
    attempt: int
    delivery_id: str


def _attempt(value: str | None) -> int:
    try:
        return max(1, int(value or "1"))
    except ValueError:
        return 1


def read_call(applet: str, request: FissionRequest) -> Call:
    """The call ``request`` makes of ``applet``. Raises :class:`MalformedPayload` when it is
    neither a CloudEvent in binary mode nor a workflow step, or its JSON does not parse."""
    headers = request.lowered()
    if all(headers.get(f"ce-{k}") for k in ("id", "source", "type")):
        try:
            event = CloudEvent.from_binary(headers, request.body)
        except orjson.JSONDecodeError as exc:
            raise MalformedPayload(f"the event's data is not valid JSON: {exc}") from None
        return Call(
            Dialect.CLOUDEVENT,
            event,
            job_id=headers.get("idempotency-key") or event.id,
            attempt=_attempt(headers.get("x-ghapplets-attempt")),
            delivery_id=headers.get("x-ghapplets-delivery-id") or event.id,
        )
    run = headers.get(WORKFLOW_RUN)
    if run:
        try:
            data = orjson.loads(request.body) if request.body.strip() else None
        except orjson.JSONDecodeError as exc:
            raise MalformedPayload(f"the workflow step's input is not JSON: {exc}") from None
        branch = headers.get(WORKFLOW_BRANCH, "")
        # the same for every attempt of the step: the run, the branch, the applet, the input
        digest = hashlib.sha256(b"\0".join([run.encode(), branch.encode(), applet.encode()]))
        digest.update(request.body)
        key = digest.hexdigest()[:32]
        event = CloudEvent(
            id=key,
            source=f"/fission/workflow-runs/{run}",
            type=CALL_EVENT_TYPE,
            subject=applet,
            data=data,
        )
        return Call(
            Dialect.WORKFLOW,
            event,
            job_id=key,
            attempt=_attempt(headers.get(WORKFLOW_ATTEMPT)),
            delivery_id=run,
        )
    raise MalformedPayload(
        "not a CloudEvent in binary mode (ce-id, ce-source and ce-type headers) nor a step "
        "of a Fission Workflow (X-Fission-Workflow-Run header)"
    )


def _error_object(outcome: AppletOutcome) -> dict[str, Any]:
    error: dict[str, Any] = {
        "type": outcome.error_type or ErrorType.APPLET_ERROR.value,
        "message": outcome.error_message or "the applet reported an error",
        "retryable": outcome.retryable,
    }
    if outcome.retry_after is not None:
        error["retry_after"] = outcome.retry_after
    return error


def reply_for(outcome: AppletOutcome, dialect: Dialect) -> Reply:
    """The answer to ``outcome`` in the contract of ``dialect``."""
    if outcome.ok:
        result = outcome.result if dialect is Dialect.WORKFLOW else outcome.to_dict()
        return Reply(200, orjson.dumps(result))
    error = _error_object(outcome)
    if outcome.retryable:
        headers = dict(_JSON)
        if outcome.retry_after is not None:
            headers["retry-after"] = str(math.ceil(outcome.retry_after))
        # no errorType: the workflow engine then classifies the 5xx as retryable
        return Reply(RETRYABLE_STATUS, orjson.dumps({"ok": False, "error": error}), headers)
    body = {
        "ok": False,
        "error": error,
        "errorType": error["type"],  # a workflow's catch routes on it
        "cause": {"message": error["message"]},
    }
    return Reply(PERMANENT_STATUS, orjson.dumps(body))


def failure(error_type: str, message: str, *, retryable: bool) -> Reply:
    """The answer to a request that never reached the applet."""
    outcome = AppletOutcome.failure(error_type, message, retryable=retryable)
    return reply_for(outcome, Dialect.CLOUDEVENT)


class FissionApplet:
    """One exported applet: its folder (the Fission package, with ``applet.yaml``), loaded on
    the first request and kept warm, as a worker keeps its runtimes.

    ``await answer(request)`` runs on the caller's event loop; calling the instance
    (``applet(request)``) is for a synchronous server such as Flask's: it runs ``answer`` on an
    event loop of the instance's own, in a daemon thread, so the runtime and its clients live
    as long as the process."""

    def __init__(self, folder: Path, *, secrets_dir: Path | None = None) -> None:
        self.folder = Path(folder)
        self.secrets_dir = secrets_dir
        self._spec: AppletSpec | None = None
        self._runtime: Runtime | None = None
        self._problem: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._log = get_logger("ghapplets.fission", folder=str(self.folder))

    @property
    def spec(self) -> AppletSpec:
        if self._spec is None:
            self._spec = load_manifest(self.folder)
        return self._spec

    async def _get_runtime(self) -> Runtime:
        if self._runtime is None:
            runtime = build_runtime(self.spec)
            await runtime.start()
            self._runtime = runtime
        return self._runtime

    async def _secrets(self, spec: AppletSpec) -> dict[str, str]:
        if not spec.secrets:
            return {}
        if self.secrets_dir is None:
            raise NotFound(f"no secrets folder is set for applet {spec.name!r} ({SECRETS_ENV})")
        backend = KubernetesBackend(self.secrets_dir)
        found = {}
        for name in spec.secrets:
            found[name] = (await backend.read(name, Scope.applet(spec.name))).value
        return found

    async def answer(self, request: FissionRequest) -> Reply:
        """Run the applet on ``request``; never raises for what the applet or request does."""
        try:
            spec = self.spec
            runtime = await self._get_runtime()
        except ConfigError as exc:
            self._log.error("the applet cannot be loaded", problems=str(exc))
            message = f"the applet cannot be loaded: {exc}"
            return failure(ErrorType.ENTRY_ERROR, message, retryable=False)
        except AppletError as exc:  # its entry does not import
            return reply_for(AppletOutcome.from_error(exc), Dialect.CLOUDEVENT)
        try:
            call = read_call(spec.name, request)
        except MalformedPayload as exc:
            return failure(ErrorType.BAD_REQUEST, str(exc), retryable=False)
        try:
            secrets = await self._secrets(spec)
        except (NotFound, SecretBackendError) as exc:  # as the worker: only a backend may heal
            outcome = AppletOutcome.failure(
                ErrorType.SECRET_UNAVAILABLE,
                f"a declared secret cannot be read: {exc}",
                retryable=isinstance(exc, SecretBackendError),
            )
            return reply_for(outcome, call.dialect)
        outcome = await runtime.invoke(
            Invocation(
                event=call.event,
                job_id=call.job_id,
                attempt=call.attempt,
                delivery_id=call.delivery_id,
                secrets=secrets,
            )
        )
        return reply_for(outcome, call.dialect)

    def _home(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, name="ghapplets-fission", daemon=True
                ).start()
                self._loop = loop
            return self._loop

    def __call__(self, request: FissionRequest) -> Reply:
        return asyncio.run_coroutine_threadsafe(self.answer(request), self._home()).result()

    async def aclose(self) -> None:
        if self._runtime is not None:
            await self._runtime.close()
            self._runtime = None
