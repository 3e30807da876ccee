"""``invoke()``: run one applet through its real runtime and see its result and HTTP calls.

Outbound HTTP made through ``ctx.http`` (Python applets) and the runtime's own request (``http``
applets) passes a recording transport. By default Python applets talk to an offline stub that
answers ``200 {}`` (pass ``http=`` a function ``httpx.Request -> httpx.Response`` to answer as a
vendor would, or ``http="live"`` for the real network); ``http`` applets are always called for
real. An ``exec`` applet is a separate process: its own HTTP calls are not recorded.

``connectors=`` gives a Python applet's ``ctx.action`` (and ``ctx.github``, ``ctx.jira``...)
the connectors it may use (settings as
under ``connectors:`` in ``ghapplets.yaml``, with literal credentials; the ``ghapplets_fakes``
fixture's ``connectors()`` gives them for the local fakes), within its manifest's
``connectors:`` list, exactly as the worker runs them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import TypeAdapter

from ghapplets.applets.loader import load_manifest
from ghapplets.applets.model import AppletSpec
from ghapplets.applets.result import AppletOutcome
from ghapplets.applets.runtime import run_once
from ghapplets.connectors.config import ConnectorConfig
from ghapplets.connectors.registry import Connectors
from ghapplets.events import CloudEvent
from ghapplets.exceptions import UnresolvedReference

Responder = Callable[[httpx.Request], httpx.Response]


@dataclass(frozen=True, slots=True)
class HttpCall:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        import orjson

        return orjson.loads(self.body)


@dataclass(slots=True)
class InvokeResult:
    outcome: AppletOutcome
    http_calls: list[HttpCall] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.outcome.ok

    @property
    def result(self) -> Any:
        return self.outcome.result

    @property
    def retryable(self) -> bool:
        return self.outcome.retryable

    @property
    def error_type(self) -> str | None:
        return self.outcome.error_type


class RecordingTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, calls: list[HttpCall]) -> None:
        self.inner = inner
        self.calls = calls

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        response = await self.inner.handle_async_request(request)
        self.calls.append(
            HttpCall(
                request.method, str(request.url), dict(request.headers), body, response.status_code
            )
        )
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def _offline(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={})


async def invoke(
    applet: Path | str | AppletSpec,
    event: CloudEvent,
    *,
    secrets: Mapping[str, str] | None = None,
    http: Responder | Literal["live"] | None = None,
    attempt: int = 1,
    job_id: str | None = None,
    connectors: Mapping[str, Any] | None = None,
) -> InvokeResult:
    """Run ``applet`` (a folder with ``applet.yaml``, its manifest path, or a spec) on ``event``."""
    spec = applet if isinstance(applet, AppletSpec) else load_applet(Path(applet))
    opened = await open_connectors(connectors)
    calls: list[HttpCall] = []
    live = http == "live" or spec.runtime == "http"
    inner: httpx.AsyncBaseTransport = (
        httpx.AsyncHTTPTransport() if live else httpx.MockTransport(http or _offline)  # type: ignore[arg-type]
    )
    try:
        async with httpx.AsyncClient(
            transport=RecordingTransport(inner, calls), timeout=30
        ) as client:
            outcome = await run_once(
                spec,
                event,
                job_id=job_id or f"test:{uuid.uuid4().hex[:12]}",
                secrets=secrets,
                attempt=attempt,
                http=client,
                actions=opened.caller(spec.connectors, event) if opened else None,
                clients=opened.clients(spec.connectors, event) if opened else None,
            )
    finally:
        if opened is not None:
            await opened.aclose()
    return InvokeResult(outcome, calls)


async def open_connectors(settings: Mapping[str, Any] | None) -> Connectors | None:
    if settings is None:
        return None
    adapter: TypeAdapter[ConnectorConfig] = TypeAdapter(ConnectorConfig)
    configs = {name: adapter.validate_python(value) for name, value in settings.items()}

    async def no_secrets(name: str) -> str:
        raise UnresolvedReference(f"invoke() reads no stored secret ({name}): pass the value")

    return await Connectors.open(configs, lambda reader: no_secrets)


def load_applet(path: Path) -> AppletSpec:
    """The applet in folder ``path``, or of the manifest ``path``."""
    return load_manifest(path if path.name == "applet.yaml" else path / "applet.yaml")
