"""Property tests: verified input never makes ``ingest`` raise anything but MalformedPayload,
arbitrary headers never make ``verify`` raise anything but VerificationError, and every event
produced is a well-formed CloudEvent."""

from __future__ import annotations

import re
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from ghapplets.events import CloudEvent
from ghapplets.exceptions import MalformedPayload, VerificationError
from ghapplets.sources.base import Source
from ghapplets.sources.common import to_inbound
from ghapplets.sources.fixtures import iter_fixtures, kinds
from tests.sources._helpers import make, request

# keys every normaliser looks at, so generated payloads reach the interesting branches
VOCABULARY = [
    "action", "repository", "full_name", "pull_request", "issue", "discussion", "number",
    "organization", "login", "installation", "id", "webhookEvent", "key", "project", "self",
    "baseUrl", "comment", "version", "eventKey", "slug", "pullRequest", "toRef", "object_kind",
    "event_name", "object_attributes", "iid", "merge_request", "path_with_namespace", "table",
    "sys_class_name", "operation", "sys_id", "sys_updated_on", "sid", "search_name", "app",
    "owner", "results_link", "result", "record",
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["https://x.example.com/rest/api/2/issue/1", "http://[::1", "jira:", ""])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(VOCABULARY) | st.text(max_size=6), inner, max_size=6)
    ),
    max_leaves=25,
)
bodies = st.binary(max_size=300) | json_values.map(orjson.dumps)
header_text = st.text(max_size=40)
vendor_headers = st.dictionaries(
    st.sampled_from([
        "X-GitHub-Event", "X-GitHub-Delivery", "X-GitHub-Enterprise-Host", "X-GitHub-Hook-ID",
        "X-GitHub-Enterprise-Version", "X-Atlassian-Webhook-Identifier", "X-Event-Key",
        "X-Request-UUID", "X-Request-Id", "X-Hook-UUID", "X-Gitlab-Event-UUID", "Idempotency-Key",
        "X-Gitlab-Instance", "X-Gitlab-Event", "X-Gitlab-Webhook-UUID", "Content-Type",
        "X-Type", "X-Subject",
    ]),
    header_text | st.just("application/x-www-form-urlencoded"),
    max_size=6,
)  # fmt: skip

KINDS: dict[str, dict[str, Any]] = {
    "github": {"allow_sha1": True},
    "jira": {},
    "bitbucket": {},
    "gitlab": {},
    "servicenow": {"auth": "hmac", "encoding": "base64"},
    "splunk": {"allowed_ips": ["0.0.0.0/0", "::/0"], "per_result_ids": True},
    "generic": {"type_header": "X-Type", "subject_header": "X-Subject"},
}
SOURCES: dict[str, Source] = {kind: make(kind, **cfg) for kind, cfg in KINDS.items()}
FIXTURES = {kind: list(iter_fixtures(kind if kind in kinds() else "github")) for kind in KINDS}
EXT_NAME = re.compile(r"^[a-z0-9]{1,20}$")


def well_formed(event: CloudEvent) -> None:
    assert isinstance(event.id, str) and event.id
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", event.type)
    assert event.subject is None or (isinstance(event.subject, str) and event.subject)
    for name, value in event.extensions.items():
        assert EXT_NAME.match(name) and isinstance(value, str) and value
    for value in event.binary_headers().values():
        assert not re.search(r"[\r\n\x00]", value)
    CloudEvent.from_json(event.to_json())


DELETE = object()


