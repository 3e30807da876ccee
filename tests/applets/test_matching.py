"""Subscription matching: type patterns, the literal fast path, jq conditions."""

from __future__ import annotations

from typing import Any

import pytest
import structlog

from ghapplets.applets.matching import Matcher, compile_type_pattern
from ghapplets.applets.model import AppletSpec
from ghapplets.events.cloudevent import CloudEvent


def spec(name: str, *on: Any, **kw: Any) -> AppletSpec:
    return AppletSpec(name=name, runtime="http", url="http://x.invalid", on=list(on), **kw)


def ev(type: str, data: Any = None) -> CloudEvent:
    return CloudEvent(id="d1", source="/github", type=type, data=data)


def names(specs: list[AppletSpec]) -> list[str]:
    return [s.name for s in specs]


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("com.github.*", "com.github.issues.opened", True),
        ("com.github.pull_request.*", "com.github.pull_request.opened", True),
        ("com.github.pull_request.*", "com.github.pull_request_review.submitted", False),
        ("*", "anything.at.all", True),
        ("com.*.opened", "com.github.issues.opened", True),
        ("com.*.opened", "com.github.issues.closed", False),
        ("com.github.issues.opened", "com.github.issues.opened", True),
        ("com.github.issues.opened", "com.github.issues.opened2", False),
        ("com.github.issue?.opened", "com.github.issues.opened", False),  # ? is literal
        ("com.github.[i]*", "com.github.issues", False),  # [ is literal
        ("com.github.*", "com.gitlab.push", False),
    ],
)
def test_type_patterns(pattern: str, event_type: str, expected: bool) -> None:
    matcher = Matcher([spec("a", pattern)])
    assert bool(matcher.match(ev(event_type))) is expected


def test_literal_patterns_use_the_dict() -> None:
    assert compile_type_pattern("com.github.issues.opened") is None
    assert compile_type_pattern("com.github.*") is not None
    matcher = Matcher([spec("a", "x.y"), spec("b", "x.*")])
    assert set(matcher._literal) == {"x.y"}  # the O(1) path
    assert len(matcher._wildcard) == 1


def test_each_applet_once_in_given_order_enabled_only() -> None:
    specs = [
        spec("z-last", "com.github.*"),
        spec("a-both", "com.github.issues.opened", "com.github.*"),
        spec("off", "com.github.*", enabled=False),
        spec("other", "com.jira.*"),
    ]
    matcher = Matcher(specs)
    assert names(matcher.match(ev("com.github.issues.opened"))) == ["z-last", "a-both"]
    assert names(matcher.specs) == ["z-last", "a-both", "other"]
    assert matcher.match(ev("com.splunk.alert")) == []


def test_when_true_false_and_empty() -> None:
    matcher = Matcher(
        [
            spec("labeled", {"type": "com.github.*", "when": '.data.label == "bug"'}),
            spec("big", {"type": "com.github.*", "when": ".data.size"}),
            spec("never", {"type": "com.github.*", "when": "empty"}),
            spec("null", {"type": "com.github.*", "when": "null"}),
            spec("zero-is-truthy", {"type": "com.github.*", "when": "0"}),
        ]
    )
    assert names(matcher.match(ev("com.github.x", {"label": "bug", "size": 3}))) == [
        "labeled",
        "big",
        "zero-is-truthy",
    ]
    assert names(matcher.match(ev("com.github.x", {"label": "docs", "size": False}))) == [
        "zero-is-truthy"
    ]


def test_when_sees_the_structured_event() -> None:
    matcher = Matcher(
        [spec("s", {"type": "com.github.push", "when": '.subject == "octo/repo" and .id == "d1"'})]
    )
    event = CloudEvent(id="d1", source="/github", type="com.github.push", subject="octo/repo")
    assert names(matcher.match(event)) == ["s"]


def test_jq_runtime_error_is_no_match_and_logged() -> None:
    matcher = Matcher(
        [
            spec("breaks", {"type": "com.github.*", "when": ".data.issue.labels[0].name"}),
            spec("fine", "com.github.*"),
        ]
    )
    with structlog.testing.capture_logs() as logs:
        matched = matcher.match(ev("com.github.x", {"issue": "not an object"}))
    assert names(matched) == ["fine"]
    [entry] = [e for e in logs if e.get("applet") == "breaks"]
    assert entry["log_level"] == "warning" and "Cannot index" in entry["error"]


def test_bad_jq_program_raises_at_construction() -> None:
    with pytest.raises(ValueError, match=r"applet 'bad-one'.*invalid jq"):
        Matcher([spec("ok", "a.b"), spec("bad-one", {"type": "a.b", "when": ".data | ["})])


def test_disabled_applet_with_bad_jq_is_ignored() -> None:
    bad = {"type": "a.b", "when": "(("}
    matcher = Matcher([spec("off", bad, enabled=False), spec("on", "a.b")])  # no error
    assert names(matcher.match(ev("a.b"))) == ["on"]  # and the disabled one never matches
    with pytest.raises(ValueError, match="invalid jq"):  # the same program, enabled
        Matcher([spec("off", bad)])


def test_binary_data_is_seen_as_data_base64() -> None:
    matcher = Matcher(
        [
            spec("w", {"type": "t", "when": ".data"}),
            spec("b64", {"type": "t", "when": '.data_base64 == "AHJhdw=="'}),
            spec("plain", "t"),
        ]
    )
    event = CloudEvent(id="1", source="/s", type="t", data=b"\x00raw", datacontenttype="x/y")
    assert names(matcher.match(event)) == ["b64", "plain"]


def test_needs_data_only_when_a_condition_reads_the_event() -> None:
    plain = AppletSpec(name="a", runtime="exec", command=["x"], on=["com.github.*"])
    conditional = AppletSpec(
        name="b",
        runtime="exec",
        command=["x"],
        on=[{"type": "com.github.push", "when": '.data.ref == "refs/heads/main"'}],
    )
    assert Matcher([plain]).needs_data is False
    assert Matcher([plain, conditional]).needs_data is True
