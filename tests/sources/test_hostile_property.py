"""Every source's verify-and-normalise path against arbitrary input (Hypothesis).

For each kind in the registry (in each of its verification modes), with the right secret and
with a wrong one, arbitrary headers, bodies and query strings give exactly one of: a
:class:`VerificationError` (401, or 403 for an address outside an allow-list), a
:class:`MalformedPayload` (400), or a CloudEvent that can be stored and sent on. Never any
other exception: that would be a 500 from the gateway. The checks made before the body
(:meth:`Source.verify_headers`) obey the same rule.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ghapplets.events import CloudEvent, InboundRequest
from ghapplets.exceptions import MalformedPayload, RejectReason, VerificationError
from ghapplets.sources.base import Source
from ghapplets.sources.registry import SOURCE_KINDS
from tests.sources._helpers import SECRET, make

# every kind, in each verification mode it has
VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("github", {}),
    ("github", {"allow_sha1": True}),
    ("jira", {}),
    ("bitbucket", {}),
    ("gitlab", {}),
    ("servicenow", {}),
    ("servicenow", {"auth": "basic", "username": "sn"}),
    ("servicenow", {"auth": "hmac", "encoding": "base64", "prefix": "v1="}),
    ("splunk", {}),
    ("splunk", {"allowed_ips": ["10.0.0.0/8", "2001:db8::/32"], "per_result_ids": True}),
    ("generic", {}),
    ("generic", {"algorithm": "sha512", "encoding": "base64", "header": "X-Sig"}),
    ("generic", {"mode": "bearer", "type_header": "X-Type", "subject_header": "X-Subject"}),
    ("generic", {"mode": "basic", "username": "u"}),
    ("generic", {"mode": "none"}),
]
assert {kind for kind, _ in VARIANTS} == set(SOURCE_KINDS)  # a new kind is tested too
IDS = [f"{kind}-{i}" for i, (kind, _) in enumerate(VARIANTS)]
RIGHT = {f"{kind}-{i}": make(kind, **cfg) for i, (kind, cfg) in enumerate(VARIANTS)}
WRONG = {
    f"{kind}-{i}": make(kind, secrets=(b"not-" + SECRET,), **cfg)
    for i, (kind, cfg) in enumerate(VARIANTS)
}

# header names the sources read, and anything else
NAMES = [
    "content-type", "x-github-event", "x-github-delivery", "x-hub-signature-256",
    "x-hub-signature", "x-github-enterprise-host", "x-github-enterprise-version",
    "x-github-hook-id", "x-atlassian-webhook-identifier", "x-event-key", "x-request-uuid",
    "x-request-id", "x-hook-uuid", "x-gitlab-token", "x-gitlab-event", "x-gitlab-event-uuid",
    "x-gitlab-instance", "x-gitlab-webhook-uuid", "idempotency-key", "authorization",
    "x-servicenow-signature", "x-signature", "x-sig", "x-type", "x-subject",
    "x-forwarded-for",
]  # fmt: skip
# what the gateway hands over: header values decoded as latin-1, any byte but CR/LF/NUL
header_values = st.text(
    st.characters(min_codepoint=1, max_codepoint=255, blacklist_characters="\r\n"), max_size=80
) | st.sampled_from(
    [
        "application/json",
        "application/x-www-form-urlencoded",
        "Bearer ",
        "Basic ",
        "Basic Og==",
        "sha256=",
        "sha1=",
        "v1=",
        "push",
        "repo:push",
        "",
    ]
)
headers = st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=12), header_values, max_size=8)
query = st.dictionaries(
    st.sampled_from(["token", "payload"]) | st.text(max_size=8), header_values, max_size=3
)
client_ips = st.none() | st.ip_addresses().map(str) | st.text(max_size=20)

KEYS = [
    "action", "repository", "full_name", "sid", "result", "object_kind", "webhookEvent",
    "eventKey", "table", "operation", "sys_id", "number", "issue", "project", "key",
]  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)  # larger ones: see ``bodies``
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=30,
)


def nested(depth: int, opener: bytes, closer: bytes) -> bytes:
    return opener * depth + closer * depth


bodies = st.one_of(
    st.binary(max_size=400),
    json_values.map(orjson.dumps),
    st.integers(min_value=200, max_value=3000).map(lambda d: nested(d, b"[", b"]")),
    # around the depth limit, where the CloudEvent envelope adds one more level
    st.sampled_from([199, 200, 201, 253, 254, 255]).map(lambda d: nested(d, b"[", b"]")),
    st.sampled_from([199, 200, 253, 254]).map(lambda d: b'{"a":' * d + b"1" + b"}" * d),
    st.integers(min_value=200, max_value=3000).map(lambda d: b'{"a":' * d + b"1" + b"}" * d),
    st.integers(min_value=19, max_value=400).map(lambda n: b"1" * n),  # huge integers
    json_values.map(lambda v: b"payload=" + orjson.dumps(v)),
    st.sampled_from([b"", b"null", b"[]", b'"\\ud800"', b"1e999", b"\xff\xfe", b"{" * 10]),
)


def good_event(event: CloudEvent) -> None:
    """An event the gateway can store and hand on: attributes, headers and data all encode."""
    assert isinstance(event.id, str) and event.id
    event.binary_headers()
    event.to_json()
    event.data_bytes()


def run(source: Source, request: InboundRequest) -> None:
    try:
        source.verify_headers(InboundRequest(request.source, request.headers, b"", request.query,
                                             request.client_ip))  # fmt: skip
    except VerificationError as exc:
        assert exc.reason in set(RejectReason)
        assert exc.status in (401, 403)
    try:
        event = source.ingest(request)
    except VerificationError as exc:
        assert exc.reason in set(RejectReason)
        assert exc.status in (401, 403)
        return
    except MalformedPayload:
        return
    good_event(event)
    key = source.replay_key(request)
    assert key is None or key.startswith(f"{source.name}:body:")


def signed_by(source: Source, body: bytes, extra: dict[str, str], params: dict[str, str]
              ) -> tuple[dict[str, str], dict[str, str]]:  # fmt: skip
    """``extra`` plus the right credential for ``body`` (for a source with a secret)."""
    if source.config.model_dump().get("mode") == "none":
        return extra, params
    signed = source.sign("push", body, "delivery-1")
    return {**extra, **{k.lower(): v for k, v in signed.headers.items()}}, {
        **params,
        **signed.query,
    }


@pytest.mark.parametrize("variant", IDS)
@given(body=bodies, extra=headers, params=query, client_ip=client_ips, sign=st.booleans())
def test_right_secret_arbitrary_input(
    variant: str, body: bytes, extra: dict[str, str], params: dict[str, str],
    client_ip: str | None, sign: bool,
) -> None:  # fmt: skip
    source = RIGHT[variant]
    if sign:  # verified: the parse and normalise paths see the arbitrary body and headers
        hdrs, qs = signed_by(source, body, extra, params)
        hdrs = {**hdrs, **{k.lower(): v for k, v in extra.items() if k.startswith("x-github-e")}}
    else:
        hdrs, qs = extra, params
    run(source, InboundRequest("s", {k.lower(): v for k, v in hdrs.items()}, body, qs, client_ip))


@pytest.mark.parametrize("variant", IDS)
@given(body=bodies, extra=headers, params=query, client_ip=client_ips)
def test_wrong_secret_arbitrary_input(
    variant: str, body: bytes, extra: dict[str, str], params: dict[str, str],
    client_ip: str | None,
) -> None:  # fmt: skip
    wrong = WRONG[variant]
    hdrs, qs = signed_by(wrong, body, extra, params)  # signed, but with a secret not configured
    source = RIGHT[variant]
    request = InboundRequest("s", {k.lower(): v for k, v in hdrs.items()}, body, qs, client_ip)
    if source.config.model_dump().get("mode") == "none":
        run(source, request)
        return
    with pytest.raises(VerificationError) as info:
        source.ingest(request)
    assert info.value.status in (401, 403)