def key_paths(obj: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.append((*prefix, key))
            out.extend(key_paths(value, (*prefix, key)))
    return out


def mutate(payload: Any, path: tuple[str, ...], value: Any) -> Any:
    """A copy of ``payload`` with ``path`` replaced by ``value`` (or deleted)."""
    if not path:
        return value
    if not isinstance(payload, dict):
        return payload
    copy = dict(payload)
    head, rest = path[0], path[1:]
    if not rest and value is DELETE:
        copy.pop(head, None)
    elif head in copy:
        copy[head] = mutate(copy[head], rest, value)
    return copy


@st.composite
def mutated_fixture(draw: st.DrawFn, kind: str) -> tuple[bytes, dict[str, str], str]:
    """A real fixture of ``kind`` with a few fields replaced by odd JSON or removed."""
    fx = draw(st.sampled_from(FIXTURES[kind]))
    payload: Any = fx.payload
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = key_paths(payload)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        payload = mutate(payload, path, draw(st.just(DELETE) | json_values))
    return orjson.dumps(payload), fx.headers, fx.event


def ingest_signed(
    kind: str, event: str, body: bytes, delivery: str, headers: dict[str, str]
) -> None:
    source = SOURCES[kind]
    signed = source.sign(event, body, delivery, headers)
    try:
        result = source.ingest(to_inbound(signed, source.name, client_ip="192.0.2.1"))
    except MalformedPayload:
        return
    well_formed(result)


def make_verify_test(kind: str) -> Any:
    @given(
        body=bodies,
        event=header_text,
        delivery=header_text,
        headers=vendor_headers,
        near_valid=mutated_fixture(kind),
        use_fixture=st.booleans(),
    )
    def test(
        body: bytes,
        event: str,
        delivery: str,
        headers: dict[str, str],
        near_valid: tuple[bytes, dict[str, str], str],
        use_fixture: bool,
    ) -> None:
        if use_fixture:
            body, base, event = near_valid
            headers = {**base, **headers} if delivery else base
        ingest_signed(kind, event, body, delivery, headers)

    test.__name__ = f"test_{kind}_signed_input_only_raises_malformed"
    return test


def make_headers_test(kind: str) -> Any:
    @given(
        body=st.binary(max_size=100),
        headers=st.dictionaries(header_text, header_text, max_size=6) | vendor_headers,
        signature=header_text,
        query=st.dictionaries(st.sampled_from(["token", "x"]), header_text, max_size=2),
        client_ip=st.none() | header_text | st.ip_addresses().map(str),
    )
    def test(
        body: bytes,
        headers: dict[str, str],
        signature: str,
        query: dict[str, str],
        client_ip: str | None,
    ) -> None:
        for name in (
            "X-Hub-Signature-256",
            "X-Hub-Signature",
            "X-Gitlab-Token",
            "X-ServiceNow-Signature",
            "X-Signature",
            "Authorization",
        ):
            headers.setdefault(name, signature)
        req = request(body, headers, query=query, client_ip=client_ip)
        try:
            SOURCES[kind].verify(req)
        except VerificationError as exc:
            assert exc.reason in {
                "missing_signature",
                "bad_signature",
                "missing_token",
                "bad_token",
                "missing_credentials",
                "bad_credentials",
                "ip_not_allowed",
                "no_secret",
            }

    test.__name__ = f"test_{kind}_arbitrary_headers_only_raise_verification_error"
    return test


for _kind in KINDS:
    globals()[f"test_{_kind}_signed_input_only_raises_malformed"] = make_verify_test(_kind)
    globals()[f"test_{_kind}_arbitrary_headers_only_raise_verification_error"] = make_headers_test(
        _kind
    )


@given(body=bodies, user=st.text(max_size=10), mode=st.sampled_from(["bearer", "basic"]))
def test_authorization_modes_only_raise_malformed(body: bytes, user: str, mode: str) -> None:
    source = make("generic", mode=mode, username=user or "u")
    signed = source.sign("e", body, "")
    try:
        well_formed(source.ingest(to_inbound(signed, "generic")))
    except MalformedPayload:
        pass


def test_control_characters_never_leave_empty_attributes() -> None:
    """Regression: a header or field of only control characters must not become an empty
    extension, id or subject (found by the property tests)."""
    cases: list[tuple[str, str, Any, dict[str, str]]] = [
        ("bitbucket", "\x01", {"repository": {"full_name": "\x02"}}, {}),
        ("jira", "", {"webhookEvent": "\x01", "issue": {"key": "\x7f"}}, {}),
        ("github", "push", {}, {"X-GitHub-Enterprise-Host": "\x01", "X-GitHub-Hook-ID": "\n"}),
        ("gitlab", "\x01", {"object_kind": "push"}, {"X-Gitlab-Instance": "\x03"}),
        ("splunk", "alert", {"sid": "\x01", "app": "\x02"}, {}),
    ]
    for kind, event, payload, headers in cases:
        source = SOURCES[kind]
        signed = source.sign(event, payload, "d-1", headers)
        well_formed(source.ingest(to_inbound(signed, source.name, client_ip="192.0.2.1")))
