"""The webhook ingest handler (:mod:`ghapplets.gateway.ingest`) called directly, in-process, with
hand-made ASGI scopes, ``receive`` and ``send`` callables: every answer (status, JSON body and
headers, ``connection: close`` or not), every metric it counts, what it hands the source and
what it stores in a real embedded broker.

These pin the handler line by line (mutation testing found much of it unguarded by the
end-to-end tests of ``test_ingest.py``). The sources, broker and metrics are the real ones; the
only injected conditions are a broker message size limit and a broker outage
(:class:`EmbeddedBroker`), a normaliser that fails (:class:`ProbeSource`), a client that stalls
or goes away (the ``receive`` callables), and a recorder of the crash points reached.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from structlog.testing import capture_logs

from ghapplets.broker.base import EVENTS, Message, OutboundMessage, PublishAck
from ghapplets.broker.sqlite import SqliteBroker
from ghapplets.crashpoints import CrashPoint, reached
from ghapplets.dispatch.messages import H_RECEIVED_AT, H_SOURCE, H_VENDOR_HEADERS
from ghapplets.events import CloudEvent, InboundRequest
from ghapplets.exceptions import BrokerUnavailable, MalformedPayload, RejectReason
from ghapplets.gateway.forwarded import TrustedProxies
from ghapplets.gateway.ingest import IngestHandler, _query
from ghapplets.metrics import UNKNOWN, Metrics
from ghapplets.sources.base import Source
from ghapplets.sources.generic import GenericSettings, GenericSource
from ghapplets.store.database import Database
from ghapplets.testing.events import make_source, signed_request

SECRET = "ingest-handler-secret-4f1d9a02"
OTHER_SECRET = "ingest-handler-other-secret-9b2c71"
PROBE_SECRET = "ingest-handler-probe-secret-0c5e88"
TOKEN = "ingest-handler-splunk-token-73e0aa"
PEER = ("10.0.0.5", 50123)
MAX_BODY = 4096
DEADLINE = 5.0  # seconds any one call of the handler may take here

Headers = Mapping[str, str] | Sequence[tuple[str, str]]
ASGIMessage = dict[str, Any]


# -- the injected conditions ----------------------------------------------------------------------
class EmbeddedBroker(SqliteBroker):
    """The embedded SQLite broker with two conditions a test can switch on: a message size limit
    (as a NATS server's ``max_payload``) and an outage (``publish`` raises BrokerUnavailable)."""

    def __init__(self, path: Path) -> None:
        super().__init__(Database(path), consume=True, poll_interval=0.05)
        self.limit: int | None = None
        self.down = False

    @property
    def max_message_bytes(self) -> int | None:
        return self.limit

    async def publish(self, message: OutboundMessage) -> PublishAck:
        if self.down:
            raise BrokerUnavailable("database is closed (injected outage)")
        return await super().publish(message)


class ProbeSource(GenericSource):
    """A real ``generic`` source (``mode: none``) that keeps every request the gateway hands it,
    and whose normaliser can be made to fail as a buggy one would."""

    def __init__(self, name: str = "probe", *, fail: Exception | None = None) -> None:
        settings = GenericSettings(kind="generic", mode="none")
        super().__init__(name, settings, [PROBE_SECRET.encode()])
        self.heads: list[InboundRequest] = []  # what verify_headers saw
        self.requests: list[InboundRequest] = []  # what ingest saw
        self.fail = fail

    def verify_headers(self, request: InboundRequest) -> None:
        self.heads.append(request)
        super().verify_headers(request)

    def ingest(self, request: InboundRequest) -> CloudEvent:
        self.requests.append(request)
        return super().ingest(request)

    def normalise(self, request: InboundRequest, payload: Any) -> CloudEvent:
        if self.fail is not None:
            raise self.fail
        return super().normalise(request, payload)


# -- the client side of one request ---------------------------------------------------------------
class Receiver:
    """``receive``: hands out the given messages, then stalls (``stall``) or fails the test."""

    def __init__(self, messages: Sequence[ASGIMessage], *, stall: bool = False) -> None:
        self.messages = list(messages)
        self.stall = stall
        self.calls = 0

    async def __call__(self) -> ASGIMessage:
        self.calls += 1
        if self.messages:
            return self.messages.pop(0)
        if self.stall:  # a client that sent part of its body and then nothing more
            await asyncio.Event().wait()
        raise AssertionError("receive() called after the last body message")


def body_messages(*chunks: bytes, last_flag: bool = True) -> list[ASGIMessage]:
    """``http.request`` messages, ``more_body`` on all but the last; ``last_flag=False`` leaves
    the key out of the last one (it defaults to False)."""
    messages: list[ASGIMessage] = [
        {"type": "http.request", "body": c, "more_body": True} for c in chunks[:-1]
    ]
    last: ASGIMessage = {"type": "http.request", "body": chunks[-1] if chunks else b""}
    if last_flag:
        last["more_body"] = False
    return [*messages, last]


@dataclass(frozen=True)
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Exchange:
    """One call of the handler: what it sent back, and how it read the body."""

    sent: list[ASGIMessage] = field(default_factory=list)
    receive: Receiver = field(default_factory=lambda: Receiver(body_messages(b"")))

    @property
    def response(self) -> Response:
        """The one response: a start message then a body message, nothing else."""
        assert len(self.sent) == 2, self.sent
        start, body = self.sent
        assert start.keys() == {"type", "status", "headers"}, start
        assert start["type"] == "http.response.start"
        assert body.keys() == {"type", "body"}, body
        assert body["type"] == "http.response.body"
        return Response(start["status"], list(start["headers"]), body["body"])


def make_scope(
    headers: Headers,
    *,
    query: bytes | None = None,
    client: tuple[str, int] | None = PEER,
    with_client: bool = True,
) -> dict[str, Any]:
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/hooks/x",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs],
    }
    if query is not None:
        scope["query_string"] = query
    if with_client:
        scope["client"] = client
    return scope


