"""The dispatcher's pure core: one event message -> a delivery, its jobs and their messages."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from ghapplets.applets.matching import Matcher
from ghapplets.applets.model import AppletSpec
from ghapplets.broker.base import Message
from ghapplets.dispatch import messages as m
from ghapplets.dispatch.dispatcher import plan
from ghapplets.events import CloudEvent
from ghapplets.store.records import DeliveryStatus, JobStatus

NOW = 1_800_000_000.0


def spec(name: str, *on: Any) -> AppletSpec:
    return AppletSpec(name=name, runtime="http", url="http://x.invalid", on=list(on))


def event_message(event: CloudEvent, vendor: dict[str, str] | None = None) -> Message:
    out = m.event_message("github", event, event.data_bytes(), vendor or {}, NOW - 2)
    return Message(out.stream, 7, out.msg_id, out.headers, out.data, 1)


ISSUE = CloudEvent(
    "d-1", "/github", "com.github.issues.opened", {"issue": {"title": "crash"}}, subject="o/r"
)


def test_one_job_per_matching_applet_with_its_message() -> None:
    matcher = Matcher(
        [spec("a", "com.github.issues.*"), spec("b", "com.github.push"), spec("c", "com.github.*")]
    )
    delivery, jobs, outbound = plan(event_message(ISSUE), matcher, NOW)
    assert (delivery.source, delivery.id, delivery.type, delivery.subject) == (
        "github",
        "d-1",
        "com.github.issues.opened",
        "o/r",
    )
    assert delivery.status == DeliveryStatus.DISPATCHED and delivery.jobs_total == 2
    assert delivery.received_at == NOW - 2  # when the gateway got it, not when it was planned
    assert [j.applet for j in jobs] == ["a", "c"]
    assert all(j.status == JobStatus.QUEUED and j.created_at == NOW for j in jobs)
    assert [j.id for j in jobs] == ["github:d-1:a", "github:d-1:c"]
    assert [o.msg_id for o in outbound] == [j.id for j in jobs]  # idempotent publish
    assert all(o.stream == m.JOBS for o in outbound)
    assert [o.headers[m.H_APPLET] for o in outbound] == ["a", "c"]
    assert all(o.headers["ce-id"] == "d-1" for o in outbound)


def test_an_event_nobody_wants_is_recorded_unmatched() -> None:
    delivery, jobs, outbound = plan(event_message(ISSUE), Matcher([spec("b", "x.y")]), NOW)
    assert delivery.status == DeliveryStatus.UNMATCHED and delivery.jobs_total == 0
    assert jobs == [] and outbound == []


def test_jq_conditions_see_the_payload() -> None:
    crash = AppletSpec.model_validate(
        {
            "name": "crash",
            "runtime": "http",
            "url": "http://x.invalid",
            "on": [{"type": "com.github.issues.opened", "when": '.data.issue.title == "crash"'}],
        }
    )
    other = CloudEvent("d-2", "/github", "com.github.issues.opened", {"issue": {"title": "ok"}})
    assert len(plan(event_message(ISSUE), Matcher([crash]), NOW)[1]) == 1
    assert plan(event_message(other), Matcher([crash]), NOW)[1] == []


def test_vendor_headers_are_kept_without_credentials() -> None:
    vendor = {"x-github-event": "issues", "authorization": "Bearer s3cret", "cookie": "c=1"}
    delivery, _, _ = plan(event_message(ISSUE, vendor), Matcher([]), NOW)
    assert delivery.headers == {"x-github-event": "issues"}
    assert delivery.attributes["id"] == "d-1" and delivery.body == ISSUE.data_bytes()


def test_a_corrupt_message_is_recorded_without_jobs() -> None:
    message = event_message(ISSUE)
    broken = Message(message.stream, 8, message.msg_id, message.headers, b"{not json", 1)
    matcher = Matcher(
        [
            AppletSpec.model_validate(
                {
                    "name": "w",
                    "runtime": "http",
                    "url": "http://x.invalid",
                    "on": [{"type": "com.github.*", "when": ".data.x"}],
                }
            )
        ]
    )
    delivery, jobs, outbound = plan(broken, matcher, NOW)
    assert delivery.id == "d-1" and delivery.status == DeliveryStatus.UNMATCHED
    assert jobs == [] and outbound == []


def test_a_message_without_event_headers_is_recorded_with_defaults_and_logged() -> None:
    """Nothing but its source: the delivery takes the message id, an unknown type, no time, the
    time it was planned and no vendor headers; the log names the message and the error."""
    bare = Message(m.EVENTS, 9, "github:bare-1", {m.H_SOURCE: "github"}, b"{}", 1)
    with capture_logs() as logs:
        delivery, jobs, outbound = plan(bare, Matcher([spec("a", "com.github.*")]), NOW)
    assert (delivery.source, delivery.id, delivery.type, delivery.subject, delivery.time) == (
        "github",
        "github:bare-1",
        "unknown",
        None,
        "",
    )
    assert (delivery.received_at, delivery.attributes, delivery.headers) == (NOW, {}, {})
    assert (delivery.status, delivery.jobs_total, delivery.body) == ("unmatched", 0, b"{}")
    assert jobs == [] and outbound == []
    assert logs == [
        {
            "event": "event unreadable, recorded without jobs",
            "log_level": "error",
            "error": "'id'",
            "seq": 9,
        }
    ]


def test_a_dispatched_event_keeps_its_time_and_is_logged_with_its_applets() -> None:
    matcher = Matcher([spec("a", "com.github.issues.*"), spec("c", "com.github.*")])
    with capture_logs() as logs:
        delivery, jobs, _ = plan(event_message(ISSUE), matcher, NOW)
    assert delivery.time == ISSUE.time
    assert [(j.source, j.delivery_id, j.updated_at) for j in jobs] == [("github", "d-1", NOW)] * 2
    assert logs == [
        {
            "event": "event dispatched",
            "log_level": "debug",
            "delivery_id": "d-1",
            "type": "com.github.issues.opened",
            "applets": ["a", "c"],
        }
    ]
    with capture_logs() as unmatched:
        plan(event_message(ISSUE), Matcher([spec("b", "x.y")]), NOW)
    assert unmatched == []  # an event no applet wants is not announced
