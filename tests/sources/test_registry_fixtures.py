"""The kind registry and the fixtures package's public API."""

from __future__ import annotations

import dataclasses
import re

import orjson
import pytest
from pydantic import ValidationError

from ghapplets.sources.base import Source, SourceSettings
from ghapplets.sources.fixtures import Fixture, iter_fixtures, kinds, list_events, load
from ghapplets.sources.github import GitHubSettings, GitHubSource
from ghapplets.sources.registry import SOURCE_KINDS, build_source, settings_model

ALL_KINDS = {"github", "jira", "bitbucket", "gitlab", "servicenow", "splunk", "generic"}
GITHUB_WITHOUT_ACTIONS = {
    "create", "delete", "fork", "gollum", "page_build", "ping", "public", "push",
    "repository_import", "security_and_analysis", "status", "team_add", "workflow_dispatch",
}  # fmt: skip


# -- registry ---------------------------------------------------------------------------------
def test_every_kind_is_registered_with_a_strict_settings_model() -> None:
    assert set(SOURCE_KINDS) == ALL_KINDS
    for kind, cls in SOURCE_KINDS.items():
        assert issubclass(cls, Source) and cls.kind == kind
        model = settings_model(kind)
        assert issubclass(model, SourceSettings) and model is not SourceSettings
        assert model(kind=kind).kind == kind
        with pytest.raises(ValidationError):
            model.model_validate({"kind": kind, "no_such_key": 1})


def test_unknown_kind_is_a_value_error_listing_known_kinds() -> None:
    with pytest.raises(ValueError, match=r"known kinds: bitbucket, generic, github") as info:
        settings_model("githb")
    assert "did you mean 'github'" in str(info.value)
    with pytest.raises(ValueError, match="unknown source kind"):
        build_source("x", SourceSettings(kind="svn"), [b"s"])


def test_build_source_coerces_base_settings_and_keeps_secret_order() -> None:
    source = build_source("gh", SourceSettings(kind="github", description="d"), [b"a", b"", b"b"])
    assert isinstance(source, GitHubSource)
    assert isinstance(source.config, GitHubSettings) and source.config.description == "d"
    assert source.secrets == (b"a", b"b")
    assert source.cloudevent_source == "/gh"


def test_config_example_validates() -> None:
    entry = {
        "kind": "github",
        "secret": "${env:GITHUB_WEBHOOK_SECRET}",
        "previous_secret": "${secret:github-old}",
        "allow_sha1": False,
    }
    settings = settings_model("github").model_validate(entry)
    assert settings.secret == "${env:GITHUB_WEBHOOK_SECRET}"
    with pytest.raises(ValidationError):
        settings_model("github").model_validate({**entry, "kind": "gitlab"})


# -- fixtures -----------------------------------------------------------------------------------
def test_kinds_and_event_lists() -> None:
    assert set(kinds()) == ALL_KINDS - {"generic"}
    github = list_events("github")
    assert len(github) == 71 and len({e.split(".")[0] for e in github}) == 71
    assert {"issues.opened", "push", "watch.started", "ping", "pull_request.opened"} <= set(github)
    assert set(list_events("jira")) >= {
        "jira:issue_created",
        "jira:issue_updated",
        "comment_created",
    }
    assert set(list_events("bitbucket")) == {
        "repo:push",
        "pullrequest:created",
        "repo:refs_changed",
        "pr:opened",
    }
    assert set(list_events("gitlab")) == {
        "push",
        "merge_request.open",
        "issue.open",
        "pipeline",
        "note",
    }
    assert list_events("servicenow") == ["change_request.updated", "incident.created"]
    assert list_events("splunk") == ["alert"]


@pytest.mark.parametrize("name", list_events("github"))
def test_github_actions_are_present_exactly_when_documented(name: str) -> None:
    fx = load("github", name)
    event, _, action = name.partition(".")
    assert fx.headers["X-GitHub-Event"] == fx.vendor_event == event
    if event in GITHUB_WITHOUT_ACTIONS:
        assert "action" not in fx.payload and not action
    else:
        assert fx.payload["action"] == action
    assert "sender" in fx.payload or event == "security_advisory"


def test_github_bare_event_and_explicit_action() -> None:
    assert load("github", "issues").payload["action"] == "opened"
    closed = load("github", "issues.closed")
    assert closed.payload["action"] == "closed" and closed.payload["issue"]["state"] == "closed"
    assert closed.expected_type == "com.github.issues.closed"
    assert load("github", "repository_dispatch.anything").payload["action"] == "anything"


