"""The Splunk HTTP Event Collector (HEC) fake.

``POST /services/collector/event`` (also ``/services/collector`` and
``/services/collector/event/1.0``) takes one or more JSON envelopes, concatenated with or
without whitespace between them (``{"time", "host", "source", "sourcetype", "index",
"fields", "event"}``), read with ``json.JSONDecoder.raw_decode``. The token comes as
``Authorization: Splunk <token>`` (or basic auth with the token as the password; as
``?token=`` only with ``allow_query_string``). Answers are HEC's: ``{"text": "Success",
"code": 0}``, and the errors of HEC's status code table (:data:`HEC`): 401 code 2 no token,
401 code 3 a malformed ``Authorization``, 403 code 4 an unknown token, 403 code 1 a disabled
one, 400 code 5 no data, 400 code 6 invalid data format, 400 code 7 an index the token may not
write, 400 code 12/13 a missing or blank ``event``, 400 code 15 ``fields`` that are not flat
(the last four with ``invalid-event-number``). As HEC does, the envelopes before a bad one are
indexed. ``GET /services/collector/health`` answers code 17 (HEC is healthy). An injected 503
is code 9 "Server is busy" (code 18 on the health endpoint).

Indexed events are :class:`HecEvent` in :attr:`SplunkFake.events`, with the defaults HEC fills
in (the token's default index and sourcetype, ``http:<token name>`` as the source).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ghapplets.fakes.config import HecToken, SplunkConfig
from ghapplets.fakes.core import Clock, Fake, Fault, RecordedRequest, Refused, json_response

# HEC's status codes: code -> (HTTP status, text)
HEC: dict[int, tuple[int, str]] = {
    0: (200, "Success"),
    1: (403, "Token disabled"),
    2: (401, "Token is required"),
    3: (401, "Invalid authorization"),
    4: (403, "Invalid token"),
    5: (400, "No data"),
    6: (400, "Invalid data format"),
    7: (400, "Incorrect index"),
    8: (500, "Internal server error"),
    9: (503, "Server is busy"),
    10: (400, "Data channel is missing"),
    11: (400, "Invalid data channel"),
    12: (400, "Event field is required"),
    13: (400, "Event field cannot be blank"),
    14: (400, "ACK is disabled"),
    15: (400, "Error in handling indexed fields"),
    16: (400, "Query string authorization is not enabled"),
    17: (200, "HEC is healthy"),
    18: (503, "HEC is unhealthy, queues are full"),
}
ENVELOPE_KEYS = ("time", "host", "source", "sourcetype", "index", "fields", "event")
_DECODER = json.JSONDecoder()


@dataclass
class HecEvent:
    """One indexed event, with HEC's defaults filled in."""

    event: Any
    time: float
    host: str
    source: str
    sourcetype: str
    index: str
    fields: dict[str, Any] = field(default_factory=dict)
    token_name: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def hec(code: int, headers: dict[str, str] | None = None, *, event: int | None = None) -> Response:
    """HEC's answer for ``code``: its HTTP status, ``{"text", "code"}`` and, for an envelope
    that was refused, ``invalid-event-number``."""
    status, text = HEC[code]
    body: dict[str, Any] = {"text": text, "code": code}
    if event is not None:
        body["invalid-event-number"] = event
    return json_response(body, status, headers)


def split_envelopes(body: str) -> tuple[list[Any], bool]:
    """The JSON values concatenated in ``body`` (whitespace between them allowed), and whether
    the rest after them could not be read as JSON."""
    values: list[Any] = []
    pos, end = 0, len(body)
    while True:
        while pos < end and body[pos] in " \t\r\n":
            pos += 1
        if pos >= end:
            return values, False
        try:
            value, pos = _DECODER.raw_decode(body, pos)
        except json.JSONDecodeError:
            return values, True
        values.append(value)


def _flat(fields: Any) -> bool:
    """HEC's indexed ``fields``: an object of strings, numbers or lists of them."""
    if not isinstance(fields, dict):
        return False
    for value in fields.values():
        items = value if isinstance(value, list) else [value]
        if any(isinstance(v, dict | list) for v in items):
            return False
    return True