async def post(
    handler: IngestHandler,
    name: str,
    headers: Headers = (),
    body: bytes = b"",
    *,
    receive: Receiver | None = None,
    query: bytes | None = None,
    client: tuple[str, int] | None = PEER,
    with_client: bool = True,
    timeline: list[object] | None = None,
) -> Exchange:
    """Call the handler once, within the deadline; ``timeline`` gets each message type sent."""
    exchange = Exchange(receive=receive or Receiver(body_messages(body)))

    async def send(message: ASGIMessage) -> None:
        exchange.sent.append(message)
        if timeline is not None:
            timeline.append(message["type"])

    scope = make_scope(headers, query=query, client=client, with_client=with_client)
    async with asyncio.timeout(DEADLINE):
        await handler(scope, exchange.receive, send, name)
    return exchange


def expect(exchange: Exchange, status: int, doc: Mapping[str, Any], *, close: bool) -> Response:
    """The exact answer: status, JSON document, and headers (``connection: close`` or not)."""
    r = exchange.response
    assert (r.status, r.json()) == (status, doc), r
    want = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(r.body))]
    if close:
        want.append((b"connection", b"close"))
    assert sorted(r.headers) == sorted(want)
    return r


def too_large(limit: int) -> dict[str, Any]:
    return {"error": RejectReason.TOO_LARGE, "limit": limit}


# -- metrics and what was stored ------------------------------------------------------------------
def samples(metrics: Metrics, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (dict(s.labels), s.value)
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name == name
    ]


def rejected(metrics: Metrics) -> dict[tuple[str, str], float]:
    return {
        (labels["source"], labels["reason"]): value
        for labels, value in samples(metrics, "ghapplets_webhooks_rejected_total")
    }


def received(metrics: Metrics) -> dict[str, float]:
    return {
        labels["source"]: value
        for labels, value in samples(metrics, "ghapplets_webhooks_received_total")
    }


def duplicates(metrics: Metrics) -> dict[str, float]:
    return {
        labels["source"]: value
        for labels, value in samples(metrics, "ghapplets_webhooks_duplicate_total")
    }


async def stored(broker: EmbeddedBroker) -> list[Message]:
    """Every event message in the broker. Fetching leases them: call it once, at the end."""
    want = await broker.depth(EVENTS)
    consumer = broker.consumer(EVENTS)
    got: list[Message] = []
    deadline = time.monotonic() + DEADLINE
    while len(got) < want:
        assert time.monotonic() < deadline, f"only {len(got)} of {want} messages fetched"
        got += await consumer.fetch(batch=100, timeout=0.2)
    return got


def vendor_headers(message: Message) -> dict[str, str]:
    value: dict[str, str] = orjson.loads(message.headers[H_VENDOR_HEADERS])
    return value


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def database_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with the schema in place, copied for each test (creating it takes longer than
    all a test does with it)."""
    path = tmp_path_factory.mktemp("ingest-handler") / "template.db"
    db = Database(path)
    db.open()
    db.close()
    return path


@pytest.fixture
async def broker(tmp_path: Path, database_file: Path) -> AsyncIterator[EmbeddedBroker]:
    path = tmp_path / "broker.db"
    shutil.copyfile(database_file, path)
    b = EmbeddedBroker(path)
    await b.start()
    try:
        yield b
    finally:
        await b.close()
        b.db.close()


@pytest.fixture(autouse=True)
def _quiet_logs() -> Iterator[None]:
    """Log lines are captured, not rendered: a traceback rendered with its locals can take
    seconds, which would turn a test that fails on an unexpected exception into a slow one."""
    with capture_logs():
        yield


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def github() -> Source:
    return make_source("github", "github", secret=SECRET)


@pytest.fixture
def points(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The crash points the handler reaches, in order (it still calls the real ``reached``)."""
    seen: list[object] = []

    def record(point: CrashPoint) -> None:
        seen.append(point)
        reached(point)

    monkeypatch.setattr("ghapplets.gateway.ingest.reached", record)
    return seen


