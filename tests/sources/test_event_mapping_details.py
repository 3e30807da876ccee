"""The CloudEvent each kind builds, field by field, from hand-written requests: ``data``,
ids from the vendor's delivery headers, extensions, subjects and instance URLs, and the
common helpers' edge cases (cleaning, URLs, credentials)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

import orjson
import pytest

from ghapplets.events import CloudEvent
from ghapplets.exceptions import RejectReason, VerificationError
from ghapplets.secrets.refs import Lookup
from ghapplets.secrets.scopes import Reader
from ghapplets.sources.base import SignedRequest, matches_any
from ghapplets.sources.common import (
    authorization_value,
    to_inbound,
    url_host,
    url_origin,
    verify_authorization,
)
from ghapplets.sources.registry import build_source, build_sources, source_class
from tests.sources._helpers import SECRET, body_hash, make, request


def ingest(
    kind: str, payload: Any, headers: dict[str, str] | None = None, **settings: Any
) -> tuple[CloudEvent, bytes]:
    source = make(kind, **settings)
    signed = source.sign("push", payload, "", headers)
    return source.ingest(to_inbound(signed, source.name)), signed.body


def test_data_is_the_parsed_body_for_every_kind() -> None:
    payloads: dict[str, dict[str, Any]] = {
        "github": {"action": "opened", "n": [1, 2]},
        "gitlab": {"object_kind": "push", "n": [1, 2]},
        "bitbucket": {"eventKey": "repo:push", "n": [1, 2]},
        "jira": {"webhookEvent": "jira:issue_created", "n": [1, 2]},
        "splunk": {"sid": "s1", "n": [1, 2]},
        "servicenow": {"table": "incident", "n": [1, 2]},
        "generic": {"n": [1, 2]},
    }
    for kind, payload in payloads.items():
        event, _ = ingest(kind, payload, {"X-GitHub-Delivery": "d-1"})
        assert event.data == payload, kind


@pytest.mark.parametrize(
    ("kind", "headers", "payload", "expected_id", "extensions"),
    [
        (
            "gitlab",
            {
                "X-Gitlab-Instance": "https://gitlab.example.com",
                "X-Gitlab-Event": "Push Hook",
                "X-Gitlab-Webhook-UUID": "hook-9",
                "Idempotency-Key": "idem-1",
            },
            {"object_kind": "push"},
            "idem-1",
            {
                "gitlabinstance": "https://gitlab.example.com",
                "gitlabevent": "Push Hook",
                "gitlabhookid": "hook-9",
            },
        ),
        (
            "gitlab",
            {"X-Gitlab-Event-UUID": "uuid-1", "Idempotency-Key": "idem-1"},
            {"object_kind": "push"},
            "uuid-1",
            {"gitlabevent": "Push Hook"},
        ),
        (
            "bitbucket",
            {"X-Hook-UUID": "{hook}", "X-Request-Id": "dc-7"},
            {"eventKey": "pr:opened"},
            "dc-7",
            {"bitbucketevent": "push", "bitbuckethookid": "{hook}"},
        ),
        (
            "bitbucket",
            {"X-Request-UUID": "cloud-7", "X-Request-Id": "dc-7"},
            {},
            "cloud-7",
            {"bitbucketevent": "push"},
        ),
        (
            "jira",
            {"X-Atlassian-Webhook-Identifier": "wh-3"},
            {"webhookEvent": "jira:issue_created"},
            "wh-3",
            {"jiraevent": "jira:issue_created"},
        ),
        (
            "servicenow",
            {"X-Request-Id": "sn-3"},
            {"table": "incident"},
            "sn-3",
            {},
        ),
        (
            "github",
            {
                "X-GitHub-Delivery": "gh-1",
                "X-GitHub-Enterprise-Host": "ghes.example.com",
                "X-GitHub-Enterprise-Version": "3.14.0",
                "X-GitHub-Hook-ID": "42",
            },
            {},
            "gh-1",
            {
                "githubevent": "push",
                "githubhost": "ghes.example.com",
                "githubversion": "3.14.0",
                "githubhookid": "42",
            },
        ),
    ],
)
def test_delivery_ids_and_extensions_from_vendor_headers(
    kind: str,
    headers: dict[str, str],
    payload: dict[str, Any],
    expected_id: str,
    extensions: dict[str, str],
) -> None:
    event, _ = ingest(kind, payload, headers)
    assert event.id == expected_id
    assert {k: v for k, v in event.extensions.items() if k in extensions} == extensions
    assert set(extensions) <= set(event.extensions)


def test_extension_values_are_cleaned_and_bounded() -> None:
    event, _ = ingest(
        "gitlab",
        {"object_kind": "push"},
        {
            "X-Gitlab-Instance": "https://gl\x00.example\x7f.com",
            "X-Gitlab-Webhook-UUID": "u" * 2000,
        },
    )
    assert event.extensions["gitlabinstance"] == "https://gl.example.com"
    assert event.extensions["gitlabhookid"] == "u" * 1024


@pytest.mark.parametrize(
    ("payload", "subject"),
    [
        ({"object_kind": "note", "issue": {"iid": 12}}, "acme/widgets#12"),
        (
            {"object_kind": "note", "merge_request": {"iid": 7}, "issue": {"iid": 12}},
            "acme/widgets!7",
        ),
        ({"object_kind": "note", "issue": {"iid": "12"}}, "acme/widgets"),
        ({"object_kind": "note"}, "acme/widgets"),
        ({"object_kind": "push", "issue": {"iid": 12}}, "acme/widgets"),
    ],
)
def test_gitlab_note_subject(payload: dict[str, Any], subject: str) -> None:
    event, _ = ingest("gitlab", {**payload, "project": {"path_with_namespace": "acme/widgets"}})
    assert event.subject == subject


@pytest.mark.parametrize(
    ("event", "header"),
    [
        ("push", "Push Hook"),
        ("merge_request.open", "Merge Request Hook"),
        ("work_item.update", "Issue Hook"),
        ("System Hook", "System Hook"),
        ("something_else", "something_else"),
    ],
)
def test_gitlab_event_header_from_fixture_names(event: str, header: str) -> None:
    assert make("gitlab").sign(event, {}, "").headers["X-Gitlab-Event"] == header


def test_github_subject_falls_back_to_installation_id_as_text_or_number() -> None:
    text, _ = ingest("github", {"installation": {"id": "inst-1"}}, {"X-GitHub-Delivery": "d"})
    number, _ = ingest("github", {"installation": {"id": 77}}, {"X-GitHub-Delivery": "d"})
    assert (text.subject, number.subject) == ("inst-1", "77")


@pytest.mark.parametrize(
    ("payload", "url"),
    [
        ({"baseUrl": "http://jira.local:8080/"}, "http://jira.local:8080"),
        ({"baseUrl": "https://example.com/JIRAX/"}, "https://example.com/JIRAX"),
        (
            {"baseUrl": "not a url", "issue": {"self": "https://j.example.com/rest/api/2/issue/1"}},
            "https://j.example.com",
        ),
        ({"baseUrl": "ftp://files.example.com/"}, None),
        ({"issue": {"self": "https://j.example.com/browse/X-1"}}, None),
        ({"issue": {"self": "https://j.example.com/rest/api/2/rest/1"}}, "https://j.example.com"),
        ({"issue": {"self": "/rest/api/2/issue/1"}}, None),
    ],
)
def test_jira_instance_url(payload: dict[str, Any], url: str | None) -> None:
    event, _ = ingest("jira", {"webhookEvent": "jira:issue_updated", **payload})
    assert event.extensions.get("jiraurl") == url


def test_bitbucket_data_center_subject_needs_project_and_slug() -> None:
    both, _ = ingest("bitbucket", {"repository": {"project": {"key": "P"}, "slug": "r"}})
    slug_only, _ = ingest("bitbucket", {"repository": {"slug": "r"}})
    project_only, _ = ingest("bitbucket", {"repository": {"project": {"key": "P"}}})
    assert (both.subject, slug_only.subject, project_only.subject) == ("P/r", None, None)


def test_splunk_source_name_ids_and_networks() -> None:
    source = make("splunk", name="alerts", allowed_ips=["10.1.2.3/24"], per_result_ids=True)
    assert source.name == "alerts"
    token = {"token": SECRET.decode()}
    body = orjson.dumps({"sid": "s1", "result": {"b": 1, "a": 2}, "results_link": "http://:80/x"})
    event = source.ingest(request(body, query=token, client_ip="10.1.2.200"))
    result = hashlib.sha256(b'{"a":2,"b":1}').hexdigest()[:16]
    assert (event.source, event.id) == ("/alerts", f"s1:{result}")
    assert "splunkhost" not in event.extensions
    reordered = orjson.dumps({"sid": "s1", "result": {"a": 2, "b": 1}})
    assert source.ingest(request(reordered, query=token, client_ip="10.1.2.9")).id == event.id
    no_sid = orjson.dumps({"result": 1})
    assert source.ingest(request(no_sid, query=token, client_ip="10.1.2.9")).id == body_hash(no_sid)


def test_url_helpers() -> None:
    assert url_origin("http://h.example:81/p?q") == "http://h.example:81"
    assert url_origin("HTTPS://h.example/") == "https://h.example"
    assert url_origin("ftp://h.example/") is None
    assert url_origin("http:///nohost") is None
    assert url_host("http://user@Host.Example:8080/x") == "host.example"
    assert url_host("http://:8080/x") is None
    assert url_host(42) is None


def test_authorization_helpers_without_a_username() -> None:
    assert authorization_value("bearer", b"tok") == "Bearer tok"
    value = authorization_value("basic", b"s3")
    assert value == "Basic " + base64.b64encode(b":s3").decode()
    verify_authorization(value, [b"s3"], scheme="basic")
    with pytest.raises(VerificationError) as info:
        verify_authorization(value, [b"s3"], scheme="basic", username="bot")
    assert info.value.reason == RejectReason.BAD_CREDENTIALS


def test_matches_any_never_matches_nothing() -> None:
    assert matches_any(None, [b"", ""]) is False
    assert matches_any("", [b""]) is True
    assert matches_any(b"a", ["b", b"a"]) is True


def test_to_inbound_keeps_the_source_name_and_lowercases_headers() -> None:
    signed = SignedRequest(headers={"X-A": "1"}, body=b"{}", query={"t": "x"})
    inbound = to_inbound(signed, "hooks-1", client_ip="192.0.2.1")
    assert (inbound.source, inbound.headers, inbound.query, inbound.client_ip) == (
        "hooks-1",
        {"x-a": "1"},
        {"t": "x"},
        "192.0.2.1",
    )


def test_a_source_keeps_the_settings_it_was_built_from() -> None:
    """``ghapplets send --wrong-secret`` rebuilds a source from ``source.settings``."""
    source = make("github", name="gh", allow_sha1=True)
    rebuilt = build_source("gh", source.settings, [b"other"])
    assert rebuilt.config == source.config
    assert rebuilt.secrets == (b"other",)


def test_unknown_kind_without_a_close_match() -> None:
    with pytest.raises(ValueError) as info:
        source_class("zzzzzz")
    assert str(info.value) == (
        "unknown source kind 'zzzzzz'; known kinds: "
        "bitbucket, generic, github, gitlab, jira, servicenow, splunk"
    )


def test_build_sources_reads_stored_secret_references() -> None:
    readers: list[str] = []

    def lookup_for(reader: Reader) -> Lookup:
        async def lookup(name: str) -> str:
            readers.append(f"{reader} {name}")
            return {"gh-hook": "stored-secret"}[name]

        return lookup

    settings = make("github").config.model_copy(update={"secret": "${secret:gh-hook}"})
    sources = asyncio.run(build_sources({"gh": settings}, lookup_for))
    assert sources["gh"].secrets == (b"stored-secret",)
    assert readers == ["source:gh gh-hook"]  # each source reads as itself (the audit log)


@pytest.mark.parametrize("algorithm", ["sha1", "sha512"])
def test_generic_base64_signature_with_another_algorithm_is_accepted(algorithm: str) -> None:
    settings = {"algorithm": algorithm, "encoding": "base64", "id_header": "X-Id"}
    event, _ = ingest("generic", {"n": 1}, {"X-Id": "g-1"}, **settings)
    assert (event.id, event.data) == ("g-1", {"n": 1})
