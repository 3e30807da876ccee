"""The broker messages of events and jobs (:mod:`ghapplets.dispatch.messages`), sans I/O: their
streams, ids and headers, what of the vendor's headers they keep, and the event they carry."""

from __future__ import annotations

import orjson

from ghapplets.broker.base import EVENTS, JOBS, Message
from ghapplets.dispatch import messages as m
from ghapplets.events import CloudEvent

EVENT = CloudEvent(
    id="d-1",
    source="https://github.example.com/octo/repo",
    type="com.github.issues.opened",
    data={"issue": {"number": 7}},
    subject="octo/repo#7",
    time="2026-12-04T10:00:00Z",
    extensions={"ghinstallation": "42"},
)
BODY = b'{"issue":{"number":7}}'


def as_received(message: m.OutboundMessage) -> Message:
    """The message as a consumer gets it back from the broker."""
    return Message(message.stream, 1, message.msg_id, dict(message.headers), message.data, 1)


def test_a_job_id_names_the_source_the_delivery_and_the_applet() -> None:
    assert m.job_id("github", "d-1", "labeler") == "github:d-1:labeler"


def test_an_event_message_carries_the_event_and_its_headers() -> None:
    out = m.event_message("github", EVENT, BODY, {"x-github-event": "issues"}, 1733300000.25)
    assert out.stream == EVENTS
    assert out.msg_id == "github:d-1"  # the broker deduplicates on it
    assert out.data == BODY
    assert out.headers["ce-id"] == "d-1" and out.headers["ce-subject"] == "octo/repo#7"
    assert out.headers["ce-ghinstallation"] == "42"
    assert out.headers[m.H_SOURCE] == "github"
    assert float(out.headers[m.H_RECEIVED_AT]) == 1733300000.25
    assert orjson.loads(out.headers[m.H_VENDOR_HEADERS]) == {"x-github-event": "issues"}
    again = m.event_of(as_received(out))
    assert again.id == EVENT.id and again.data == EVENT.data and again.subject == EVENT.subject
    assert again.extensions == {"ghinstallation": "42"}


def test_a_replay_key_is_the_message_id_when_given() -> None:
    out = m.event_message("jira", EVENT, BODY, {}, 1.0, dedup_key="jira:body:abc")
    assert out.msg_id == "jira:body:abc"


def test_an_event_message_keeps_no_credential_of_the_vendor_headers() -> None:
    vendor = {
        "authorization": "Bearer t0ken",  # a credential header, whatever the source
        "x-hub-signature-256": "sha256=abc",
        "x-splunk-token": "sp1unk",  # the source's own credential header
        "x-note": "made with s3cret-value inside",  # a secret under another name
        "x-github-delivery": "d-1",
        "user-agent": "GitHub-Hookshot/1",
    }
    out = m.event_message(
        "github",
        EVENT,
        BODY,
        vendor,
        1.0,
        credentials=("x-splunk-token",),
        secrets=(b"s3cret-value",),
    )
    kept = orjson.loads(out.headers[m.H_VENDOR_HEADERS])
    assert kept == {"x-github-delivery": "d-1", "user-agent": "GitHub-Hookshot/1"}


def test_a_job_message_names_its_delivery_and_applet_and_has_no_body() -> None:
    event_headers = {
        **m.event_message("github", EVENT, BODY, {"x-a": "b"}, 99.5).headers,
        "traceparent": "00-abc-def-01",  # anything else of the event's stays behind
    }
    out = m.job_message(event_headers, "github", "d-1", "labeler")
    assert out.stream == JOBS
    assert out.msg_id == "github:d-1:labeler"  # one job per delivery and applet
    assert out.data == b""
    assert out.headers == {
        **EVENT.binary_headers(),
        m.H_SOURCE: "github",
        m.H_DELIVERY: "d-1",
        m.H_APPLET: "labeler",
        m.H_JOB_ID: "github:d-1:labeler",
        m.H_RECEIVED_AT: "99.5",
    }
    event = m.event_of(as_received(out), body=BODY)  # the body comes from the delivery
    assert event.id == "d-1" and event.data == {"issue": {"number": 7}}


def test_a_replayed_job_message_has_an_id_of_its_own_and_counts_on_from_its_attempts() -> None:
    headers = EVENT.binary_headers()  # (an event without a received time)
    out = m.job_message(headers, "github", "d-1", "labeler", replay="r1", attempt_offset=3)
    assert out.msg_id == "github:d-1:labeler#replay-r1"  # not a duplicate of the first
    assert out.headers[m.H_JOB_ID] == "github:d-1:labeler"  # the same job
    assert out.headers[m.H_ATTEMPT_OFFSET] == "3"
    assert m.H_RECEIVED_AT not in out.headers
    first = m.job_message(headers, "github", "d-1", "labeler")
    assert m.H_ATTEMPT_OFFSET not in first.headers


def test_event_of_can_leave_the_data_unparsed() -> None:
    out = m.event_message("github", EVENT, b"not json at all", {}, 1.0)
    event = m.event_of(as_received(out), with_data=False)
    assert event.id == "d-1" and event.data is None
