"""The Splunk log sink against the HEC fake: envelopes, redaction, batching, retries, drops
(counted, never waited for), one warning per trouble, the queue's bound, the stop's flush."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import http.server
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import ghapplets.logging as ghlog
from ghapplets import logsink
from ghapplets.applets.model import RetryPolicy
from ghapplets.config.models import SplunkHecConfig
from ghapplets.exceptions import NotFound
from ghapplets.fakes.runner import FakeSet
from ghapplets.fakes.splunk import SplunkFake
from ghapplets.logging import configure, get_logger, redact, register_secret
from ghapplets.logsink import DropReason, SplunkHecSink
from ghapplets.metrics import Metrics
from tests.cli.helpers import logging_restored, poll
from tests.conftest import free_port

TOKEN = "11111111-2222-3333-4444-555555555555"  # the fake's development token
SECRET = "webhook-secret-7c1e94"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No registered secrets, quick retries, logging put back; and every sink thread a test
    started has ended before the next test reads the (process-wide) counters."""
    monkeypatch.setattr(ghlog, "_SECRETS", set())
    monkeypatch.setattr(ghlog, "_ORDERED", ())
    monkeypatch.setattr(
        logsink, "RETRY", RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=2.0)
    )
    with logging_restored():
        yield
    for thread in threading.enumerate():
        if thread.name == "splunk-log-sink":
            thread.join(timeout=15)
            assert not thread.is_alive(), "a sink thread outlived its test"


@pytest.fixture
def splunk(ghapplets_fakes: FakeSet) -> SplunkFake:
    return ghapplets_fakes.splunk


async def no_secrets(name: str) -> str:
    raise NotFound(name)


def sink_for(url: str, root: Path = Path("."), **settings: Any) -> SplunkHecSink:
    """A sink on ``url`` (the fake's token, a batch every 50 ms unless ``settings`` say
    otherwise), installed with JSON logging to stderr; not started."""
    settings.setdefault("token", TOKEN)
    settings.setdefault("flush_interval", 0.05)
    config = SplunkHecConfig(url=url, **settings)
    sink = SplunkHecSink(config, source="ghapplets:test", root=root, host="test-host")
    configure("json", "debug", sink=sink)
    return sink


@contextlib.contextmanager
def shipping(url: str, root: Path = Path("."), **settings: Any) -> Iterator[SplunkHecSink]:
    """A started sink (see :func:`sink_for`), closed after the block."""
    sink = sink_for(url, root, **settings)
    asyncio.run(sink.start(no_secrets))
    try:
        yield sink
    finally:
        sink.close()


def count(name: str, **labels: str) -> float:
    """A counter's value as a platform's ``/metrics`` shows it."""
    return Metrics().registry.get_sample_value(name, labels) or 0.0


def dropped(reason: DropReason) -> float:
    return count("ghapplets_log_events_dropped_total", reason=reason.value)


def shipped() -> float:
    return count("ghapplets_log_events_shipped_total")


