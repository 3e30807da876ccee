"""The pure parts of the runs in the worker: listener rows, which events go to a listener,
schedule slots, the messages that move runs and carry emitted events, and which blueprint a
subflow reference means."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from ghapplets.blueprints.host import Listener
from ghapplets.blueprints.loader import load_blueprints
from ghapplets.broker.base import EVENTS, JOBS, Message
from ghapplets.dispatch import messages as m
from ghapplets.dispatch.runs import (
    _TYPE_CHARS,
    Blueprints,
    candidate,
    emitted_message,
    event_documents,
    latest_slot,
    listener_rows,
    run_message,
)
from ghapplets.events import CloudEvent
from ghapplets.store.records import ListenerRecord


def rows(filters: list[dict], wants_all: bool = False) -> list[tuple[str | None, int]]:
    found = listener_rows("r1", Listener("/do/0/l", filters, wants_all), 5.0)
    assert all(r.run_id == "r1" and r.key == "/do/0/l" and r.created_at == 5.0 for r in found)
    return [(r.event_type, len(r.filters)) for r in found]


def test_a_listener_is_a_row_per_exact_type() -> None:
    assert rows([{"with": {"type": "com.github.push"}}, {"with": {"type": "com.x.y"}}]) == [
        ("com.github.push", 2),
        ("com.x.y", 2),
    ]
    assert rows([{"with": {"type": "a"}}, {"with": {"type": "a"}}]) == [("a", 2)]


def test_a_listener_that_may_want_any_type_is_one_row_for_every_event() -> None:
    assert rows([{"with": {"type": r"com\.github\..*"}}]) == [(None, 1)]
    assert rows([{"with": {"source": "/github"}}]) == [(None, 1)]
    assert rows([{"with": {"type": "${ .x }"}}]) == [(None, 1)]
    assert rows([{"with": {"type": "a"}}, {"with": {"source": "/s"}}]) == [(None, 2)]
    assert rows([], wants_all=True) == [(None, 0)]
    assert rows([{"with": {"type": "a"}}], wants_all=True) == [(None, 1)]


def row(filters: list[dict]) -> ListenerRecord:
    return ListenerRecord(run_id="r", key="k", event_type=None, filters=filters, created_at=0)


def test_an_event_goes_to_a_listener_whose_filter_attributes_it_matches() -> None:
    push = {"type": "com.github.push", "source": "/github", "data": {"n": 1}}
    assert candidate(row([{"with": {"type": "com.github.push"}}]), push)
    assert candidate(row([{"with": {"type": "x"}}, {"with": {"source": "/github"}}]), push)
    assert not candidate(row([{"with": {"type": "com.github.issues"}}]), push)
    # expressions are the run's to evaluate: the attributes decide here
    assert candidate(row([{"with": {"type": "com.github.push", "data": "${ .n > 5 }"}}]), push)
    assert candidate(row([]), push)


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_the_latest_slot_of_every_and_cron() -> None:
    now = at("2027-01-15T10:47:13")
    assert latest_slot({"every": {"hours": 1}}, now) == at("2027-01-15T10:00:00")
    assert latest_slot({"every": "PT15M"}, now) == at("2027-01-15T10:45:00")
    assert latest_slot({"cron": "30 2 * * *"}, now) == at("2027-01-15T02:30:00")
    assert latest_slot({"cron": "0 12 * * *"}, now) == at("2027-01-14T12:00:00")
    assert latest_slot({"after": "PT1M"}, now) is None
    assert latest_slot({"on": {"one": {}}}, now) is None


def test_a_run_message_names_its_run_and_cause() -> None:
    message = run_message("r-1", "start")
    assert message.stream == JOBS
    assert message.msg_id == "run:r-1:start"
    assert message.headers[m.H_RUN] == "r-1"
    assert run_message("r-1", "wake:5").msg_id != message.msg_id


def test_an_emitted_event_travels_like_a_webhook() -> None:
    event = {
        "specversion": "1.0",
        "id": "e-1",
        "source": "https://example.com/bp",
        "type": "com.example.done",
        "data": {"ok": True},
    }
    message = emitted_message(event)
    assert message.stream == EVENTS
    assert message.msg_id == "emit:e-1"
    assert message.headers[m.H_SOURCE] == "blueprints"
    assert message.headers["ce-type"] == "com.example.done"
    assert message.headers["ce-source"] == "https://example.com/bp"
    assert orjson.loads(message.data) == {"ok": True}


def test_a_type_of_every_allowed_character_is_still_exact() -> None:
    every = "".join(sorted(_TYPE_CHARS))
    assert rows([{"with": {"type": every}}]) == [(every, 1)]
    assert rows([{"with": {"type": every + "*"}}]) == [(None, 1)]


def test_every_of_no_time_has_no_slot_and_a_fraction_of_a_second_has() -> None:
    assert latest_slot({"every": "PT0S"}, 1000.7) is None
    assert latest_slot({"every": {"milliseconds": 500}}, 1000.7) == 1000.5
    assert latest_slot({"every": "PT0.25S"}, 1000.7) == 1000.5


def test_a_cron_slot_is_in_utc_whatever_the_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "JST-9")  # POSIX: needs no zone database
    time.tzset()
    try:
        # 20:47 UTC is already the 16th in Tokyo
        assert latest_slot({"cron": "30 2 * * *"}, at("2027-01-15T20:47:13")) == at(
            "2027-01-15T02:30:00"
        )
        assert latest_slot({"cron": "0 * * * *"}, at("2027-01-15T20:47:13")) == at(
            "2027-01-15T20:00:00"
        )
    finally:
        monkeypatch.undo()
        time.tzset()


def message(headers: dict[str, str], data: bytes = b"{}") -> Message:
    return Message(EVENTS, 1, "m", headers, data, 1)


def test_the_events_of_a_batch_leave_the_unreadable_out() -> None:
    event = CloudEvent(id="e-1", source="https://example.com", type="com.example.x", data={})
    good = m.event_message("github", event, b"{}", {}, 5.0)
    found = event_documents(
        [message({"ce-id": "x"}), message(good.headers, good.data), message({m.H_SOURCE: "s"})]
    )
    assert [(source, e.id, e.type) for source, e in found] == [("github", "e-1", "com.example.x")]


def test_the_worker_runs_the_subflow_version_a_reference_names(tmp_path: Path) -> None:
    """What the worker's runs call as a subflow: the exact version, or the highest."""
    for version in ("0.9.0", "0.10.0"):
        (tmp_path / f"child-{version}.yaml").write_text(
            "document: {dsl: '1.0.0', namespace: test, name: child, "
            f"version: '{version}'}}\ndo:\n  - v: {{set: {{x: 1}}}}\n"
        )
    programs = Blueprints(load_blueprints([tmp_path]))
    assert programs.find("test", "child", "latest").version == "0.10.0"
    assert programs.find("test", "child", "0.9.0").version == "0.9.0"
    with pytest.raises(LookupError, match=r"^test/child@2.0.0$"):
        programs.find("test", "child", "2.0.0")
