"""What a refused sender reads: the exact reason and message of every verification failure.

The gateway answers a refused webhook with ``{"error": reason, "message": str(exc)}`` (401, or
403 for ``ip_not_allowed``) and a malformed one with 400 and the ``MalformedPayload`` text, so
both are pinned per source kind, at both stages: ``verify_headers`` (before the body is read)
and ``ingest`` (the whole request).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import pytest

from ghapplets.events import InboundRequest
from ghapplets.exceptions import MalformedPayload, RejectReason, VerificationError
from tests.sources._helpers import SECRET, make, request

BODY = b'{"object_kind":"push","webhookEvent":"x","eventKey":"repo:push"}'
GOOD256 = "sha256=" + hmac.new(SECRET, BODY, hashlib.sha256).hexdigest()
GOOD1 = "sha1=" + hmac.new(SECRET, BODY, hashlib.sha1).hexdigest()
WRONG256 = "sha256=" + hmac.new(b"wrong", BODY, hashlib.sha256).hexdigest()
WRONG1 = "sha1=" + hmac.new(b"wrong", BODY, hashlib.sha1).hexdigest()
GOOD_B64 = base64.b64encode(hmac.new(SECRET, BODY, hashlib.sha256).digest()).decode()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


NO_HUB = "missing X-Hub-Signature header"
HUB_MISMATCH = "X-Hub-Signature does not match any configured secret"
MISSING_SIG = RejectReason.MISSING_SIGNATURE
BAD_SIG = RejectReason.BAD_SIGNATURE
BAD_CREDS = RejectReason.BAD_CREDENTIALS

# (kind, settings, headers, query, client_ip, reason, message, checked before the body)
CASES: list[tuple[str, dict[str, Any], dict[str, str], dict[str, str], str | None, str, str, bool]]
CASES = [
    ("github", {}, {}, {}, None, MISSING_SIG, "missing X-Hub-Signature-256 header", True),
    (
        "github",
        {},
        {"X-Hub-Signature-256": " "},
        {},
        None,
        MISSING_SIG,
        "missing X-Hub-Signature-256 header",
        True,
    ),
    (
        "github",
        {},
        {"X-Hub-Signature": GOOD1},
        {},
        None,
        MISSING_SIG,
        "only a sha1 signature was sent and allow_sha1 is off",
        True,
    ),
    (
        "github",
        {"allow_sha1": True},
        {"X-Hub-Signature": ""},
        {},
        None,
        MISSING_SIG,
        NO_HUB,
        True,
    ),
    (
        "github",
        {"allow_sha1": True},
        {},
        {},
        None,
        MISSING_SIG,
        "missing X-Hub-Signature-256 header",
        True,
    ),
    (
        "github",
        {"allow_sha1": True},
        {"X-Hub-Signature": WRONG1},
        {},
        None,
        BAD_SIG,
        HUB_MISMATCH,
        False,
    ),
    (
        "github",
        {"allow_sha1": True},
        {"X-Hub-Signature": GOOD256},
        {},
        None,
        BAD_SIG,
        "X-Hub-Signature does not start with 'sha1='",
        False,
    ),
    (
        "github",
        {},
        {"X-Hub-Signature-256": WRONG256},
        {},
        None,
        BAD_SIG,
        "X-Hub-Signature-256 does not match any configured secret",
        False,
    ),
    (
        "github",
        {},
        {"X-Hub-Signature-256": GOOD1},
        {},
        None,
        BAD_SIG,
        "X-Hub-Signature-256 does not start with 'sha256='",
        False,
    ),
    (
        "gitlab",
        {},
        {},
        {},
        None,
        RejectReason.MISSING_TOKEN,
        "missing token (X-Gitlab-Token)",
        True,
    ),
    (
        "gitlab",
        {},
        {"X-Gitlab-Token": "nope"},
        {},
        None,
        RejectReason.BAD_TOKEN,
        "token (X-Gitlab-Token) does not match any secret",
        True,
    ),
    ("bitbucket", {}, {}, {}, None, MISSING_SIG, NO_HUB, True),
    ("bitbucket", {}, {"X-Hub-Signature": WRONG256}, {}, None, BAD_SIG, HUB_MISMATCH, False),
    ("jira", {}, {}, {}, None, MISSING_SIG, NO_HUB, True),
    ("jira", {}, {"X-Hub-Signature": WRONG256}, {}, None, BAD_SIG, HUB_MISMATCH, False),
    (
        "splunk",
        {},
        {},
        {},
        None,
        RejectReason.MISSING_TOKEN,
        "missing token (query parameter 'token')",
        True,
    ),
    (
        "splunk",
        {"token_param": "key"},
        {},
        {"key": "nope"},
        None,
        RejectReason.BAD_TOKEN,
        "token (query parameter 'key') does not match any secret",
        True,
    ),
    (
        "splunk",
        {"allowed_ips": ["192.0.2.0/24"]},
        {},
        {"token": SECRET.decode()},
        "198.51.100.7",
        RejectReason.IP_NOT_ALLOWED,
        "client address '198.51.100.7' is not in allowed_ips",
        True,
    ),
    ("generic", {}, {}, {}, None, MISSING_SIG, "missing X-Signature header", True),
    (
        "generic",
        {},
        {"X-Signature": WRONG256},
        {},
        None,
        BAD_SIG,
        "X-Signature does not match any configured secret",
        False,
    ),
    (
        "generic",
        {"encoding": "base64", "header": "X-Sig", "prefix": ""},
        {"X-Sig": "not base64!"},
        {},
        None,
        BAD_SIG,
        "X-Sig is not valid base64",
        False,
    ),
    (
        "generic",
        {"encoding": "base64", "header": "X-Sig", "prefix": ""},
        {"X-Sig": GOOD_B64 + "*"},  # a valid signature with a stray character is still refused
        {},
        None,
        BAD_SIG,
        "X-Sig is not valid base64",
        False,
    ),
    (
        "generic",
        {"mode": "bearer"},
        {},
        {},
        None,
        RejectReason.MISSING_CREDENTIALS,
        "missing Authorization header",
        True,
    ),
    (
        "generic",
        {"mode": "bearer"},
        {"Authorization": "Basic " + SECRET.decode()},
        {},
        None,
        BAD_CREDS,
        "Authorization is not a bearer credential",
        True,
    ),
    (
        "generic",
        {"mode": "bearer"},
        {"Authorization": "Bearer"},
        {},
        None,
        BAD_CREDS,
        "Authorization is not a bearer credential",
        True,
    ),
    (
        "generic",
        {"mode": "bearer"},
        {"Authorization": "Bearer nope"},
        {},
        None,
        BAD_CREDS,
        "credentials do not match any secret",
        True,
    ),
    (
        "generic",
        {"mode": "basic", "username": "bot"},
        {"Authorization": "Basic !!!!"},
        {},
        None,
        BAD_CREDS,
        "basic credential is not base64",
        True,
    ),
    (
        "generic",
        {"mode": "basic", "username": "bot"},
        {"Authorization": "Basic " + b64(b"bot:" + SECRET) + "*"},
        {},
        None,
        BAD_CREDS,
        "basic credential is not base64",
        True,
    ),
    (
        "servicenow",
        {"auth": "hmac"},
        {},
        {},
        None,
        MISSING_SIG,
        "missing X-ServiceNow-Signature header",
        True,
    ),
    (
        "servicenow",
        {"auth": "hmac", "header": "X-Snow-Sig"},
        {"X-Snow-Sig": "00"},
        {},
        None,
        BAD_SIG,
        "X-Snow-Sig does not match any configured secret",
        False,
    ),
    (
        "servicenow",
        {},
        {"Authorization": "Bearer nope"},
        {},
        None,
        BAD_CREDS,
        "credentials do not match any secret",
        True,
    ),
    (
        "servicenow",
        {"auth": "basic", "username": "snow"},
        {"Authorization": "Basic " + b64(b"other:" + SECRET)},
        {},
        None,
        BAD_CREDS,
        "credentials do not match any secret",
        True,
    ),
]


def _inbound(
    headers: dict[str, str], query: dict[str, str], ip: str | None, body: bytes
) -> InboundRequest:
    return request(body, headers, query=query, client_ip=ip)


@pytest.mark.parametrize(
    ("kind", "settings", "headers", "query", "client_ip", "reason", "message", "early"),
    CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)],
)
def test_refusal_reason_and_message(
    kind: str,
    settings: dict[str, Any],
    headers: dict[str, str],
    query: dict[str, str],
    client_ip: str | None,
    reason: str,
    message: str,
    early: bool,
) -> None:
    source = make(kind, **settings)
    with pytest.raises(VerificationError) as whole:
        source.ingest(_inbound(headers, query, client_ip, BODY))
    assert (whole.value.reason, str(whole.value)) == (reason, message)
    assert whole.value.status == (403 if reason == RejectReason.IP_NOT_ALLOWED else 401)
    head = _inbound(headers, query, client_ip, b"")
    if early:
        with pytest.raises(VerificationError) as before:
            source.verify_headers(head)
        assert (before.value.reason, str(before.value)) == (reason, message)
    else:
        source.verify_headers(head)  # only the body can tell: accepted until it arrives


@pytest.mark.parametrize(
    ("kind", "settings"),
    [
        ("github", {}),
        ("gitlab", {}),
        ("bitbucket", {}),
        ("jira", {}),
        ("splunk", {}),
        ("generic", {}),
        ("generic", {"mode": "bearer"}),
        ("servicenow", {}),
        ("servicenow", {"auth": "hmac"}),
    ],
)
def test_a_source_without_a_secret_refuses_everything(kind: str, settings: dict[str, Any]) -> None:
    source = make(kind, secrets=(), **settings)
    signed = make(kind, **settings).sign("push", {"object_kind": "push"}, "d-1")
    inbound = request(signed.body, signed.headers, query=signed.query)
    for check in (source.verify_headers, source.ingest):
        with pytest.raises(VerificationError) as info:
            check(inbound)
        assert (info.value.reason, str(info.value)) == (
            RejectReason.NO_SECRET,
            "this source has no secret configured",
        )


def test_github_picks_the_signature_to_check() -> None:
    """sha256 wins whenever it is sent; sha1 only when allowed and alone."""
    sha1_only = make("github", allow_sha1=True)
    sha1_only.verify(request(BODY, {"X-Hub-Signature": GOOD1}))
    sha1_only.verify_headers(request(b"", {"X-Hub-Signature": GOOD1}))
    # both sent: the sha256 one decides, even when the sha1 one is right
    with pytest.raises(VerificationError) as info:
        sha1_only.verify(request(BODY, {"X-Hub-Signature": GOOD1, "X-Hub-Signature-256": WRONG256}))
    assert str(info.value) == "X-Hub-Signature-256 does not match any configured secret"
    sha1_only.verify(request(BODY, {"X-Hub-Signature": WRONG1, "X-Hub-Signature-256": GOOD256}))


@pytest.mark.parametrize(
    ("kind", "headers", "payload", "message"),
    [
        ("github", {"X-GitHub-Delivery": "d"}, b"{}", "missing x-github-event header"),
        ("github", {"X-GitHub-Event": "push"}, b"{}", "missing x-github-delivery header"),
        (
            "github",
            {"X-GitHub-Event": "\x01 \x01", "X-GitHub-Delivery": "d"},
            b"{}",
            "X-GitHub-Event is not a usable event name",
        ),
        ("github", {"X-GitHub-Event": "push"}, b"[1]", "payload must be a JSON object, got list"),
        ("gitlab", {}, b"{}", "GitLab payload has no 'object_kind' or 'event_name'"),
        ("gitlab", {}, b"7", "payload must be a JSON object, got int"),
        ("bitbucket", {}, b"{}", "missing X-Event-Key header and payload 'eventKey'"),
        ("jira", {}, b'{"webhookEvent": 3}', "Jira payload has no string 'webhookEvent'"),
        (
            "github",
            {"Content-Type": "application/x-www-form-urlencoded"},
            b"other=1",
            "form-encoded body has no 'payload' field",
        ),
    ],
)
def test_malformed_payload_messages(
    kind: str, headers: dict[str, str], payload: bytes, message: str
) -> None:
    source = make(kind)
    inbound = request(payload, headers)
    with pytest.raises(MalformedPayload) as info:
        source.normalise(inbound, source.parse(inbound))
    assert str(info.value) == message


def test_form_encoded_body_with_stray_bytes_still_parses() -> None:
    """Bytes that are not UTF-8 outside the ``payload`` field do not stop the parse."""
    source = make("github")
    inbound = request(
        b"payload=%7B%22a%22%3A1%7D&junk=\xff\xfe",
        {"Content-Type": "Application/X-WWW-Form-Urlencoded; charset=utf-8"},
    )
    assert source.parse(inbound) == {"a": 1}