class Local:
    """The lines logged to this process's stderr: everything captured so far, accumulated."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.lines: list[dict[str, Any]] = []

    def __call__(self) -> list[dict[str, Any]]:
        err = self.capsys.readouterr().err
        self.lines.extend(json.loads(line) for line in err.splitlines() if line.strip())
        return self.lines

    def of_the_sink(self) -> list[dict[str, Any]]:
        return [line for line in self() if line.get("url", "").endswith("/collector/event")]


@pytest.fixture
def printed(capsys: pytest.CaptureFixture[str]) -> Local:
    return Local(capsys)


def posts(splunk: SplunkFake) -> list[Any]:
    return splunk.requests(path="/services/collector/event", method="POST")


def settle(splunk: SplunkFake) -> None:
    """Wait for the fake to answer every request, even those the sink gave up on (a delayed
    one indexes its events when its delay is over, which must not be in the next test)."""
    poll(lambda: all(r.status is not None for r in posts(splunk)), timeout=10)


def test_lines_reach_hec_as_envelopes_after_redaction(splunk: SplunkFake, printed: Local) -> None:
    assert splunk.base_url is not None
    register_secret(SECRET)
    before = time.time()
    with shipping(splunk.base_url, index="ghapplets-logs"):
        get_logger("test").info("webhook accepted", source="github", secret=SECRET, n=3)
        (event,) = poll(lambda: splunk.events)
    assert event.host == "test-host" and event.source == "ghapplets:test"
    assert event.sourcetype == "ghapplets" and event.index == "ghapplets-logs"
    assert before - 1 <= event.time <= time.time() + 1
    line = event.event
    assert line["event"] == "webhook accepted" and line["level"] == "info"
    assert line["source"] == "github" and line["n"] == 3 and line["timestamp"]
    assert line["secret"] == "***"
    (request,) = posts(splunk)
    assert request.header("authorization") == f"Splunk {TOKEN}"
    assert SECRET.encode() not in request.body
    # the line is still logged here, the same
    assert printed() == [line]


def test_without_index_hec_uses_the_tokens(splunk: SplunkFake) -> None:
    assert splunk.base_url is not None
    with shipping(splunk.base_url, sourcetype="_json", source="ghapplets-prod"):
        get_logger().warning("no index")
        (event,) = poll(lambda: splunk.events)
    assert (event.index, event.sourcetype, event.source) == ("main", "_json", "ghapplets-prod")
    assert b'"index"' not in posts(splunk)[0].body


@pytest.mark.parametrize("reference", ["${env:HEC_TOKEN}", "${secret:hec-token}"])
def test_the_token_may_be_a_reference_and_is_never_logged(
    splunk: SplunkFake,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    reference: str,
) -> None:
    assert splunk.base_url is not None
    monkeypatch.setenv("HEC_TOKEN", TOKEN)

    async def secrets(name: str) -> str:
        assert name == "hec-token"
        return TOKEN

    sink = sink_for(splunk.base_url, token=reference)
    asyncio.run(sink.start(secrets))
    try:
        get_logger().info(f"the token is {TOKEN}", token=TOKEN)
        (event,) = poll(lambda: splunk.events)
    finally:
        sink.close()
    assert event.event["event"] == "the token is ***" and event.event["token"] == "***"
    assert redact(TOKEN) == "***"
    assert posts(splunk)[0].header("authorization") == f"Splunk {TOKEN}"
    assert TOKEN not in capsys.readouterr().err


def test_lines_go_in_batches(splunk: SplunkFake) -> None:
    assert splunk.base_url is not None
    before = shipped()
    with shipping(splunk.base_url, batch_size=10, flush_interval=30) as sink:
        log = get_logger()
        for n in range(25):
            log.info("line", n=n)
        asyncio.run(sink.start(no_secrets))  # a second start does nothing
        assert [t.name for t in threading.enumerate()].count("splunk-log-sink") == 1
        sink.close()  # the last 5 go now, not in 30 s
        bodies = [r.body.decode() for r in posts(splunk)]
    assert [body.count("\n") + 1 for body in bodies] == [10, 10, 5]
    assert [e.event["n"] for e in splunk.events] == list(range(25))
    assert shipped() - before == 25


def test_a_partial_batch_goes_after_flush_interval(splunk: SplunkFake) -> None:
    assert splunk.base_url is not None
    with shipping(splunk.base_url, batch_size=100, flush_interval=0.2):
        for n in range(3):
            get_logger().info("line", n=n)
        poll(lambda: len(splunk.events) == 3, timeout=5)
        assert len(posts(splunk)) == 1


def test_busy_and_rate_limited_answers_are_tried_again(splunk: SplunkFake) -> None:
    assert splunk.base_url is not None
    before = {reason: dropped(reason) for reason in DropReason}
    splunk.inject(503, times=1)
    splunk.inject(429, times=1, retry_after=1)
    with shipping(splunk.base_url):
        get_logger().info("once")
        (event,) = poll(lambda: splunk.events)
    assert event.event["event"] == "once"
    first, second, third = posts(splunk)
    assert (first.status, second.status, third.status) == (503, 429, 200)
    assert third.time - second.time >= 0.9  # Retry-After: 1
    assert {reason: dropped(reason) for reason in DropReason} == before


def test_an_unavailable_splunk_costs_the_batch_and_one_warning(
    splunk: SplunkFake, printed: Local
) -> None:
    assert splunk.base_url is not None
    before = dropped(DropReason.UNAVAILABLE)
    splunk.inject(503, times=None)
    with shipping(splunk.base_url, batch_size=1):
        log = get_logger()
        log.info("first")
        log.info("second")
        poll(lambda: dropped(DropReason.UNAVAILABLE) - before == 2)
        assert len(posts(splunk)) == 2 * logsink.RETRY.max_attempts
        splunk.clear_faults()
        log.info("third")
        (event,) = poll(lambda: splunk.events)
        assert event.event["event"] == "third"
        poll(lambda: len(printed.of_the_sink()) == 2)
    # one warning for the outage, one line when it is over; neither went to Splunk
    warning, recovered = printed.of_the_sink()
    assert warning["level"] == "warning" and "HTTP 503" in warning["error"]
    assert "unavailable" in warning["event"]
    assert recovered["level"] == "info" and "again" in recovered["event"]
    assert len(splunk.events) == 1


def test_nothing_listening_is_unavailable_too(printed: Local) -> None:
    before = dropped(DropReason.UNAVAILABLE)
    with shipping(f"http://127.0.0.1:{free_port()}"):
        get_logger().error("into the void")
        poll(lambda: dropped(DropReason.UNAVAILABLE) - before == 1)
        (warning,) = poll(printed.of_the_sink)
    assert "ConnectError" in warning["error"]


def test_a_refused_token_drops_the_batch_and_warns_once(splunk: SplunkFake, printed: Local) -> None:
    assert splunk.base_url is not None
    wrong = "99999999-8888-7777-6666-555555555555"
    before = dropped(DropReason.REJECTED)
    with shipping(splunk.base_url, token=wrong, batch_size=1):
        log = get_logger()
        for n in range(3):
            log.info("refused", n=n, token=wrong)
        poll(lambda: dropped(DropReason.REJECTED) - before == 3)
    assert [r.status for r in posts(splunk)] == [403, 403, 403]  # not tried again
    (warning,) = printed.of_the_sink()
    assert warning["level"] == "warning" and warning["status"] == 403
    assert warning["error"] == "Invalid token"
    assert wrong not in json.dumps(printed())  # the token is redacted, even a wrong one
    assert not splunk.events


def test_logging_never_waits_for_a_hanging_splunk(splunk: SplunkFake) -> None:
    assert splunk.base_url is not None
    before = dropped(DropReason.QUEUE_FULL)
    splunk.inject(None, times=None, delay=1)  # every request hangs for a second
    with shipping(splunk.base_url, queue_size=20, batch_size=5, timeout=0.3) as sink:
        log = get_logger()
        slowest = 0.0
        for n in range(500):
            started = time.perf_counter()
            log.info("line", n=n)
            slowest = max(slowest, time.perf_counter() - started)
        assert slowest < 0.25
        # the thread holds at most one batch, the queue at most queue_size lines
        poll(lambda: dropped(DropReason.QUEUE_FULL) - before >= 500 - 20 - 5)
        splunk.clear_faults()
        sink.close(timeout=10)
    settle(splunk)
    assert dropped(DropReason.QUEUE_FULL) - before <= 500 - 20


def test_the_queue_holds_queue_size_lines(splunk: SplunkFake) -> None:
    assert splunk.base_url is not None
    before = dropped(DropReason.QUEUE_FULL)
    sink = sink_for(splunk.base_url, queue_size=10)
    for n in range(30):  # before start, nothing leaves the queue
        get_logger().info("line", n=n)
    asyncio.run(sink.start(no_secrets))
    try:
        poll(lambda: len(splunk.events) == 10)
        poll(lambda: dropped(DropReason.QUEUE_FULL) - before == 20)
    finally:
        sink.close()
    assert [e.event["n"] for e in splunk.events] == list(range(10))


def test_a_stop_ships_what_is_queued(splunk: SplunkFake) -> None:
    assert splunk.base_url is not None
    with shipping(splunk.base_url, flush_interval=30) as sink:
        for n in range(5):
            get_logger().info("line", n=n)
        sink.close()
        assert len(splunk.events) == 5  # shipped by the time close returns
        get_logger().info("after the stop")
    time.sleep(0.1)
    assert len(splunk.events) == 5


def test_a_stop_gives_up_at_its_deadline(splunk: SplunkFake) -> None:
    assert splunk.base_url is not None
    before = dropped(DropReason.SHUTDOWN)
    splunk.inject(None, times=None, delay=1.5)
    with shipping(splunk.base_url, flush_interval=30) as sink:
        get_logger().info("too late")
        started = time.monotonic()
        sink.close(timeout=0.3)
        assert time.monotonic() - started < 1.5
    poll(lambda: dropped(DropReason.SHUTDOWN) - before == 1)
    settle(splunk)


def test_a_sink_stopped_before_it_started_counts_its_lines(splunk: SplunkFake) -> None:
    assert splunk.base_url is not None
    before = dropped(DropReason.SHUTDOWN)
    sink = sink_for(splunk.base_url)
    for _ in range(3):
        get_logger().info("never shipped")
    sink.close()
    assert dropped(DropReason.SHUTDOWN) - before == 3
    asyncio.run(sink.start(no_secrets))  # too late: nothing starts
    assert not any(t.name == "splunk-log-sink" for t in threading.enumerate())


def test_what_json_cannot_take_is_shipped_or_counted(splunk: SplunkFake) -> None:
    assert splunk.base_url is not None
    before = dropped(DropReason.UNENCODABLE)
    with shipping(splunk.base_url):
        log = get_logger()
        log.info("odd", big=2**70, keys={1: "one"}, thread=threading.main_thread())
        log.info("no JSON for this", big=2**70, ratio=float("nan"))
        log.info("orjson writes null", ratio=float("nan"))
        poll(lambda: len(splunk.events) == 2)
        poll(lambda: dropped(DropReason.UNENCODABLE) - before == 1)
    odd, null = (e.event for e in splunk.events)
    assert odd["big"] == 2**70 and odd["keys"] == {"1": "one"}
    assert odd["thread"].startswith("<_MainThread")
    assert null["ratio"] is None


def test_the_counters_are_on_every_platforms_metrics() -> None:
    SplunkHecSink(SplunkHecConfig(url="https://hec:8088", token=TOKEN), source="x")
    text = Metrics().render().decode()
    assert "ghapplets_log_events_shipped_total " in text
    for reason in DropReason:
        assert f'ghapplets_log_events_dropped_total{{reason="{reason.value}"}}' in text


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A private CA (``ca.pem``) and a certificate it signed for 127.0.0.1 (``cert.pem``,
    ``key.pem``)."""
    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
                critical=False,
            )
        )
        if ca:
            usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
            builder = builder.add_extension(usage, critical=True)
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            ).add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    ca = build("test CA", ca_key, "test CA", ca_key, ca=True)
    cert = build("127.0.0.1", key, "test CA", ca_key, ca=False)
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