def handler_for(
    broker: EmbeddedBroker, metrics: Metrics, *sources: Source, **options: Any
) -> IngestHandler:
    options.setdefault("max_body", MAX_BODY)
    return IngestHandler({s.name: s for s in sources}, broker, metrics, **options)


def github_request(
    source: Source, body: bytes, delivery: str, **extra: str
) -> tuple[dict[str, str], bytes]:
    """Headers and body GitHub sends for ``body`` (bytes kept exactly), signed by ``source``."""
    _, signed = signed_request(
        "github", "issues.opened", source=source, payload=body, delivery_id=delivery
    )
    return {**signed.headers, **extra}, signed.body


ISSUE = orjson.dumps(
    {
        "action": "opened",
        "issue": {"number": 7, "title": "t", "user": {"login": "u"}},
        "repository": {"full_name": "o/r", "name": "r", "owner": {"login": "o"}},
        "sender": {"login": "u"},
    }
)


# -- defaults and _query --------------------------------------------------------------------------
async def test_defaults(broker: EmbeddedBroker, metrics: Metrics) -> None:
    handler = IngestHandler({}, broker, metrics, max_body=1234)
    assert handler.body_timeout == 30.0
    assert not handler.proxies
    assert handler.max_body == 1234


def test_query_string_parsing() -> None:
    assert _query({}) == {}
    assert _query({"query_string": b""}) == {}
    assert _query({"query_string": b"a=1&b="}) == {"a": "1", "b": ""}
    assert _query({"query_string": b"b=&a=x+y"}) == {"b": "", "a": "x y"}
    assert _query({"query_string": b"n=caf\xe9&m=%C3%A9"}) == {"n": "café", "m": "é"}


# -- unknown source -------------------------------------------------------------------------------
async def test_unknown_source_is_404_closed_and_counted_under_one_label(
    broker: EmbeddedBroker, metrics: Metrics, github: Source, points: list[object]
) -> None:
    handler = handler_for(broker, metrics, github)
    name = "n" * 63 + "XYZ" + "-tail" * 10
    ex = await post(handler, name, {"content-type": "application/json"}, ISSUE)
    doc = {"error": RejectReason.UNKNOWN_SOURCE, "message": f"no source {name[:64]!r}"}
    assert doc["message"] == "no source '" + "n" * 63 + "X'"
    expect(ex, 404, doc, close=True)
    assert ex.receive.calls == 0
    ex = await post(handler, "Github", {"content-type": "application/json"}, ISSUE)
    expect(ex, 404, {"error": "unknown_source", "message": "no source 'Github'"}, close=True)
    assert rejected(metrics) == {(UNKNOWN, RejectReason.UNKNOWN_SOURCE.value): 2.0}
    assert received(metrics) == {} and duplicates(metrics) == {}
    assert points == []
    assert await broker.depth(EVENTS) == 0


# -- the whole path, and what is stored -----------------------------------------------------------
async def test_accepted_webhook_is_stored_answered_202_and_counted(
    broker: EmbeddedBroker, metrics: Metrics, github: Source, points: list[object]
) -> None:
    handler = handler_for(broker, metrics, github)
    headers, body = github_request(github, ISSUE, "d-1")
    timeline = points
    before = time.time()
    ex = await post(handler, "github", headers, body, timeline=timeline)
    after = time.time()
    expect(ex, 202, {"id": "d-1"}, close=False)
    assert "duplicate" not in ex.response.json()
    assert ex.receive.calls == 1
    assert timeline == [
        CrashPoint.GATEWAY_VERIFIED,
        CrashPoint.GATEWAY_PUBLISHED,
        "http.response.start",
        "http.response.body",
        CrashPoint.GATEWAY_ANSWERED,
    ]
    assert received(metrics) == {"github": 1.0}
    assert rejected(metrics) == {} and duplicates(metrics) == {}
    [message] = await stored(broker)
    # GitHub signs the body alone: the replay key is the message id
    assert message.msg_id == f"github:body:{hashlib.sha256(body).hexdigest()}"
    assert message.data == body
    assert message.headers[H_SOURCE] == "github"
    assert message.headers["ce-id"] == "d-1"
    assert message.headers["ce-type"] == "com.github.issues.opened"
    assert before <= float(message.headers[H_RECEIVED_AT]) <= after
    kept = vendor_headers(message)
    assert kept["x-github-delivery"] == "d-1" and kept["x-github-event"] == "issues"
    assert "x-hub-signature-256" not in kept and "x-hub-signature" not in kept


async def test_headers_are_lowercased_repeats_joined_and_latin1_decoded(
    broker: EmbeddedBroker, metrics: Metrics
) -> None:
    probe = ProbeSource()
    handler = handler_for(broker, metrics, probe)
    body = b'{"n": 1}'
    headers = [
        ("Content-Type", "application/json"),
        ("X-Request-Id", "req-1"),
        ("X-Multi", "one"),
        ("x-multi", "two"),
        ("X-MULTI", "three"),
        ("X-Note", "caf\xe9"),
        ("Content-Length", str(len(body))),
    ]
    ex = await post(handler, "probe", headers, body)
    expect(ex, 202, {"id": "req-1"}, close=False)
    want = {
        "content-type": "application/json",
        "x-request-id": "req-1",
        "x-multi": "one, two, three",
        "x-note": "café",
        "content-length": "8",
    }
    [head] = probe.heads
    [request] = probe.requests
    assert dict(head.headers) == want
    assert dict(request.headers) == want
    [message] = await stored(broker)
    assert vendor_headers(message) == want
    assert message.msg_id == "probe:req-1"  # no body signature: the event id is the key