@pytest.mark.parametrize(
    ("kind", "event", "variant", "match"),
    [
        ("githb", "push", None, "did you mean 'github'"),
        ("github", "isues", None, "did you mean 'issues'"),
        ("github", "issues.shut", None, "no github fixture 'issues.shut'"),
        ("github", "push.forced", None, "no github fixture"),
        ("jira", "jira:issue_update", None, "jira:issue_updated"),
        ("github", "push", "dc", "no variant 'dc'"),
        ("gitlab", "push", "ghes", "no variant"),
        ("bitbucket", "repo:push", "dc", "has no 'dc' variant"),
    ],
)
def test_unknown_names_raise_key_error_with_hints(
    kind: str, event: str, variant: str | None, match: str
) -> None:
    with pytest.raises(KeyError, match=match):
        load(kind, event, variant=variant)


def test_overrides_merge_and_retarget_expected_type() -> None:
    fx = load("github", "issues", action="labeled", issue={"number": 9}, organization=None)
    assert fx.payload["issue"]["number"] == 9 and fx.payload["issue"]["title"] == "Found a bug"
    assert "organization" not in fx.payload
    assert fx.expected_type == "com.github.issues.labeled"
    assert load("github", "push", action="x").expected_type == "com.github.push.x"
    assert load("gitlab", "issue.open", object_attributes={"action": "close"}).expected_type == (
        "com.gitlab.issue.close"
    )
    assert "labeled" not in orjson.dumps(load("github", "issues").payload).decode()


def test_fixtures_are_deterministic_frozen_and_json() -> None:
    first, second = load("github", "push", variant="ghes"), load("github", "push", variant="ghes")
    assert first == second
    assert load("github", "push").delivery_id != first.delivery_id
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.event = "x"  # type: ignore[misc]
    for fx in iter_fixtures():
        assert orjson.loads(orjson.dumps(fx.payload)) == fx.payload
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in fx.headers.items())
        assert not {k.lower() for k in fx.headers} & {
            "x-hub-signature",
            "x-hub-signature-256",
            "x-gitlab-token",
            "authorization",
        }


def test_ghes_fixtures_live_on_the_enterprise_host() -> None:
    for fx in iter_fixtures("github"):
        text = orjson.dumps(fx.payload).decode()
        if fx.variant == "ghes":
            assert "https://github.com" not in text and "api.github.com" not in text, fx.event
            assert fx.headers["X-GitHub-Enterprise-Host"] == "ghe.example.com"
            assert fx.headers["X-GitHub-Enterprise-Version"] == "3.14.0"
            if "repository" in fx.payload:
                assert fx.payload["repository"]["html_url"].startswith("https://ghe.example.com/")
                assert fx.payload["repository"]["url"].startswith("https://ghe.example.com/api/v3/")
        else:
            assert "ghe.example.com" not in text
            assert not any(k.startswith("X-GitHub-Enterprise") for k in fx.headers)


def documented_type(fx: Fixture) -> str:
    """Each vendor's documented type rule, derived here from the payload and headers."""
    p = fx.payload
    if fx.kind == "github":
        action = p.get("action")
        return f"com.github.{fx.headers['X-GitHub-Event']}" + (f".{action}" if action else "")
    if fx.kind == "jira":
        return "com.atlassian.jira." + re.sub(r"^jira:", "", p["webhookEvent"])
    if fx.kind == "bitbucket":
        return "com.atlassian.bitbucket." + fx.headers["X-Event-Key"].replace(":", ".")
    if fx.kind == "gitlab":
        action = p.get("object_attributes", {}).get("action")
        return f"com.gitlab.{p['object_kind']}" + (f".{action}" if action else "")
    if fx.kind == "servicenow":
        past = {"insert": "created", "update": "updated", "delete": "deleted"}
        return f"com.servicenow.{p['table']}.{past[p['operation']]}"
    return "com.splunk.alert"


@pytest.mark.parametrize(
    "fx", list(iter_fixtures()), ids=lambda f: f"{f.kind}-{f.event}-{f.variant}"
)
def test_expected_type_follows_the_documented_rule(fx: Fixture) -> None:
    assert fx.expected_type == documented_type(fx)
    assert fx.event in list_events(fx.kind)
