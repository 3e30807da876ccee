"""What a source says about its credentials and replays, its checks before the body, and the
JSON depth limit (sans-I/O)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ghapplets.exceptions import ClientNotAllowed, MalformedPayload, VerificationError
from ghapplets.sources.base import CREDENTIAL_HEADERS, MAX_JSON_DEPTH, Source
from ghapplets.sources.common import to_inbound
from ghapplets.sources.fixtures import iter_fixtures
from tests.sources._helpers import SECRET, make, request

# kind, settings, the headers and query parameters that carry its credential, body signature
CASES: list[tuple[str, dict[str, Any], set[str], set[str], bool]] = [
    ("github", {}, {"x-hub-signature", "x-hub-signature-256"}, set(), True),
    ("jira", {}, {"x-hub-signature"}, set(), True),
    ("bitbucket", {}, {"x-hub-signature"}, set(), True),
    ("gitlab", {}, {"x-gitlab-token"}, set(), False),
    ("servicenow", {}, {"authorization"}, set(), False),
    ("servicenow", {"auth": "hmac", "header": "X-SN-Sig"}, {"x-sn-sig"}, set(), True),
    ("servicenow", {"auth": "basic", "username": "sn"}, {"authorization"}, set(), False),
    ("splunk", {"token_param": "key"}, set(), {"key"}, False),
    ("generic", {}, {"x-signature"}, set(), True),
    ("generic", {"header": "X-My-Sig"}, {"x-my-sig"}, set(), True),
    ("generic", {"mode": "bearer"}, {"authorization"}, set(), False),
    ("generic", {"mode": "basic", "username": "u"}, {"authorization"}, set(), False),
    ("generic", {"mode": "none"}, set(), set(), False),
]
IDS = [f"{kind}-{'-'.join(f'{k}={v}' for k, v in cfg.items())}" for kind, cfg, *_ in CASES]


def signed(source: Source, event: str = "e", payload: Any = None) -> Any:
    kind = source.kind if source.kind != "generic" else "github"
    fx = next(iter(iter_fixtures(kind)))
    req = source.sign(event or fx.event, fx.payload if payload is None else payload, "d-1")
    return to_inbound(req, source.name, client_ip="192.0.2.1")


@pytest.mark.parametrize(("kind", "cfg", "headers", "params", "body_signed"), CASES, ids=IDS)
def test_each_source_names_its_credentials(
    kind: str, cfg: dict[str, Any], headers: set[str], params: set[str], body_signed: bool
) -> None:
    source = make(kind, **cfg)
    assert source.credential_headers == headers
    assert source.credential_params == params
    assert source.body_signature is body_signed
    # what the source sends is covered: no header or parameter it signs with escapes the lists
    req = signed(source)
    secret_values = {SECRET.decode()}
    for name, value in req.headers.items():
        if name in source.credential_headers or name in CREDENTIAL_HEADERS:
            continue
        assert not any(s in value for s in secret_values), name
        assert "sha256=" not in value and not value.lower().startswith(("bearer", "basic")), name
    for name in req.query:
        assert name in source.credential_params


@pytest.mark.parametrize(("kind", "cfg", "headers", "params", "body_signed"), CASES, ids=IDS)
def test_replay_keys_only_for_body_signatures(
    kind: str, cfg: dict[str, Any], headers: set[str], params: set[str], body_signed: bool
) -> None:
    source = make(kind, name="src", **cfg)
    req = signed(source)
    key = source.replay_key(req)
    if not body_signed:
        assert key is None
        return
    assert key is not None and key.startswith("src:body:") and len(key) == len("src:body:") + 64
    # the key depends on the body alone: other headers, the same key
    other = to_inbound(source.sign("other-event", orjson.loads(req.body), "d-2"), "src")
    assert source.replay_key(other) == key
    changed = request(req.body + b" ", req.headers, source="src")
    assert source.replay_key(changed) != key
    # and the setting turns it off
    assert make(kind, name="src", replay_protection=False, **cfg).replay_key(req) is None


@pytest.mark.parametrize(("kind", "cfg", "headers", "params", "body_signed"), CASES, ids=IDS)
def test_checks_before_the_body_pass_a_good_request_without_its_body(
    kind: str, cfg: dict[str, Any], headers: set[str], params: set[str], body_signed: bool
) -> None:
    source = make(kind, **cfg)
    req = signed(source)
    head = request(b"", req.headers, query=req.query, client_ip=req.client_ip)
    source.verify_headers(head)  # no body: still fine


@pytest.mark.parametrize(
    ("kind", "cfg", "spoil", "reason"),
    [
        ("gitlab", {}, {"x-gitlab-token": "wrong"}, "bad_token"),
        ("gitlab", {}, {"x-gitlab-token": None}, "missing_token"),
        ("servicenow", {}, {"authorization": "Bearer wrong"}, "bad_credentials"),
        ("servicenow", {"auth": "basic", "username": "sn"}, {"authorization": None}, None),
        ("servicenow", {"auth": "hmac"}, {"x-servicenow-signature": None}, "missing_signature"),
        ("generic", {"mode": "bearer"}, {"authorization": "Bearer nope"}, "bad_credentials"),
        ("generic", {"mode": "basic", "username": "u"}, {"authorization": "Basic Og=="}, None),
        ("generic", {}, {"x-signature": None}, "missing_signature"),
        ("github", {}, {"x-hub-signature-256": None, "x-hub-signature": None}, None),
        ("github", {}, {"x-hub-signature-256": None}, "missing_signature"),  # sha1 only, not on
        ("jira", {}, {"x-hub-signature": ""}, "missing_signature"),
        ("bitbucket", {}, {"x-hub-signature": None}, "missing_signature"),
        ("splunk", {}, {"?token": "wrong"}, "bad_token"),
        ("splunk", {}, {"?token": None}, "missing_token"),
    ],
)
def test_checks_before_the_body_refuse_a_wrong_credential(
    kind: str, cfg: dict[str, Any], spoil: dict[str, str | None], reason: str | None
) -> None:
    source = make(kind, **cfg)
    req = signed(source)
    headers, query = dict(req.headers), dict(req.query)
    for name, value in spoil.items():
        target, key = (query, name[1:]) if name.startswith("?") else (headers, name)
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    head = request(b"", headers, query=query, client_ip=req.client_ip)
    with pytest.raises(VerificationError) as info:
        source.verify_headers(head)
    assert info.value.status == 401
    if reason is not None:
        assert info.value.reason == reason


def test_a_source_without_secret_is_refused_before_the_body() -> None:
    for kind in ("github", "jira", "bitbucket", "gitlab", "splunk"):
        source = make(kind, secrets=())
        with pytest.raises(VerificationError) as info:
            source.verify_headers(
                request(b"", {"x-hub-signature-256": "x", "x-hub-signature": "x"})
            )
        assert info.value.reason in ("no_secret", "missing_token"), kind


def test_splunk_outside_the_allow_list_is_403_before_the_body() -> None:
    source = make("splunk", allowed_ips=["10.0.0.0/8"])
    req = signed(source)
    inside = request(b"", req.headers, query=req.query, client_ip="10.1.2.3")
    source.verify_headers(inside)
    outside = request(b"", req.headers, query=req.query, client_ip="192.0.2.1")
    with pytest.raises(ClientNotAllowed) as info:
        source.verify_headers(outside)
    assert info.value.status == 403 and info.value.reason == "ip_not_allowed"
    assert isinstance(info.value, VerificationError)  # still "not proven to be the vendor"


@pytest.mark.parametrize("kind", ["github", "jira", "bitbucket", "gitlab", "servicenow", "splunk"])
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH, 254, 255, 600, 1024, 1025, 5000])
@pytest.mark.parametrize("form", ["list", "object"])
def test_json_nested_too_deep_is_malformed(kind: str, depth: int, form: str) -> None:
    source = make(kind)
    if form == "list":
        inner = b"[" * depth + b"]" * depth
    else:
        inner = b'{"a":' * depth + b"1" + b"}" * depth
    body = b'{"sid":"s","object_kind":"push","webhookEvent":"x","result":' + inner + b"}"
    req = to_inbound(source.sign("push", body, "d-1"), source.name, client_ip="192.0.2.1")
    with pytest.raises(MalformedPayload, match=r"nested deeper|depth limit"):
        source.ingest(req)


def test_json_just_deep_enough_is_accepted() -> None:
    source = make("generic", mode="none")
    body = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    event = source.ingest(request(body, {"content-type": "application/json"}))
    assert orjson.dumps(event.data) == body
    assert orjson.loads(event.to_json())["data"] == event.data  # inside its envelope too
    deeper = b"{" + b'"a":{' * MAX_JSON_DEPTH + b"}" * MAX_JSON_DEPTH + b"}"
    with pytest.raises(MalformedPayload):
        source.ingest(request(deeper, {}))
    # many brackets side by side are not depth
    wide = b"[" + b",".join([b"[]"] * 5000) + b"]"
    assert len(source.ingest(request(wide, {})).data) == 5000


def test_rejection_reasons_are_a_closed_set() -> None:
    from ghapplets.exceptions import RejectReason

    assert VerificationError("bad_token", "x").reason is RejectReason.BAD_TOKEN  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        VerificationError("made-up-by-a-sender", "x")  # type: ignore[arg-type]