async def test_source_sees_the_head_then_the_whole_request(
    broker: EmbeddedBroker, metrics: Metrics
) -> None:
    probe = ProbeSource()
    handler = handler_for(broker, metrics, probe)
    headers = {"content-type": "application/json", "x-request-id": "q-1"}
    ex = await post(handler, "probe", headers, b"[1, 2]", query=b"a=1&b=&c=caf\xe9")
    expect(ex, 202, {"id": "q-1"}, close=False)
    query = {"a": "1", "b": "", "c": "café"}
    assert probe.heads == [
        InboundRequest("probe", headers, b"", query, PEER[0])
    ]  # the head: no body yet
    assert probe.requests == [InboundRequest("probe", headers, b"[1, 2]", query, PEER[0])]
    # no query string at all in the scope
    ex = await post(handler, "probe", {"x-request-id": "q-2"}, b"{}")
    expect(ex, 202, {"id": "q-2"}, close=False)
    assert probe.heads[-1].query == {} and probe.requests[-1].query == {}


async def test_credentials_and_secret_values_are_not_stored(
    broker: EmbeddedBroker, metrics: Metrics
) -> None:
    signed_source = make_source("generic", "signed", secret=SECRET, header="X-My-Sig")
    probe = ProbeSource()
    handler = handler_for(broker, metrics, signed_source, probe)
    signed_body = b'{"a": 1}'
    request = signed_source.sign("", signed_body, "g-1")
    headers = {**request.headers, "X-Echo": f"echo {SECRET}", "X-Kept": "yes"}
    expect(await post(handler, "signed", headers, request.body), 202, {"id": "g-1"}, close=False)
    # the probe's own secret, sent under some header: not stored either
    headers = {"x-request-id": "p-1", "x-echo": PROBE_SECRET, "x-kept": "yes"}
    expect(await post(handler, "probe", headers, b"{}"), 202, {"id": "p-1"}, close=False)
    messages = {m.msg_id: m for m in await stored(broker)}
    replay_key = f"signed:body:{hashlib.sha256(signed_body).hexdigest()}"
    signed_headers = vendor_headers(messages[replay_key])
    assert "x-my-sig" not in signed_headers and "x-echo" not in signed_headers
    assert signed_headers["x-kept"] == "yes"
    probe_headers = vendor_headers(messages["probe:p-1"])
    assert probe_headers == {"x-request-id": "p-1", "x-kept": "yes"}
    assert received(metrics) == {"signed": 1.0, "probe": 1.0}


# -- content type: the raw JSON bytes, or the event's data ----------------------------------------
@pytest.mark.parametrize("ctype", ["application/json", "application/json; charset=utf-8"])
async def test_json_body_is_stored_byte_for_byte(
    broker: EmbeddedBroker, metrics: Metrics, github: Source, ctype: str
) -> None:
    handler = handler_for(broker, metrics, github)
    odd = b'  {"action" :"opened",\n\t"repository": {"full_name": "o/r"} ,"x":[1 ,2]}\n '
    headers, body = github_request(github, odd, "raw-1", **{"Content-Type": ctype})
    expect(await post(handler, "github", headers, body), 202, {"id": "raw-1"}, close=False)
    [message] = await stored(broker)
    assert message.data == odd


async def test_form_encoded_body_is_stored_as_the_events_data(
    broker: EmbeddedBroker, metrics: Metrics, github: Source
) -> None:
    handler = handler_for(broker, metrics, github)
    payload = {"action": "opened", "repository": {"full_name": "o/r"}, "x": [1, 2]}
    form = b"payload=" + quote(orjson.dumps(payload).decode().replace(",", " , ")).encode()
    headers, body = github_request(
        github, form, "form-1", **{"Content-Type": "application/x-www-form-urlencoded"}
    )
    expect(await post(handler, "github", headers, body), 202, {"id": "form-1"}, close=False)
    [message] = await stored(broker)
    assert message.data == orjson.dumps(payload) != body


async def test_without_a_content_type_the_events_data_is_stored(
    broker: EmbeddedBroker, metrics: Metrics
) -> None:
    probe = ProbeSource()
    handler = handler_for(broker, metrics, probe)
    ex = await post(handler, "probe", {"x-request-id": "n-1"}, b' { "a" : [ 1 ] } ')
    expect(ex, 202, {"id": "n-1"}, close=False)
    [message] = await stored(broker)
    assert message.data == b'{"a":[1]}'


