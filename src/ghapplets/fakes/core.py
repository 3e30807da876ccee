"""What every fake shares: the clock, the request recorder, fault injection, the ``/_fakes``
control API and the ASGI wrapper that puts them in front of a vendor's routes.

A fake is a :class:`Fake` subclass. It declares its vendor routes, its error format (how a
refused request or an injected fault looks in the vendor's own wire format) and its state; this
base class

* records every request to a vendor route (method, path, query, headers *including*
  credentials, so tests can assert on authentication, and body) with the status it was
  answered; nothing here logs a request, and the servers run without an access log;
* answers an injected fault (:class:`Fault`) before the vendor routes see the request (the
  request is still recorded, marked ``fault``);
* serves the control API under ``/_fakes`` (never recorded, never faulted):

  ===========================  ===========================================================
  ``GET /_fakes/requests``     recorded requests, oldest first (``?path=GLOB&method=M``)
  ``DELETE /_fakes/requests``  forget them
  ``GET /_fakes/faults``       pending faults; ``POST`` adds one (:class:`FaultSpec`),
                               ``DELETE`` removes all
  ``POST /_fakes/reset``       state back to the configuration; requests and faults cleared
  ``GET /_fakes/state``        the vendor state as JSON
  ``POST /_fakes/clock``       ``{"advance": SECONDS}``: move the fakes' clock forward
  ===========================  ===========================================================

The same operations are Python methods (:meth:`Fake.requests`, :meth:`Fake.inject`,
:meth:`Fake.reset`...) for tests that hold the fake in-process. A fake's state is guarded by
one re-entrant lock (:attr:`Fake.lock`): the servers run on their own thread, the tests on
theirs.
"""

from __future__ import annotations

import asyncio
import fnmatch
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, ClassVar
from urllib.parse import parse_qs

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ghapplets.fakes.webhooks import Outcome, Webhook, deliver

CONTROL_PREFIX = "/_fakes"
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Clock:
    """The fakes' time: the wall clock plus an offset that tests move forward (token expiry,
    JWT ages, timestamps). Fakes run together share one."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A compact JSON answer (``application/json; charset=utf-8``)."""
    return Response(
        orjson.dumps(data),
        status_code=status,
        headers=headers,
        media_type="application/json; charset=utf-8",
    )


class Refused(Exception):
    """Raised by a handler to answer at once with ``response`` (the vendor's error format)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


@dataclass(frozen=True, slots=True)
class SentWebhook:
    """A webhook a fake sent (its vendor event name, the signed request, what it got)."""

    event: str
    webhook: Webhook
    outcome: Outcome


@dataclass(slots=True)
class RecordedRequest:
    """One request a fake received. ``headers`` are lower-cased (repeated ones joined with
    ``", "``); ``status`` is the answer's status (``None`` until answered); ``fault`` is true
    when an injected fault answered it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    time: float
    status: int | None = None
    fault: bool = False

    @property
    def params(self) -> dict[str, str]:
        """The query parameters (the first value of each)."""
        return {k: v[0] for k, v in parse_qs(self.query, keep_blank_values=True).items()}

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return orjson.loads(self.body)

    def to_json(self) -> dict[str, Any]:
        try:
            body: str | None = self.body.decode("utf-8")
        except UnicodeDecodeError:
            body = None
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": body if body is not None else self.body.hex(),
            "body_encoding": "utf-8" if body is not None else "hex",
            "time": self.time,
            "status": self.status,
            "fault": self.fault,
        }


class FaultSpec(BaseModel):
    """A fault to inject (the body of ``POST /_fakes/faults``).

    ``status``: 401, 403, 429 or 5xx, answered in the vendor's error format; ``None`` answers
    normally after ``delay`` (a slow vendor). ``times``: how many matching requests get it
    (``None``: until cleared). ``retry_after``: seconds, sent as ``Retry-After``. ``path``: a
    glob on the request path (``*`` matches ``/`` too). ``method``: only this method.
    ``delay``: seconds to wait before answering.
    """

    model_config = ConfigDict(extra="forbid")

    status: int | None = 503
    times: int | None = Field(1, ge=1)
    retry_after: int | None = Field(None, ge=0)
    path: str = "*"
    method: str | None = None
    delay: float = Field(0.0, ge=0, le=300)

    @field_validator("status")
    @classmethod
    def _fault_status(cls, value: int | None) -> int | None:
        if value is not None and value not in (401, 403, 429) and not 500 <= value <= 599:
            raise ValueError("status must be 401, 403, 429 or 5xx (or null for a delay alone)")
        return value


