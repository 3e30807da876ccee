"""Jira, Bitbucket and GitLab: every fixture round-trips; wrong secrets and odd input."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from ghapplets.exceptions import MalformedPayload, VerificationError
from ghapplets.sources.fixtures import Fixture, iter_fixtures, load
from tests.sources._helpers import (
    PREVIOUS,
    SECRET,
    STALE,
    body_hash,
    make,
    request,
    send,
    signed_inbound,
)


def ids(fx: Fixture) -> str:
    return f"{fx.event}-{fx.variant or 'cloud'}"


def hub_sig(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


# -- Jira -------------------------------------------------------------------------------------
@pytest.mark.parametrize("fx", list(iter_fixtures("jira")), ids=ids)
def test_jira_fixture_round_trips(fx: Fixture) -> None:
    event, body = send(make("jira"), fx)
    webhook_event = fx.payload["webhookEvent"]
    assert fx.expected_type == "com.atlassian.jira." + webhook_event.removeprefix("jira:")
    assert event.type == fx.expected_type
    assert event.id == (fx.delivery_id if fx.variant is None else body_hash(body))
    issue, project = fx.payload.get("issue"), fx.payload.get("project")
    subject = issue["key"] if issue else project["key"] if project else None
    assert event.subject == subject
    base = "https://jira.example.com" if fx.variant == "dc" else "https://acme.atlassian.net"
    assert dict(event.extensions) == {"jiraevent": webhook_event, "jiraurl": base}


def test_jira_examples() -> None:
    source = make("jira")
    updated, _ = send(source, load("jira", "jira:issue_updated"))
    assert (updated.type, updated.subject) == ("com.atlassian.jira.issue_updated", "PROJ-42")
    comment, _ = send(source, load("jira", "comment_created"))
    assert (comment.type, comment.subject) == ("com.atlassian.jira.comment_created", "PROJ-42")
    project, _ = send(source, load("jira", "project_created"))
    assert project.subject == "PROJ"
    version, _ = send(source, load("jira", "jira:version_released"))
    assert version.subject is None


def test_jira_signature_forms_and_rotation() -> None:
    source = make("jira")
    body = b'{"webhookEvent":"jira:issue_created"}'
    for secret in (SECRET, PREVIOUS):
        source.verify(request(body, {"X-Hub-Signature": hub_sig(secret, body)}))
    source.verify(request(body, {"X-Hub-Signature": "SHA256=" + hub_sig(SECRET, body)[7:]}))
    for headers, why in [
        ({}, "missing_signature"),
        ({"X-Hub-Signature": hub_sig(STALE, body)}, "bad_signature"),
        ({"X-Hub-Signature": "sha1=" + hub_sig(SECRET, body)[7:]}, "bad_signature"),
        ({"X-Hub-Signature-256": hub_sig(SECRET, body)}, "missing_signature"),
    ]:
        with pytest.raises(VerificationError) as info:
            source.verify(request(body, headers))
        assert info.value.reason == why


def test_jira_base_url_from_baseurl_and_context_path() -> None:
    source = make("jira")
    fx = load(
        "jira",
        "jira:version_released",
        variant="dc",
        version={"self": "https://jira.example.com/jira/rest/api/2/version/1"},
    )
    assert send(source, fx)[0].extensions["jiraurl"] == "https://jira.example.com/jira"
    fx = load("jira", "project_created", baseUrl="https://other.example.com/")
    assert send(source, fx)[0].extensions["jiraurl"] == "https://other.example.com"


def test_jira_without_webhook_event_is_malformed() -> None:
    source = make("jira")
    fx = load("jira", "jira:issue_created", webhookEvent=None)
    with pytest.raises(MalformedPayload):
        send(source, fx)


# -- Bitbucket ----------------------------------------------------------------------------------
def bitbucket_subject(payload: dict[str, Any]) -> str:
    repo = payload.get("repository") or payload["pullRequest"]["toRef"]["repository"]
    return repo.get("full_name") or f"{repo['project']['key']}/{repo['slug']}"


@pytest.mark.parametrize("fx", list(iter_fixtures("bitbucket")), ids=ids)
def test_bitbucket_fixture_round_trips(fx: Fixture) -> None:
    source = make("bitbucket")
    request_ = signed_inbound(source, fx)
    event = source.ingest(request_)
    assert fx.expected_type == "com.atlassian.bitbucket." + fx.event.replace(":", ".")
    assert event.type == fx.expected_type
    assert event.id == fx.delivery_id
    id_header = "x-request-id" if fx.variant == "dc" else "x-request-uuid"
    assert request_.header(id_header) == fx.delivery_id
    assert event.subject == bitbucket_subject(fx.payload)
    assert event.extensions["bitbucketevent"] == fx.event
    assert ("bitbuckethookid" in event.extensions) == (fx.variant is None)


def test_bitbucket_examples() -> None:
    source = make("bitbucket")
    expected = {
        ("repo:push", None): ("com.atlassian.bitbucket.repo.push", "acme/widgets"),
        ("pullrequest:created", None): (
            "com.atlassian.bitbucket.pullrequest.created",
            "acme/widgets",
        ),
        ("repo:refs_changed", "dc"): ("com.atlassian.bitbucket.repo.refs_changed", "ACME/widgets"),
        ("pr:opened", "dc"): ("com.atlassian.bitbucket.pr.opened", "ACME/widgets"),
    }
    for (name, variant), (type_, subject) in expected.items():
        event, _ = send(source, load("bitbucket", name, variant=variant))
        assert (event.type, event.subject) == (type_, subject)


def test_bitbucket_id_falls_back_to_body_hash_and_key_to_payload() -> None:
    source = make("bitbucket")
    fx = load("bitbucket", "repo:refs_changed")
    signed = source.sign(fx.event, fx.payload, "", {})
    headers = {k: v for k, v in signed.headers.items() if k != "X-Event-Key"}
    event = source.ingest(request(signed.body, headers))
    assert event.id == body_hash(signed.body)
    assert event.type == "com.atlassian.bitbucket.repo.refs_changed"  # from payload eventKey
    no_key = source.sign("", {"repository": {}}, "id-1", {})
    with pytest.raises(MalformedPayload):
        source.ingest(
            request(no_key.body, {k: v for k, v in no_key.headers.items() if k != "X-Event-Key"})
        )


# -- GitLab -------------------------------------------------------------------------------------
def gitlab_subject(payload: dict[str, Any]) -> str:
    path = payload["project"]["path_with_namespace"]
    kind = payload["object_kind"]
    if kind == "merge_request":
        return f"{path}!{payload['object_attributes']['iid']}"
    if kind == "issue":
        return f"{path}#{payload['object_attributes']['iid']}"
    if kind == "note" and payload.get("merge_request"):
        return f"{path}!{payload['merge_request']['iid']}"
    return str(path)


@pytest.mark.parametrize("fx", list(iter_fixtures("gitlab")), ids=ids)
def test_gitlab_fixture_round_trips(fx: Fixture) -> None:
    event, _ = send(make("gitlab"), fx)
    action = fx.payload.get("object_attributes", {}).get("action")
    documented = f"com.gitlab.{fx.payload['object_kind']}" + (f".{action}" if action else "")
    assert fx.expected_type == documented
    assert event.type == fx.expected_type
    assert event.id == fx.delivery_id
    assert event.subject == gitlab_subject(fx.payload)
    assert dict(event.extensions) == {
        "gitlabinstance": "https://gitlab.example.com",
        "gitlabevent": fx.headers["X-Gitlab-Event"],
        "gitlabhookid": fx.headers["X-Gitlab-Webhook-UUID"],
    }


def test_gitlab_examples() -> None:
    source = make("gitlab")
    expected = {
        "push": ("com.gitlab.push", "acme/widgets"),
        "merge_request.open": ("com.gitlab.merge_request.open", "acme/widgets!7"),
        "issue.open": ("com.gitlab.issue.open", "acme/widgets#12"),
        "pipeline": ("com.gitlab.pipeline", "acme/widgets"),
        "note": ("com.gitlab.note", "acme/widgets!7"),
    }
    for name, (type_, subject) in expected.items():
        event, _ = send(source, load("gitlab", name))
        assert (event.type, event.subject) == (type_, subject)


def test_gitlab_token_verification() -> None:
    source = make("gitlab")
    body = b"{}"
    for token in (SECRET, PREVIOUS):
        source.verify(request(body, {"X-Gitlab-Token": token.decode()}))
    for headers, why in [
        ({}, "missing_token"),
        ({"X-Gitlab-Token": ""}, "missing_token"),
        ({"X-Gitlab-Token": STALE.decode()}, "bad_token"),
        ({"X-Gitlab-Token": SECRET.decode() + " "}, "bad_token"),
    ]:
        with pytest.raises(VerificationError) as info:
            source.verify(request(body, headers))
        assert info.value.reason == why


def test_gitlab_id_fallbacks_and_sign_names() -> None:
    source = make("gitlab")
    fx = load("gitlab", "push")
    signed = source.sign(fx.event, fx.payload, "", fx.headers)
    assert signed.headers["X-Gitlab-Event"] == "Push Hook"
    event = source.ingest(request(signed.body, signed.headers))
    assert event.id == fx.headers["Idempotency-Key"]
    bare = {k: v for k, v in signed.headers.items() if k != "Idempotency-Key"}
    assert source.ingest(request(signed.body, bare)).id == body_hash(signed.body)
    assert source.sign("merge_request.open", {}, "x").headers["X-Gitlab-Event"] == (
        "Merge Request Hook"
    )


def test_gitlab_without_object_kind_is_malformed() -> None:
    with pytest.raises(MalformedPayload):
        send(make("gitlab"), load("gitlab", "push", object_kind=None, event_name=None))
    # a system hook with only event_name still normalises
    event, _ = send(make("gitlab"), load("gitlab", "push", object_kind=None))
    assert event.type == "com.gitlab.push"


# -- wrong secrets for every vendor -------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "why"),
    [
        ("jira", "bad_signature"),
        ("bitbucket", "bad_signature"),
        ("gitlab", "bad_token"),
        ("servicenow", "bad_credentials"),
        ("splunk", "bad_token"),
    ],
)
def test_each_vendor_rejects_a_wrong_secret(kind: str, why: str) -> None:
    for fx in iter_fixtures(kind):
        with pytest.raises(VerificationError) as info:
            make(kind).ingest(signed_inbound(make(kind, secrets=[STALE]), fx))
        assert info.value.reason == why
