"""GitHub / GHES: the official vector, rejections, rotation, sha1, form bodies, every fixture."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from ghapplets.exceptions import MalformedPayload, VerificationError
from ghapplets.sources.common import to_inbound
from ghapplets.sources.fixtures import Fixture, iter_fixtures, load
from tests.sources._helpers import PREVIOUS, SECRET, STALE, make, request, send, signed_inbound

VECTOR_SECRET = b"It's a Secret to Everybody"
VECTOR_BODY = b"Hello, World!"
VECTOR_SIG = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
GITHUB_FIXTURES = list(iter_fixtures("github"))


def sig(secret: bytes, body: bytes, algo: str = "sha256") -> str:
    return f"{algo}=" + hmac.new(secret, body, getattr(hashlib, algo)).hexdigest()


def reason(source: Any, headers: dict[str, str], body: bytes = VECTOR_BODY) -> str:
    with pytest.raises(VerificationError) as info:
        source.verify(request(body, headers))
    return str(info.value.reason)


def test_official_vector_verifies() -> None:
    source = make("github", secrets=[VECTOR_SECRET])
    source.verify(request(VECTOR_BODY, {"X-Hub-Signature-256": VECTOR_SIG}))
    signed = source.sign("ping", VECTOR_BODY, "d-1")
    assert signed.headers["X-Hub-Signature-256"] == VECTOR_SIG
    assert signed.body == VECTOR_BODY


def test_uppercase_hex_is_accepted() -> None:
    source = make("github", secrets=[VECTOR_SECRET])
    source.verify(request(VECTOR_BODY, {"X-Hub-Signature-256": "sha256=" + VECTOR_SIG[7:].upper()}))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "missing_signature"),
        ("", "missing_signature"),
        (sig(b"wrong secret", VECTOR_BODY), "bad_signature"),
        (VECTOR_SIG[:-1] + "0", "bad_signature"),
        (VECTOR_SIG[7:], "bad_signature"),  # no "sha256=" prefix
        ("sha256=zz", "bad_signature"),
        ("sha256=", "bad_signature"),
        ("sha1=" + "0" * 40, "bad_signature"),
        ("sha256=" + "é" * 64, "bad_signature"),
    ],
)
def test_wrong_missing_and_garbled_signatures(header: str | None, expected: str) -> None:
    source = make("github", secrets=[VECTOR_SECRET])
    headers = {} if header is None else {"X-Hub-Signature-256": header}
    assert reason(source, headers) == expected


def test_rotation_accepts_current_and_previous_but_not_stale() -> None:
    source = make("github", secrets=[SECRET, PREVIOUS])
    source.verify(request(VECTOR_BODY, {"X-Hub-Signature-256": sig(SECRET, VECTOR_BODY)}))
    source.verify(request(VECTOR_BODY, {"X-Hub-Signature-256": sig(PREVIOUS, VECTOR_BODY)}))
    assert reason(source, {"X-Hub-Signature-256": sig(STALE, VECTOR_BODY)}) == "bad_signature"


def test_no_configured_secret_rejects_everything() -> None:
    source = make("github", secrets=[])
    assert reason(source, {"X-Hub-Signature-256": VECTOR_SIG}) == "no_secret"
    with pytest.raises(ValueError, match="no secret"):
        source.sign("ping", {}, "d")


def test_sha1_only_when_allowed_and_no_sha256() -> None:
    strict = make("github", secrets=[SECRET])
    lenient = make("github", secrets=[SECRET], allow_sha1=True)
    good_sha1 = {"X-Hub-Signature": sig(SECRET, VECTOR_BODY, "sha1")}
    assert reason(strict, good_sha1) == "missing_signature"
    lenient.verify(request(VECTOR_BODY, good_sha1))
    assert reason(lenient, {"X-Hub-Signature": sig(STALE, VECTOR_BODY, "sha1")}) == "bad_signature"
    # a sha256 header, when present, is what counts, even with a valid sha1 beside it
    both = {**good_sha1, "X-Hub-Signature-256": sig(STALE, VECTOR_BODY)}
    assert reason(lenient, both) == "bad_signature"


def test_form_encoded_body_is_verified_over_the_raw_bytes() -> None:
    source = make("github", secrets=[SECRET])
    fx = load("github", "issues.opened")
    raw = urlencode({"payload": orjson.dumps(fx.payload).decode()}).encode()
    headers = {**fx.headers, "Content-Type": "application/x-www-form-urlencoded"}
    signed = source.sign(fx.event, raw, fx.delivery_id, headers)
    event = source.ingest(request(signed.body, signed.headers))
    assert event.type == "com.github.issues.opened"
    assert event.data == fx.payload
    # a signature over the JSON inside the form is not a signature over the request
    wrong = {**signed.headers, "X-Hub-Signature-256": sig(SECRET, orjson.dumps(fx.payload))}
    with pytest.raises(VerificationError):
        source.ingest(request(signed.body, wrong))


def test_ping_normalises() -> None:
    source = make("github")
    event, _ = send(source, load("github", "ping"))
    assert event.type == "com.github.ping"
    assert event.subject == "octo-org/hello-world"
    assert event.extensions["githubevent"] == "ping"


def test_sign_accepts_a_fixture_event_name() -> None:
    source = make("github")
    signed = source.sign("pull_request.opened", {"action": "opened"}, "d-2")
    assert signed.headers["X-GitHub-Event"] == "pull_request"
    assert signed.headers["X-GitHub-Delivery"] == "d-2"


# -- every fixture, github.com and GHES ------------------------------------------------------
def documented_type(fx: Fixture) -> str:
    action = fx.payload.get("action")
    suffix = f".{action}" if isinstance(action, str) else ""
    return f"com.github.{fx.headers['X-GitHub-Event']}{suffix}"


def documented_subject(payload: dict[str, Any]) -> str | None:
    repo = payload.get("repository")
    if isinstance(repo, dict):
        for key in ("pull_request", "issue", "discussion"):
            if isinstance(payload.get(key), dict):
                return f"{repo['full_name']}#{payload[key]['number']}"
        return str(repo["full_name"])
    if isinstance(payload.get("organization"), dict):
        return str(payload["organization"]["login"])
    if isinstance(payload.get("installation"), dict):
        return str(payload["installation"]["id"])
    return None


@pytest.mark.parametrize("fx", GITHUB_FIXTURES, ids=lambda f: f"{f.event}-{f.variant or 'dotcom'}")
def test_every_fixture_round_trips(fx: Fixture) -> None:
    source = make("github")
    event, _ = send(source, fx)
    assert fx.expected_type == documented_type(fx)
    assert event.type == fx.expected_type
    assert event.id == fx.delivery_id and re.fullmatch(r"[0-9a-f-]{36}", event.id)
    assert event.subject == documented_subject(fx.payload)
    assert event.source == "/github"
    assert event.data == fx.payload
    expected_ext = {"githubevent": fx.vendor_event, "githubhookid": fx.headers["X-GitHub-Hook-ID"]}
    if fx.variant == "ghes":
        expected_ext |= {"githubhost": "ghe.example.com", "githubversion": "3.14.0"}
    else:
        expected_ext["githubhost"] = "github.com"
    assert dict(event.extensions) == expected_ext


@pytest.mark.parametrize("fx", GITHUB_FIXTURES, ids=lambda f: f"{f.event}-{f.variant or 'dotcom'}")
def test_every_fixture_with_a_wrong_secret_is_rejected(fx: Fixture) -> None:
    attacker = make("github", secrets=[STALE])
    with pytest.raises(VerificationError) as info:
        make("github").ingest(signed_inbound(attacker, fx))
    assert info.value.reason == "bad_signature"


def test_subject_rule_examples() -> None:
    source = make("github")
    cases = {
        "issues.opened": "octo-org/hello-world#1347",
        "issue_comment": "octo-org/hello-world#1347",
        "pull_request.closed": "octo-org/hello-world#1348",
        "pull_request_review": "octo-org/hello-world#1348",
        "discussion_comment": "octo-org/hello-world#90",
        "push": "octo-org/hello-world",
        "membership": "octo-org",
        "installation": "4242",
        "sponsorship": None,
        "security_advisory": None,
    }
    for name, subject in cases.items():
        assert send(source, load("github", name))[0].subject == subject, name


# -- odd but verified input ----------------------------------------------------------------------
def ingest_payload(payload: Any, headers: dict[str, str] | None = None) -> Any:
    source = make("github")
    base = {"X-GitHub-Event": "issues", "X-GitHub-Delivery": "d-3"}
    signed = source.sign("issues", payload, "d-3", {**base, **(headers or {})})
    return source.ingest(request(signed.body, signed.headers))


@pytest.mark.parametrize("payload", [[], "text", 3, None])
def test_non_object_payload_is_malformed(payload: Any) -> None:
    with pytest.raises(MalformedPayload):
        ingest_payload(payload)


def test_odd_fields_degrade_gracefully() -> None:
    event = ingest_payload({"action": 7, "repository": "nope", "issue": {"number": "12"}})
    assert event.type == "com.github.issues"
    assert event.subject is None
    event = ingest_payload({"repository": {"full_name": "a/b"}, "issue": {"number": True}})
    assert event.subject == "a/b"


def test_missing_delivery_or_event_header_is_malformed() -> None:
    source = make("github")
    signed = source.sign("issues", {"action": "opened"}, "d-4")
    for drop in ("x-github-delivery", "x-github-event"):
        headers = {k: v for k, v in signed.headers.items() if k.lower() != drop}
        with pytest.raises(MalformedPayload):
            source.ingest(request(signed.body, headers))


def test_not_json_is_malformed_after_verification() -> None:
    source = make("github", secrets=[VECTOR_SECRET])
    headers = {
        "X-Hub-Signature-256": VECTOR_SIG,
        "X-GitHub-Event": "ping",
        "X-GitHub-Delivery": "x",
    }
    with pytest.raises(MalformedPayload):
        source.ingest(request(VECTOR_BODY, headers))


def test_a_long_event_name_is_cut_to_100_characters_per_type_segment() -> None:
    """A sender controls the event header: each CloudEvent ``type`` segment is bounded, so a
    stranger cannot make types (and the subscriptions and metrics keyed on them) grow."""
    source = make("github")
    body = b'{"action": "' + b"b" * 150 + b'", "repository": {"full_name": "o/r"}}'
    signed = source.sign("x" * 150, orjson.loads(body), "d-long")
    event = source.ingest(to_inbound(signed, "github"))
    assert event.type == "com.github." + "x" * 100 + "." + "b" * 100