# -- Content-Length and the size limit ------------------------------------------------------------
@pytest.mark.parametrize(
    "declared",
    [
        [("Content-Length", "abc")],
        [("Content-Length", "-1")],
        [("Content-Length", "1e3")],
        [("Content-Length", " 10")],
        [("Content-Length", "")],
        [("Content-Length", "10"), ("content-length", "10")],  # joined: "10, 10"
        [("Content-Length", "\u00b2")],  # latin-1 b"\xb2": a digit to str.isdigit, not to int
    ],
)
async def test_content_length_not_a_number_is_413_before_anything_else(
    broker: EmbeddedBroker, metrics: Metrics, github: Source, declared: list[tuple[str, str]]
) -> None:
    handler = handler_for(broker, metrics, github)
    # no signature at all: the size answer comes first, and the body is never read
    ex = await post(handler, "github", [("content-type", "application/json"), *declared], ISSUE)
    expect(ex, 413, too_large(MAX_BODY), close=True)
    assert ex.receive.calls == 0
    assert rejected(metrics) == {("github", RejectReason.TOO_LARGE.value): 1.0}
    assert await broker.depth(EVENTS) == 0


async def test_content_length_over_the_limit_is_413_and_at_the_limit_accepted(
    broker: EmbeddedBroker, metrics: Metrics, github: Source
) -> None:
    limit = 300
    handler = handler_for(broker, metrics, github, max_body=limit)
    exact = ISSUE + b" " * (limit - len(ISSUE))
    headers, body = github_request(github, exact, "edge-1")
    assert len(body) == limit
    ex = await post(handler, "github", {**headers, "Content-Length": str(limit)}, body)
    expect(ex, 202, {"id": "edge-1"}, close=False)
    # one byte more, declared: refused before verification (the signature is not even there)
    ex = await post(
        handler,
        "github",
        {"content-type": "application/json", "content-length": str(limit + 1)},
        body + b" ",
    )
    expect(ex, 413, too_large(limit), close=True)
    assert ex.receive.calls == 0
    assert rejected(metrics) == {("github", "too_large"): 1.0}
    assert received(metrics) == {"github": 1.0}
    assert [m.data for m in await stored(broker)] == [exact]


@pytest.mark.parametrize(
    ("configured", "broker_limit", "effective"),
    [(100, None, 100), (100, 60, 60), (100, 100, 100), (100, 250, 100)],
)
async def test_the_limit_is_the_smaller_of_the_configured_and_the_brokers(
    broker: EmbeddedBroker,
    metrics: Metrics,
    configured: int,
    broker_limit: int | None,
    effective: int,
) -> None:
    broker.limit = broker_limit
    probe = ProbeSource()
    handler = handler_for(broker, metrics, probe, max_body=configured)
    assert handler.max_body == effective
    for declared in (effective + 1, configured + 1, 10_000):
        ex = await post(handler, "probe", {"content-length": str(declared)}, b"{}")
        expect(ex, 413, too_large(effective), close=True)
        assert ex.receive.calls == 0
    # streamed, no Content-Length: counted while reading
    ex = await post(handler, "probe", {}, b"[" + b" " * (effective - 1) + b"]")
    expect(ex, 413, too_large(effective), close=True)
    body = b"[" + b" " * (effective - 2) + b"]"
    ex = await post(handler, "probe", {"content-length": str(effective)}, body)
    expect(ex, 202, {"id": "sha256:" + hashlib.sha256(body).hexdigest()}, close=False)
    assert rejected(metrics) == {("probe", "too_large"): 4.0}
    assert probe.heads[-1].headers == {"content-length": str(effective)}


# -- the checks that need no body -----------------------------------------------------------------
async def test_missing_signature_is_refused_before_the_body_is_read(
    broker: EmbeddedBroker, metrics: Metrics, github: Source, points: list[object]
) -> None:
    handler = handler_for(broker, metrics, github)
    headers, body = github_request(github, ISSUE, "nosig-1")
    del headers["X-Hub-Signature-256"], headers["X-Hub-Signature"]
    with capture_logs() as logs:
        ex = await post(handler, "github", headers, body)
    doc = {"error": RejectReason.MISSING_SIGNATURE, "message": "missing X-Hub-Signature-256 header"}
    expect(ex, 401, doc, close=True)
    assert ex.receive.calls == 0
    assert logs == [
        {
            "event": "webhook rejected",
            "log_level": "warning",
            "source": "github",
            "reason": "missing_signature",
        }
    ]
    assert rejected(metrics) == {("github", RejectReason.MISSING_SIGNATURE.value): 1.0}
    assert points == []
    assert await broker.depth(EVENTS) == 0


