"""``Source.sign`` builds the request the vendor sends, header for header.

``ghapplets send`` puts these requests on the wire and the test kit hands them to applet
authors, so each kind's header names (as the vendor spells them), content type, user agent,
signature and delivery id header are pinned exactly, and signing without a secret names the
source.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import pytest

from ghapplets.sources.base import SignedRequest, hmac_digest
from tests.sources._helpers import SECRET, make

PAYLOAD = {"hello": "world", "n": 1}
BODY = b'{"hello":"world","n":1}'


def hexsig(algorithm: str, body: bytes = BODY, secret: bytes = SECRET) -> str:
    return hmac.new(secret, body, algorithm).hexdigest()


def b64sig(algorithm: str, body: bytes = BODY, secret: bytes = SECRET) -> str:
    return base64.b64encode(hmac.new(secret, body, algorithm).digest()).decode("ascii")


def basic(user: str, secret: bytes = SECRET) -> str:
    return "Basic " + base64.b64encode(user.encode() + b":" + secret).decode("ascii")


EXPECTED: list[tuple[str, dict[str, Any], str, Any, str, SignedRequest]] = [
    (
        "github",
        {},
        "issues.opened",
        PAYLOAD,
        "d-1",
        SignedRequest(
            headers={
                "Content-Type": "application/json",
                "User-Agent": "GitHub-Hookshot/7a1b2c3",
                "X-GitHub-Event": "issues",
                "X-GitHub-Delivery": "d-1",
                "X-Hub-Signature": "sha1=" + hexsig("sha1"),
                "X-Hub-Signature-256": "sha256=" + hexsig("sha256"),
            },
            body=BODY,
        ),
    ),
    (
        "gitlab",
        {},
        "merge_request.open",
        PAYLOAD,
        "uuid-1",
        SignedRequest(
            headers={
                "Content-Type": "application/json",
                "User-Agent": "GitLab/17.5.0",
                "X-Gitlab-Event": "Merge Request Hook",
                "X-Gitlab-Token": SECRET.decode(),
                "X-Gitlab-Event-UUID": "uuid-1",
            },
            body=BODY,
        ),
    ),
    (
        "gitlab",
        {},
        "System Hook",
        PAYLOAD,
        "",
        SignedRequest(
            headers={
                "Content-Type": "application/json",
                "User-Agent": "GitLab/17.5.0",
                "X-Gitlab-Event": "System Hook",
                "X-Gitlab-Token": SECRET.decode(),
            },
            body=BODY,
        ),
    ),
    (
        "bitbucket",
        {},
        "repo:push",
        PAYLOAD,
        "cloud-1",
        SignedRequest(
            headers={
                "Content-Type": "application/json",
                "User-Agent": "Bitbucket-Webhooks/2.0",
                "X-Event-Key": "repo:push",
                "X-Hub-Signature": "sha256=" + hexsig("sha256"),
                "X-Request-UUID": "cloud-1",
            },
            body=BODY,
        ),
    ),
    (
        "bitbucket",
        {},
        "pr:opened",
        {"eventKey": "pr:opened"},
        "dc-1",
        SignedRequest(
            headers={
                "Content-Type": "application/json",
                "User-Agent": "Bitbucket-Webhooks/2.0",
                "X-Event-Key": "pr:opened",
                "X-Hub-Signature": "sha256=" + hexsig("sha256", b'{"eventKey":"pr:opened"}'),
                "X-Request-Id": "dc-1",
            },
            body=b'{"eventKey":"pr:opened"}',
        ),
    ),
    (
        "jira",
        {},
        "jira:issue_updated",
        PAYLOAD,
        "hook-1",
        SignedRequest(
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "Atlassian Webhook HTTP Client",
                "X-Hub-Signature": "sha256=" + hexsig("sha256"),
                "X-Atlassian-Webhook-Identifier": "hook-1",
            },
            body=BODY,
        ),
    ),
    (
        "splunk",
        {},
        "alert",
        PAYLOAD,
        "ignored",
        SignedRequest(
            headers={"Content-Type": "application/json", "User-Agent": "Splunk/9.3.1"},
            body=BODY,
            query={"token": SECRET.decode()},
        ),
    ),
    (
        "splunk",
        {"token_param": "key"},
        "alert",
        "text body",
        "",
        SignedRequest(
            headers={"Content-Type": "application/json", "User-Agent": "Splunk/9.3.1"},
            body=b"text body",
            query={"key": SECRET.decode()},
        ),
    ),
    (
        "servicenow",
        {},
        "incident.insert",
        PAYLOAD,
        "sn-1",
        SignedRequest(
            headers={
                "Content-Type": "application/json",
                "User-Agent": "ServiceNow/1.0",
                "Authorization": "Bearer " + SECRET.decode(),
                "X-Request-Id": "sn-1",
            },
            body=BODY,
        ),
    ),
    (
        "servicenow",
        {"auth": "hmac", "encoding": "base64"},
        "incident.insert",
        PAYLOAD,
        "sn-1",
        SignedRequest(
            headers={
                "Content-Type": "application/json",
                "User-Agent": "ServiceNow/1.0",
                "X-ServiceNow-Signature": b64sig("sha256"),
                "X-Request-Id": "sn-1",
            },
            body=BODY,
        ),
    ),
    (
        "servicenow",
        {"auth": "basic", "username": "snow"},
        "incident.insert",
        PAYLOAD,
        "",
        SignedRequest(
            headers={
                "Content-Type": "application/json",
                "User-Agent": "ServiceNow/1.0",
                "Authorization": basic("snow"),
            },
            body=BODY,
        ),
    ),
    (
        "generic",
        {},
        "thing.happened",
        PAYLOAD,
        "g-1",
        SignedRequest(
            headers={
                "Content-Type": "application/json",
                "User-Agent": "ghapplets-send/1",
                "X-Signature": "sha256=" + hexsig("sha256"),
                "X-Request-Id": "g-1",
            },
            body=BODY,
        ),
    ),
    (
        "generic",
        {
            "algorithm": "sha512",
            "encoding": "base64",
            "header": "X-Sig",
            "type_header": "X-Type",
            "id_header": "X-Id",
        },
        "thing.happened",
        PAYLOAD,
        "g-2",
        SignedRequest(
            headers={
                "Content-Type": "application/json",
                "User-Agent": "ghapplets-send/1",
                "X-Sig": "sha512=" + b64sig("sha512"),
                "X-Type": "thing.happened",
                "X-Id": "g-2",
            },
            body=BODY,
        ),
    ),
    (
        "generic",
        {"mode": "bearer", "type_header": "X-Type"},
        "",
        PAYLOAD,
        "",
        SignedRequest(
            headers={
                "Content-Type": "application/json",
                "User-Agent": "ghapplets-send/1",
                "Authorization": "Bearer " + SECRET.decode(),
            },
            body=BODY,
        ),
    ),
    (
        "generic",
        {"mode": "basic", "username": "bot"},
        "x",
        PAYLOAD,
        "",
        SignedRequest(
            headers={
                "Content-Type": "application/json",
                "User-Agent": "ghapplets-send/1",
                "Authorization": basic("bot"),
            },
            body=BODY,
        ),
    ),
    (
        "generic",
        {"mode": "none"},
        "x",
        PAYLOAD,
        "",
        SignedRequest(
            headers={"Content-Type": "application/json", "User-Agent": "ghapplets-send/1"},
            body=BODY,
        ),
    ),
]


@pytest.mark.parametrize(
    ("kind", "settings", "event", "payload", "delivery_id", "expected"),
    EXPECTED,
    ids=[f"{row[0]}-{i}" for i, row in enumerate(EXPECTED)],
)
def test_sign_builds_the_vendor_request_exactly(
    kind: str,
    settings: dict[str, Any],
    event: str,
    payload: Any,
    delivery_id: str,
    expected: SignedRequest,
) -> None:
    signed = make(kind, **settings).sign(event, payload, delivery_id)
    assert signed.body == expected.body
    assert signed.headers == expected.headers
    assert list(signed.headers) == list(expected.headers)  # the names as the vendor spells them
    assert signed.query == expected.query


@pytest.mark.parametrize(
    ("kind", "settings"),
    [
        ("github", {}),
        ("gitlab", {}),
        ("bitbucket", {}),
        ("jira", {}),
        ("splunk", {}),
        ("servicenow", {}),
        ("generic", {}),
        ("generic", {"mode": "bearer"}),
    ],
)
def test_sign_without_a_secret_names_the_source(kind: str, settings: dict[str, Any]) -> None:
    source = make(kind, secrets=(), name="hooks-a", **settings)
    with pytest.raises(ValueError) as info:
        source.sign("push", PAYLOAD, "d-1")
    assert str(info.value) == "source 'hooks-a' has no secret to sign with"


@pytest.mark.parametrize(
    ("kind", "name", "value"),
    [
        ("github", "x-github-event", "ping"),
        ("gitlab", "x-gitlab-token", "other"),
        ("bitbucket", "x-event-key", "repo:fork"),
        ("jira", "CONTENT-TYPE", "application/json"),
        ("splunk", "user-agent", "Splunk/10"),
        ("servicenow", "x-request-id", "sn-9"),
        ("generic", "X-SIGNATURE", "sha256=00"),
    ],
)
def test_sign_overrides_replace_any_case_variant(kind: str, name: str, value: str) -> None:
    signed = make(kind).sign("push", PAYLOAD, "d-1", {name: value})
    assert [v for k, v in signed.headers.items() if k.lower() == name.lower()] == [value]
    assert list(signed.headers)[-1] == name


def test_sign_encodes_each_payload_form() -> None:
    source = make("generic", mode="none")
    assert source.sign("x", b"\x00raw", "").body == b"\x00raw"
    assert source.sign("x", "caf\u00e9", "").body == "caf\u00e9".encode()
    assert source.sign("x", [1, {"a": None}], "").body == b'[1,{"a":null}]'


def test_hmac_signature_header_matches_hashlib() -> None:
    """The signature is over the exact body bytes (hashlib as the independent reference)."""
    signed = make("github").sign("push", PAYLOAD, "d")
    digest = hmac.new(SECRET, signed.body, hashlib.sha256).hexdigest()
    assert signed.headers["X-Hub-Signature-256"] == f"sha256={digest}"


def test_hmac_digest_defaults_to_sha256() -> None:
    assert hmac_digest(SECRET, BODY) == hmac.new(SECRET, BODY, hashlib.sha256).digest()