class _Hec(http.server.BaseHTTPRequestHandler):
    """HEC's success, for every POST; the bodies are kept in ``server.bodies``."""

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.server.bodies.append(self.rfile.read(length))  # type: ignore[attr-defined]
        answer = b'{"text":"Success","code":0}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def https_hec(folder: Path) -> Iterator[tuple[str, list[bytes], Path]]:
    """An HTTPS collector on 127.0.0.1 with a certificate of a private CA: its base URL, the
    bodies it received, and the CA's bundle."""
    ca, cert, key = _certificates(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hec)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.bodies = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", server.bodies, ca  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("verify", ["ca-file", False, True])
def test_verify_decides_which_certificates_are_trusted(tmp_path: Path, verify: Any) -> None:
    before = dropped(DropReason.UNAVAILABLE)
    with https_hec(tmp_path) as (url, bodies, ca):
        setting = ca.name if verify == "ca-file" else verify  # relative to the project
        with shipping(url, tmp_path, verify=setting):
            get_logger().info("over TLS")
            if verify is True:  # the private CA is not a public one
                poll(lambda: dropped(DropReason.UNAVAILABLE) - before == 1)
            else:
                poll(lambda: bodies)
    if verify is True:
        assert not bodies
    else:
        assert b'"over TLS"' in bodies[0]