@pytest.mark.parametrize(
    ("query", "peer", "status", "reason", "message"),
    [
        (b"", PEER, 401, RejectReason.MISSING_TOKEN, "missing token (query parameter 'token')"),
        (
            b"token=wrong",
            PEER,
            401,
            RejectReason.BAD_TOKEN,
            "token (query parameter 'token') does not match any secret",
        ),
        (
            b"token=" + TOKEN.encode(),
            ("203.0.113.9", 4000),
            403,
            RejectReason.IP_NOT_ALLOWED,
            "client address '203.0.113.9' is not in allowed_ips",
        ),
    ],
)
async def test_token_and_address_are_refused_before_the_body_is_read(
    broker: EmbeddedBroker,
    metrics: Metrics,
    query: bytes,
    peer: tuple[str, int],
    status: int,
    reason: RejectReason,
    message: str,
) -> None:
    splunk = make_source("splunk", "splunk", secret=TOKEN, allowed_ips=["10.0.0.0/8"])
    handler = handler_for(broker, metrics, splunk)
    ex = await post(
        handler, "splunk", {"content-type": "application/json"}, b"{}", query=query, client=peer
    )
    expect(ex, status, {"error": reason, "message": message}, close=True)
    assert ex.receive.calls == 0
    assert rejected(metrics) == {("splunk", reason.value): 1.0}
    assert await broker.depth(EVENTS) == 0


# -- reading the body -----------------------------------------------------------------------------
async def test_a_body_in_several_chunks_is_joined(broker: EmbeddedBroker, metrics: Metrics) -> None:
    probe = ProbeSource()
    handler = handler_for(broker, metrics, probe, max_body=10)
    chunks = (b"[1, ", b"", b"2, 3", b"", b" ]")  # exactly the limit, with empty chunks
    receive = Receiver(body_messages(*chunks, last_flag=False))
    headers = {"content-type": "application/json", "x-request-id": "c-1"}
    ex = await post(handler, "probe", headers, receive=receive)
    expect(ex, 202, {"id": "c-1"}, close=False)
    assert receive.calls == 5
    assert probe.requests[0].body == b"[1, 2, 3 ]"
    [message] = await stored(broker)
    assert message.data == b"[1, 2, 3 ]"


async def test_two_chunks_and_a_final_message_without_a_body(
    broker: EmbeddedBroker, metrics: Metrics
) -> None:
    probe = ProbeSource()
    handler = handler_for(broker, metrics, probe)
    messages: list[ASGIMessage] = [
        {"type": "http.request", "body": b"[1,", "more_body": True},
        {"type": "http.request", "body": b"2]", "more_body": True},
        {"type": "http.request"},
    ]
    receive = Receiver(messages)
    ex = await post(handler, "probe", {"x-request-id": "c-2"}, receive=receive)
    expect(ex, 202, {"id": "c-2"}, close=False)
    assert receive.calls == 3
    assert probe.requests[0].body == b"[1,2]"


@pytest.mark.parametrize("last_flag", [True, False])
async def test_an_empty_body_is_read_once(
    broker: EmbeddedBroker, metrics: Metrics, last_flag: bool
) -> None:
    probe = ProbeSource()
    handler = handler_for(broker, metrics, probe)
    receive = Receiver(body_messages(b"", last_flag=last_flag))
    ex = await post(handler, "probe", {}, receive=receive)
    assert receive.calls == 1
    assert probe.requests[0].body == b""
    doc = ex.response.json()
    assert ex.response.status == 400 and doc["error"] == RejectReason.MALFORMED


async def test_a_streamed_body_over_the_limit_is_413_and_reading_stops(
    broker: EmbeddedBroker, metrics: Metrics, github: Source
) -> None:
    limit = 10
    handler = handler_for(broker, metrics, github, max_body=limit)
    headers, _ = github_request(github, b"[1, 2, 3 ] ", "big-1")
    # each chunk fits on its own; together they are one byte over
    receive = Receiver(body_messages(b"[1, ", b"2, 3", b" ] ", b"never read"))
    ex = await post(handler, "github", headers, receive=receive)
    expect(ex, 413, too_large(limit), close=True)
    assert receive.calls == 3
    assert rejected(metrics) == {("github", "too_large"): 1.0}
    assert await broker.depth(EVENTS) == 0


@pytest.mark.parametrize("before", [0, 1])
async def test_a_client_that_goes_away_gets_no_answer(
    broker: EmbeddedBroker, metrics: Metrics, github: Source, before: int
) -> None:
    handler = handler_for(broker, metrics, github)
    headers, body = github_request(github, ISSUE, "gone-1")
    messages: list[ASGIMessage] = [{"type": "http.request", "body": body[:20], "more_body": True}]
    receive = Receiver([*messages[:before], {"type": "http.disconnect"}])
    ex = await post(handler, "github", headers, receive=receive)
    assert ex.sent == []
    assert receive.calls == before + 1
    assert rejected(metrics) == {("github", RejectReason.DISCONNECTED.value): 1.0}
    assert received(metrics) == {}
    assert await broker.depth(EVENTS) == 0