class SplunkFake(Fake):
    """See the module docstring. State: :attr:`events`; :meth:`events_for` filters them."""

    name: ClassVar[str] = "splunk"

    def __init__(self, config: SplunkConfig | None = None, *, clock: Clock | None = None) -> None:
        self.config = config or SplunkConfig()
        super().__init__(clock=clock)

    def reset_state(self) -> None:
        self.events: list[HecEvent] = []

    def snapshot(self) -> dict[str, Any]:
        return {"events": [e.to_json() for e in self.events]}

    def events_for(self, index: str | None = None, sourcetype: str | None = None) -> list[HecEvent]:
        with self.lock:
            return [
                e
                for e in self.events
                if index in (None, e.index) and sourcetype in (None, e.sourcetype)
            ]

    # -- errors -----------------------------------------------------------------------------------
    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        code = next((c for c, (s, t) in HEC.items() if s == status and c not in (0, 17)), 8)
        return json_response({"text": message, "code": code}, status, headers)

    def fault_response(self, fault: Fault, request: RecordedRequest) -> Response:
        status = fault.status or 503
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        if request.path.endswith("/health") and status == 503:
            return hec(18, headers)
        code = {401: 3, 403: 4, 500: 8, 503: 9}.get(status)
        if code is not None:
            return hec(code, headers)
        text = "Server is busy" if status == 429 else HTTPStatus(status).phrase
        return json_response({"text": text, "code": 9 if status == 429 else 8}, status, headers)

    # -- routes -----------------------------------------------------------------------------------
    def vendor_routes(self) -> list[BaseRoute]:
        return [
            Route("/services/collector", self._collect, methods=["POST"]),
            Route("/services/collector/event", self._collect, methods=["POST"]),
            Route("/services/collector/event/1.0", self._collect, methods=["POST"]),
            Route("/services/collector/health", self._health, methods=["GET"]),
            Route("/services/collector/health/1.0", self._health, methods=["GET"]),
        ]

    async def _health(self, request: Request) -> Response:
        return hec(17)

    def _token(self, request: Request) -> HecToken:
        header = request.headers.get("authorization")
        presented: str | None = None
        if header is not None:
            scheme, _, value = header.strip().partition(" ")
            value = value.strip()
            if scheme.lower() == "splunk" and value:
                presented = value
            elif scheme.lower() == "basic" and value:
                try:
                    presented = base64.b64decode(value, validate=True).decode().partition(":")[2]
                except (binascii.Error, UnicodeDecodeError):
                    raise Refused(hec(3)) from None
            else:
                raise Refused(hec(3))
        elif "token" in request.query_params:
            if not self.config.allow_query_string:
                raise Refused(hec(16))
            presented = request.query_params["token"]
        if not presented:
            raise Refused(hec(2))
        token = next((t for t in self.config.tokens if t.token == presented), None)
        if token is None:
            raise Refused(hec(4))
        if token.disabled:
            raise Refused(hec(1))
        return token

    async def _collect(self, request: Request) -> Response:
        token = self._token(request)
        raw = await request.body()
        if not raw.strip():
            return hec(5)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return hec(6, event=0)
        envelopes, unreadable = split_envelopes(text)
        for number, envelope in enumerate(envelopes):
            code = self._problem(envelope, token)
            if code is not None:
                self._index_all(envelopes[:number], token, request)
                return hec(code, event=number)
        self._index_all(envelopes, token, request)
        if unreadable:
            return hec(6, event=len(envelopes))
        return hec(0)

    def _problem(self, envelope: Any, token: HecToken) -> int | None:
        if not isinstance(envelope, dict) or "event" not in envelope:
            return 12
        if envelope["event"] in (None, "") or envelope["event"] == {}:
            return 13
        index = envelope.get("index", token.default_index)
        if not isinstance(index, str) or (token.indexes and index not in token.indexes):
            return 7
        if "fields" in envelope and not _flat(envelope["fields"]):
            return 15
        when = envelope.get("time")
        if when is not None:
            try:
                float(when)
            except (TypeError, ValueError):
                return 6
        return None

    def _index_all(self, envelopes: list[Any], token: HecToken, request: Request) -> None:
        client = request.client.host if request.client else "unknown"
        with self.lock:
            for env in envelopes:
                self.events.append(
                    HecEvent(
                        event=env["event"],
                        time=float(env["time"]) if env.get("time") is not None else self.now(),
                        host=str(env.get("host") or client),
                        source=str(env.get("source") or f"http:{token.name}"),
                        sourcetype=str(env.get("sourcetype") or token.sourcetype),
                        index=str(env.get("index") or token.default_index),
                        fields=dict(env.get("fields") or {}),
                        token_name=token.name,
                    )
                )
