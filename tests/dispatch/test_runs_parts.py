"""The pure parts of the runs in the worker: listener rows, which events go to a listener,
schedule slots, and the messages that move runs and carry emitted events."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from ghapplets.blueprints.host import Listener
from ghapplets.broker.base import EVENTS, JOBS
from ghapplets.dispatch import messages as m
from ghapplets.dispatch.runs import (
    candidate,
    emitted_message,
    latest_slot,
    listener_rows,
    run_message,
)
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