async def test_a_stalled_body_is_408_after_body_timeout(
    broker: EmbeddedBroker, metrics: Metrics, github: Source
) -> None:
    handler = handler_for(broker, metrics, github, body_timeout=0.05)
    headers, body = github_request(github, ISSUE, "slow-1")
    receive = Receiver(body_messages(body[:10], body[10:])[:1], stall=True)
    ex = await post(handler, "github", headers, receive=receive)  # within DEADLINE
    expect(ex, 408, {"error": RejectReason.BODY_TIMEOUT}, close=True)
    assert receive.calls == 2
    assert rejected(metrics) == {("github", RejectReason.BODY_TIMEOUT.value): 1.0}
    assert await broker.depth(EVENTS) == 0


# -- after the body: verification, parsing, normalising -------------------------------------------
async def test_a_bad_signature_is_401_without_close_and_nothing_is_stored(
    broker: EmbeddedBroker, metrics: Metrics, github: Source, points: list[object]
) -> None:
    handler = handler_for(broker, metrics, github)
    impostor = make_source("github", "github", secret=OTHER_SECRET)
    headers, body = github_request(impostor, ISSUE, "bad-1")
    with capture_logs() as logs:
        ex = await post(handler, "github", headers, body)
    doc = {
        "error": RejectReason.BAD_SIGNATURE,
        "message": "X-Hub-Signature-256 does not match any configured secret",
    }
    expect(ex, 401, doc, close=False)
    assert ex.receive.calls == 1
    assert logs == [
        {
            "event": "webhook rejected",
            "log_level": "warning",
            "source": "github",
            "reason": "bad_signature",
        }
    ]
    assert rejected(metrics) == {("github", RejectReason.BAD_SIGNATURE.value): 1.0}
    assert received(metrics) == {}
    assert points == []
    assert await broker.depth(EVENTS) == 0


async def test_a_malformed_payload_is_400_with_its_message(
    broker: EmbeddedBroker, metrics: Metrics, github: Source
) -> None:
    handler = handler_for(broker, metrics, github)
    headers, body = github_request(github, ISSUE, "mal-1")
    del headers["X-GitHub-Event"]
    ex = await post(handler, "github", headers, body)
    doc = {"error": RejectReason.MALFORMED, "message": "missing x-github-event header"}
    expect(ex, 400, doc, close=False)
    with pytest.raises(MalformedPayload, match=r"^missing x-github-event header$"):
        github.ingest(InboundRequest("github", {k.lower(): v for k, v in headers.items()}, body))
    assert rejected(metrics) == {("github", RejectReason.MALFORMED.value): 1.0}
    assert await broker.depth(EVENTS) == 0


async def test_a_failing_normaliser_is_400_payload_not_understood(
    broker: EmbeddedBroker, metrics: Metrics, points: list[object]
) -> None:
    probe = ProbeSource(fail=RuntimeError("normaliser bug"))
    handler = handler_for(broker, metrics, probe)
    with capture_logs() as logs:
        ex = await post(handler, "probe", {"content-type": "application/json"}, b"{}")
    doc = {"error": RejectReason.MALFORMED, "message": "payload not understood"}
    expect(ex, 400, doc, close=False)
    assert len(logs) == 1
    assert logs[0]["event"] == "normaliser failed"
    assert logs[0]["log_level"] == "error"
    assert (logs[0]["source"], logs[0]["error"]) == ("probe", "normaliser bug")
    assert rejected(metrics) == {("probe", RejectReason.NORMALISE_ERROR.value): 1.0}
    assert points == []
    assert await broker.depth(EVENTS) == 0


# -- storing: outage and duplicates ---------------------------------------------------------------
async def test_a_broker_outage_is_503(
    broker: EmbeddedBroker, metrics: Metrics, github: Source, points: list[object]
) -> None:
    broker.down = True
    handler = handler_for(broker, metrics, github)
    headers, body = github_request(github, ISSUE, "down-1")
    with capture_logs() as logs:
        ex = await post(handler, "github", headers, body)
    doc = {"error": RejectReason.UNAVAILABLE, "message": "try again later"}
    expect(ex, 503, doc, close=False)
    assert logs == [
        {
            "event": "could not store webhook",
            "log_level": "error",
            "source": "github",
            "error": "database is closed (injected outage)",
        }
    ]
    assert rejected(metrics) == {("github", RejectReason.UNAVAILABLE.value): 1.0}
    assert received(metrics) == {}
    assert points == [CrashPoint.GATEWAY_VERIFIED]
    broker.down = False  # back: the same delivery is stored
    expect(await post(handler, "github", headers, body), 202, {"id": "down-1"}, close=False)
    assert received(metrics) == {"github": 1.0}