@dataclass(slots=True)
class Fault:
    """An injected fault and how often it has fired."""

    spec: FaultSpec
    fired: int = 0

    @property
    def status(self) -> int | None:
        return self.spec.status

    @property
    def retry_after(self) -> int | None:
        return self.spec.retry_after

    @property
    def remaining(self) -> int | None:
        return None if self.spec.times is None else self.spec.times - self.fired

    def matches(self, method: str, path: str) -> bool:
        if self.spec.method and self.spec.method.upper() != method.upper():
            return False
        return fnmatch.fnmatchcase(path, self.spec.path)

    def to_json(self) -> dict[str, Any]:
        return {**self.spec.model_dump(), "fired": self.fired, "remaining": self.remaining}


@dataclass(slots=True)
class _Faults:
    items: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, spec: FaultSpec) -> Fault:
        fault = Fault(spec)
        with self.lock:
            self.items.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """The first pending fault matching the request, counted as fired; spent ones go."""
        with self.lock:
            for fault in self.items:
                if fault.matches(method, path):
                    fault.fired += 1
                    if fault.remaining == 0:
                        self.items.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


class Fake(ABC):
    """The base of every vendor fake: see the module docstring.

    Subclasses implement :meth:`vendor_routes`, :meth:`error`, :meth:`reset_state` and
    :meth:`snapshot`, and may override :meth:`fault_response`, :meth:`answer_headers` and
    :meth:`control_routes`; they keep their configuration before calling ``__init__`` here,
    which builds the state (:meth:`reset_state`) and the app. Handlers change state only while
    holding :attr:`lock`. ``base_url`` is set by whoever serves the fake.
    """

    name: ClassVar[str]

    def __init__(self, *, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.lock = threading.RLock()
        self.base_url: str | None = None
        self._recorded: list[RecordedRequest] = []
        self._faults = _Faults()
        self.sent: list[SentWebhook] = []
        self.reset_state()
        self.app = _Recorder(self, self._build())

    # -- what a vendor fake provides --------------------------------------------------------------
    @abstractmethod
    def vendor_routes(self) -> list[BaseRoute]:
        """The vendor's endpoints."""

    @abstractmethod
    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        """An error answer in the vendor's format."""

    @abstractmethod
    def reset_state(self) -> None:
        """Build the state from the configuration (called at start and by :meth:`reset`)."""

    @abstractmethod
    def snapshot(self) -> dict[str, Any]:
        """The state as JSON (``GET /_fakes/state``)."""

    def control_routes(self) -> list[BaseRoute]:
        """Vendor-specific control endpoints, mounted under ``/_fakes``."""
        return []

    def fault_response(self, fault: Fault, request: RecordedRequest) -> Response:
        """The answer to a request hit by ``fault`` (``fault.status`` is set)."""
        status = fault.status or 503
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        return self.error(status, HTTPStatus(status).phrase, headers)

    def answer_headers(self, request: RecordedRequest) -> dict[str, str]:
        """Headers added to every answer of a vendor route (faults and errors included),
        but those the answer sets itself."""
        return {}

    # -- the Python API ---------------------------------------------------------------------------
    def requests(self, path: str | None = None, method: str | None = None) -> list[RecordedRequest]:
        """Recorded requests, oldest first; ``path`` is a glob, ``method`` exact."""
        with self.lock:
            found = list(self._recorded)
        return [
            r
            for r in found
            if (path is None or fnmatch.fnmatchcase(r.path, path))
            and (method is None or r.method == method.upper())
        ]

    def clear_requests(self) -> None:
        with self.lock:
            self._recorded.clear()

    def inject(
        self,
        status: int | None = 503,
        *,
        times: int | None = 1,
        retry_after: int | None = None,
        path: str = "*",
        method: str | None = None,
        delay: float = 0.0,
    ) -> Fault:
        """Answer the next ``times`` requests matching ``path``/``method`` with ``status``."""
        spec = FaultSpec(
            status=status,
            times=times,
            retry_after=retry_after,
            path=path,
            method=method,
            delay=delay,
        )
        return self._faults.add(spec)

    def faults(self) -> list[Fault]:
        with self._faults.lock:
            return list(self._faults.items)

    def clear_faults(self) -> None:
        self._faults.clear()

    def reset(self) -> None:
        """State back to the configuration; recorded requests and pending faults cleared."""
        with self.lock:
            self.reset_state()
            self._recorded.clear()
            self.sent.clear()
        self._faults.clear()

    # -- helpers for subclasses -------------------------------------------------------------------
    async def read_json(self, request: Request, bad: Callable[[], Response]) -> Any:
        """The request body as JSON, or :class:`Refused` with ``bad()``."""
        body = await request.body()
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise Refused(bad()) from None

    def now(self) -> float:
        return self.clock.now()

    async def send_signed(
        self,
        event: str,
        webhook: Webhook,
        *,
        url: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> SentWebhook:
        """Deliver ``webhook`` (see :func:`~ghapplets.fakes.webhooks.deliver`) and keep it in
        :attr:`sent`."""
        outcome = await deliver(webhook, url=url, client=client)
        sent = SentWebhook(event, webhook, outcome)
        with self.lock:
            self.sent.append(sent)
        return sent

    # -- the app ----------------------------------------------------------------------------------
    def _record(self, entry: RecordedRequest) -> None:
        with self.lock:
            self._recorded.append(entry)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        return self._faults.take(method, path)

    def _build(self) -> Starlette:
        control = [
            Route(f"{CONTROL_PREFIX}/requests", self._c_requests, methods=["GET", "DELETE"]),
            Route(f"{CONTROL_PREFIX}/faults", self._c_faults, methods=["GET", "POST", "DELETE"]),
            Route(f"{CONTROL_PREFIX}/reset", self._c_reset, methods=["POST"]),
            Route(f"{CONTROL_PREFIX}/state", self._c_state, methods=["GET"]),
            Route(f"{CONTROL_PREFIX}/clock", self._c_clock, methods=["POST"]),
            *self.control_routes(),
        ]

        async def refused(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, Refused)
            return exc.response

        async def http_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            if request.url.path.startswith(CONTROL_PREFIX + "/"):
                return json_response({"error": exc.detail}, exc.status_code)
            return self.error(exc.status_code, HTTPStatus(exc.status_code).phrase)

        return Starlette(
            routes=[*control, *self.vendor_routes()],
            exception_handlers={Refused: refused, HTTPException: http_error},
        )

    async def _c_requests(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.clear_requests()
            return Response(status_code=204)
        found = self.requests(request.query_params.get("path"), request.query_params.get("method"))
        return json_response({"requests": [r.to_json() for r in found]})

    async def _c_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.clear_faults()
            return Response(status_code=204)
        if request.method == "GET":
            return json_response({"faults": [f.to_json() for f in self.faults()]})
        try:
            spec = FaultSpec.model_validate_json(await request.body())
        except ValidationError as exc:
            problems = [
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
            ]
            return json_response({"error": "; ".join(problems)}, 422)
        return json_response(self._faults.add(spec).to_json(), 201)

    async def _c_reset(self, request: Request) -> Response:
        self.reset()
        return Response(status_code=204)

    async def _c_state(self, request: Request) -> Response:
        with self.lock:
            return json_response(self.snapshot())

    async def _c_clock(self, request: Request) -> Response:
        doc = await control_json(request)
        seconds = doc.get("advance", 0)
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            return json_response({"error": "advance must be a number of seconds >= 0"}, 422)
        self.clock.advance(float(seconds))
        return json_response({"now": self.now(), "offset": self.clock.offset})


async def control_json(request: Request) -> dict[str, Any]:
    """The JSON object body of a control request, or :class:`Refused` with a 422."""
    try:
        doc = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError:
        raise Refused(json_response({"error": "the body is not JSON"}, 422)) from None
    if not isinstance(doc, dict):
        raise Refused(json_response({"error": "the body must be a JSON object"}, 422))
    return doc


class _Recorder:
    """The ASGI wrapper: record, inject faults, add the vendor's answer headers."""

    def __init__(self, fake: Fake, app: Starlette) -> None:
        self.fake = fake
        self.inner = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(CONTROL_PREFIX + "/"):
            await self.inner(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers", []):
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        entry = RecordedRequest(
            method=scope["method"],
            path=path,
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            body=body,
            time=self.fake.now(),
        )
        self.fake._record(entry)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry.status = int(message["status"])
                own = [(k.lower(), v) for k, v in message.get("headers", [])]
                names = {k for k, _ in own}
                extra = {
                    k.lower().encode("latin-1"): v.encode("latin-1")
                    for k, v in self.fake.answer_headers(entry).items()
                }
                message = dict(message)
                message["headers"] = [*own, *((k, v) for k, v in extra.items() if k not in names)]
            await send(message)

        fault = self.fake._take_fault(entry.method, path)
        if fault is not None:
            if fault.spec.delay:
                await asyncio.sleep(fault.spec.delay)
            if fault.status is not None:
                entry.fault = True
                await self.fake.fault_response(fault, entry)(scope, replay, send_with_headers)
                return
        await self.inner(scope, replay, send_with_headers)