async def test_a_duplicate_is_202_marked_and_counted_apart(
    broker: EmbeddedBroker, metrics: Metrics, github: Source, points: list[object]
) -> None:
    handler = handler_for(broker, metrics, github)
    headers, body = github_request(github, ISSUE, "dup-1")
    first = await post(handler, "github", headers, body)
    expect(first, 202, {"id": "dup-1"}, close=False)
    assert (received(metrics), duplicates(metrics)) == ({"github": 1.0}, {})
    timeline = points
    timeline.clear()
    second = await post(handler, "github", headers, body, timeline=timeline)
    expect(second, 202, {"id": "dup-1", "duplicate": True}, close=False)
    assert timeline == [
        CrashPoint.GATEWAY_VERIFIED,
        CrashPoint.GATEWAY_PUBLISHED,
        "http.response.start",
        "http.response.body",
        CrashPoint.GATEWAY_ANSWERED,
    ]
    # the same signed body under another delivery id is a replay: a duplicate too
    replay = {**headers, "X-GitHub-Delivery": "dup-2"}
    third = await post(handler, "github", replay, body)
    expect(third, 202, {"id": "dup-2", "duplicate": True}, close=False)
    assert received(metrics) == {"github": 1.0}
    assert duplicates(metrics) == {"github": 2.0}
    assert rejected(metrics) == {}
    assert len(await stored(broker)) == 1


async def test_received_is_counted_once_per_event_per_source(
    broker: EmbeddedBroker, metrics: Metrics, github: Source
) -> None:
    other = make_source("github", "github-2", secret=SECRET)
    handler = handler_for(broker, metrics, github, other)
    for name, delivery, number in [("github", "a", 1), ("github-2", "b", 2), ("github", "c", 3)]:
        body = ISSUE.replace(b'"number":7', b'"number":%d' % number)
        headers, body = github_request(github, body, delivery)
        expect(await post(handler, name, headers, body), 202, {"id": delivery}, close=False)
    assert received(metrics) == {"github": 2.0, "github-2": 1.0}
    # each source's counter is looked up once, then reused
    assert handler._received == {
        "github": metrics.received.labels("github"),
        "github-2": metrics.received.labels("github-2"),
    }
    messages = await stored(broker)
    assert sorted(m.headers[H_SOURCE] for m in messages) == ["github", "github", "github-2"]


# -- the client's address -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "want"),
    [
        ({"client": ("10.0.0.5", 1234)}, "10.0.0.5"),
        ({"client": None}, None),
        ({"with_client": False}, None),
    ],
)
async def test_without_trusted_proxies_the_peer_is_the_client(
    broker: EmbeddedBroker, metrics: Metrics, kwargs: dict[str, Any], want: str | None
) -> None:
    probe = ProbeSource()
    handler = handler_for(broker, metrics, probe)
    headers = {"x-forwarded-for": "10.1.2.3", "x-request-id": "ip-1"}
    ex = await post(handler, "probe", headers, b"{}", **kwargs)
    expect(ex, 202, {"id": "ip-1"}, close=False)
    assert [r.client_ip for r in (*probe.heads, *probe.requests)] == [want, want]


@pytest.mark.parametrize(
    ("peer", "forwarded", "want"),
    [
        ("127.0.0.1", [("X-Forwarded-For", "10.1.2.3")], "10.1.2.3"),
        # two headers, joined in order: the right-most untrusted hop is the client
        (
            "127.0.0.1",
            [("X-Forwarded-For", "203.0.113.7"), ("x-forwarded-for", "10.1.2.3, 127.0.0.1")],
            "10.1.2.3",
        ),
        ("127.0.0.1", [], "127.0.0.1"),
        ("203.0.113.9", [("X-Forwarded-For", "10.1.2.3")], "203.0.113.9"),
    ],
)
async def test_behind_trusted_proxies_forwarded_for_is_the_client(
    broker: EmbeddedBroker,
    metrics: Metrics,
    peer: str,
    forwarded: list[tuple[str, str]],
    want: str,
) -> None:
    probe = ProbeSource()
    handler = handler_for(broker, metrics, probe, trusted_proxies=TrustedProxies(["127.0.0.1/32"]))
    headers = [("x-request-id", "px-1"), *forwarded]
    ex = await post(handler, "probe", headers, b"{}", client=(peer, 443))
    expect(ex, 202, {"id": "px-1"}, close=False)
    assert [r.client_ip for r in (*probe.heads, *probe.requests)] == [want, want]


async def test_an_allow_list_sees_the_address_the_rule_gives(
    broker: EmbeddedBroker, metrics: Metrics
) -> None:
    splunk = make_source("splunk", "splunk", secret=TOKEN, allowed_ips=["10.0.0.0/8"])
    proxies = TrustedProxies(["127.0.0.1/32"])
    handler = handler_for(broker, metrics, splunk, trusted_proxies=proxies)
    query = b"token=" + TOKEN.encode()
    alert = orjson.dumps({"sid": "s-1", "search_name": "errors"})
    headers = {"content-type": "application/json", "x-forwarded-for": "10.1.2.3"}
    ex = await post(handler, "splunk", headers, alert, query=query, client=("127.0.0.1", 1))
    expect(ex, 202, {"id": "s-1"}, close=False)
    ex = await post(handler, "splunk", headers, alert, query=query, client=("203.0.113.9", 1))
    doc = {
        "error": RejectReason.IP_NOT_ALLOWED,
        "message": "client address '203.0.113.9' is not in allowed_ips",
    }
    expect(ex, 403, doc, close=True)
    assert rejected(metrics) == {("splunk", "ip_not_allowed"): 1.0}
    assert len(await stored(broker)) == 1
