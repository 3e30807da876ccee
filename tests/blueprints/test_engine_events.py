"""emit and listen: the consumption strategies, correlation, read modes, foreach, timeouts."""

from __future__ import annotations

from ghapplets.blueprints.errors import ErrorKind
from ghapplets.blueprints.listening import (
    MAX_MATCHED_TEXT,
    Consumption,
    attribute_matches,
    filter_matches,
    read_event,
)
from ghapplets.testing.blueprints import BlueprintHarness
from tests.blueprints.conftest import blueprint

TEMP = "com.fake-hospital.vitals.measurements.temperature"
BPM = "com.fake-hospital.vitals.measurements.bpm"


def vitals_listen(strategy: str, extra: str = "") -> str:
    return blueprint(f"""
        do:
          - callDoctor:
              listen:
                to:
{strategy}
{extra}
    """)


ANY_OR_ALL = """                  {kind}:
                  - with:
                      type: {temp}
                      data: ${{ .temperature > 38 }}
                  - with:
                      type: {bpm}
                      data: ${{ .bpm < 60 or .bpm > 100 }}"""


def test_listen_one_takes_the_first_matching_event(harness: BlueprintHarness) -> None:
    harness.event({"type": "other", "data": {"n": 0}})
    harness.event({"type": "race.started", "data": {"n": 1}})
    harness.event({"type": "race.started", "data": {"n": 2}})
    report = harness.run(
        vitals_listen("""                  one:
                    with:
                      type: race.started""")
    )
    assert report.status == "completed", report.error
    assert report.output == [{"n": 1}]


def test_listen_any_with_data_expressions(harness: BlueprintHarness) -> None:
    harness.event({"type": TEMP, "data": {"temperature": 37}})
    harness.event({"type": BPM, "data": {"bpm": 120}})
    report = harness.run(vitals_listen(ANY_OR_ALL.format(kind="any", temp=TEMP, bpm=BPM)))
    assert report.output == [{"bpm": 120}]


def test_listen_all_waits_for_each_filter_and_reads_envelopes(harness: BlueprintHarness) -> None:
    harness.event({"type": BPM, "data": {"bpm": 40}, "id": "b1"})
    harness.event({"type": BPM, "data": {"bpm": 30}, "id": "b2"})
    harness.event({"type": TEMP, "data": {"temperature": 39}, "id": "t1"})
    report = harness.run(
        vitals_listen(
            ANY_OR_ALL.format(kind="all", temp=TEMP, bpm=BPM),
            "                read: envelope",
        )
    )
    assert report.status == "completed", report.error
    assert [e["id"] for e in report.output] == ["b1", "t1"]
    assert report.output[0]["type"] == BPM


def test_listen_all_without_every_event_stays_waiting(harness: BlueprintHarness) -> None:
    harness.event({"type": BPM, "data": {"bpm": 40}})
    report = harness.run(vitals_listen(ANY_OR_ALL.format(kind="all", temp=TEMP, bpm=BPM)))
    assert report.status == "waiting"


def test_listen_any_until_a_condition_on_the_consumed_events(harness: BlueprintHarness) -> None:
    for n in range(6):
        harness.event({"type": "reading", "data": {"n": n}})
    report = harness.run(
        vitals_listen("""                  any: []
                  until: ( . | length ) > 3""")
    )
    assert report.output == [{"n": 0}, {"n": 1}, {"n": 2}, {"n": 3}]


def test_listen_until_events_are_not_in_the_output(harness: BlueprintHarness) -> None:
    harness.event({"type": TEMP, "data": {"temperature": 39}})
    harness.event({"type": "checked-out", "data": {}})
    harness.event({"type": BPM, "data": {"bpm": 130}})
    report = harness.run(
        vitals_listen(
            ANY_OR_ALL.format(kind="any", temp=TEMP, bpm=BPM)
            + """
                  until:
                    one:
                      with:
                        type: checked-out"""
        )
    )
    assert report.output == [{"temperature": 39}]


def test_listen_foreach_runs_tasks_per_event(harness: BlueprintHarness) -> None:
    harness.mock_http("POST", "https://chat.example/room/*", {"posted": True})
    for n in range(3):
        harness.event({"type": "gossip", "data": {"n": n}})
    report = harness.run(
        blueprint("""
            do:
              - listenToGossips:
                  listen:
                    to:
                      any: []
                      until: ${ length >= 3 }
                  foreach:
                    item: event
                    at: i
                    do:
                      - post:
                          call: http
                          with:
                            method: post
                            endpoint: https://chat.example/room/1
                            body:
                              n: ${ $event.n }
                              at: ${ $i }
                    output:
                      as: ${ $event.n * 10 }
        """)
    )
    assert report.status == "completed", report.error
    assert report.output == [0, 10, 20]
    bodies = [c.data for c in harness.calls if c.kind == "http"]
    assert bodies == [{"n": 0, "at": 0}, {"n": 1, "at": 1}, {"n": 2, "at": 2}]


def test_listen_correlates_on_the_first_value(harness: BlueprintHarness) -> None:
    harness.event({"type": "temperature", "roomid": "kitchen", "data": {"reading": 20}})
    harness.event({"type": "humidity", "roomid": "hall", "data": {"reading": 50}})
    harness.event({"type": "humidity", "roomid": "kitchen", "data": {"reading": 40}})
    report = harness.run(
        blueprint("""
            do:
              - consumeReading:
                  listen:
                    to:
                      all:
                        - with:
                            type: temperature
                          correlate:
                            roomId:
                              from: .roomid
                        - with:
                            type: humidity
                          correlate:
                            roomId:
                              from: .roomid
        """)
    )
    assert report.output == [{"reading": 20}, {"reading": 40}]


def test_listen_correlation_expect_from_the_input(harness: BlueprintHarness) -> None:
    harness.event({"type": "approval", "data": {"change": "CHG2", "ok": True}})
    harness.event({"type": "approval", "data": {"change": "CHG1", "ok": True}})
    report = harness.run(
        blueprint("""
            do:
              - waitApproval:
                  listen:
                    to:
                      one:
                        with:
                          type: approval
                        correlate:
                          change:
                            from: .data.change
                            expect: ${ .change }
        """),
        {"change": "CHG1"},
    )
    assert report.output == [{"change": "CHG1", "ok": True}]


def test_listen_timeout_is_a_timeout_error(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - waitApproval:
                  listen:
                    to:
                      one:
                        with:
                          type: approval
                  timeout:
                    after:
                      days: 3
        """)
    )
    assert report.status == "faulted"
    assert report.error["type"] == ErrorKind.TIMEOUT.type
    assert report.error["instance"] == "/do/0/waitApproval"


def test_emit_fills_in_the_cloudevent_and_a_listener_gets_it(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - both:
                  fork:
                    branches:
                      - listener:
                          listen:
                            to:
                              one:
                                with:
                                  type: com.petstore.order.placed.v1
                      - emitter:
                          do:
                            - later:
                                wait: PT1S
                            - emitEvent:
                                emit:
                                  event:
                                    with:
                                      source: https://petstore.com
                                      type: com.petstore.order.placed.v1
                                      data:
                                        quantity: ${ .quantity }
        """),
        {"quantity": 101},
    )
    assert report.status == "completed", report.error
    assert report.output[0] == [{"quantity": 101}]
    emitted = report.output[1]  # emit outputs the event it emitted
    assert emitted["type"] == "com.petstore.order.placed.v1"
    assert emitted["source"] == "https://petstore.com"
    assert emitted["data"] == {"quantity": 101}
    assert emitted["specversion"] == "1.0"
    assert emitted["id"] and emitted["time"]


def test_emit_without_a_type_is_a_validation_error(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - emitEvent:
                  emit:
                    event:
                      with:
                        source: https://petstore.com
                        type: ${ .missing }
        """)
    )
    assert report.status == "faulted"
    assert report.error["type"] == ErrorKind.VALIDATION.type


def test_filter_attributes_match_exactly_or_as_regular_expressions() -> None:
    def evaluate(expression: str, data: object) -> object:
        raise AssertionError("no expression here")

    spec = {"with": {"type": r"com\.github\.pull_request\..*", "source": "/github"}}
    event = {"type": "com.github.pull_request.closed", "source": "/github"}
    assert filter_matches(spec, event, evaluate, {})
    assert not filter_matches(spec, {**event, "source": "/gitlab"}, evaluate, {})
    assert not filter_matches(spec, {**event, "type": "com.github.push"}, evaluate, {})
    assert not filter_matches({"with": {"type": "x"}}, {"source": "/a"}, evaluate, {})


def test_consumption_all_takes_one_event_per_filter() -> None:
    def evaluate(expression: str, data: object) -> object:
        raise AssertionError("no expression here")

    c = Consumption({"all": [{"with": {"type": "a"}}, {"with": {"type": "b"}}]}, evaluate)
    a1, a2, b1 = {"type": "a"}, {"type": "a"}, {"type": "b"}
    assert c.offer(a1, lambda: False)
    assert not c.offer(a2, lambda: False)
    assert not c.done
    assert c.offer(b1, lambda: False)
    assert c.done
    assert c.consumed == [a1, b1]


def test_foreach_defaults_its_names_and_exports_each_output(harness: BlueprintHarness) -> None:
    for n in (1, 2):
        harness.event({"type": "com.example.tick", "data": {"id": n}})
    report = harness.run(
        blueprint("""
            do:
              - hear:
                  listen:
                    to:
                      any: []
                      until: ${ length >= 2 }
                  foreach:
                    do:
                      - seen:
                          set:
                            id: ${ .id }
                            at: ${ $index }
                            item: ${ $item.id }
                    output:
                      as: '${ {id: .id, at: .at, item: .item, task: $task.name} }'
                    export:
                      as: '${ {ids: (($context.ids // []) + [$output.id]), last: .id} }'
              - after:
                  set: ${ $context }
        """)
    )
    assert report.status == "completed", report.error
    assert next(t for t in report.tasks if t.name == "hear").output == [
        {"id": 1, "at": 0, "item": 1, "task": "hear"},
        {"id": 2, "at": 1, "item": 2, "task": "hear"},
    ]
    assert report.output == {"ids": [1, 2], "last": 2}


def test_foreach_without_tasks_reads_each_event(harness: BlueprintHarness) -> None:
    for n in (1, 2):
        harness.event({"type": "com.example.tick", "data": {"id": n}})
    report = harness.run(
        blueprint("""
            do:
              - hear:
                  listen:
                    to:
                      any: []
                      until: ${ length >= 2 }
                  foreach:
                    output:
                      as: ${ .id * 10 }
        """)
    )
    assert report.status == "completed", report.error
    assert report.output == [10, 20]


def test_emit_fills_in_a_stable_id_the_time_in_utc_and_the_content_type(
    harness: BlueprintHarness,
) -> None:
    text = blueprint("""
        do:
          - announce:
              emit:
                event:
                  with:
                    source: https://ghapplets.example
                    type: com.example.announced
                    subject: ${ $task.name }
                    data:
                      n: ${ .n }
          - bare:
              emit:
                event:
                  with:
                    source: https://ghapplets.example
                    type: com.example.bare
    """)
    first = harness.run(text, {"n": 1})
    assert first.status == "completed", first.error
    announced = first.tasks[0].output
    assert announced["subject"] == "announce"
    assert announced["datacontenttype"] == "application/json"
    assert announced["time"] == "2023-11-14T22:13:20+00:00"  # the clock's start, in UTC
    assert len(announced["id"]) == 32 and int(announced["id"], 16) >= 0
    assert "datacontenttype" not in first.output  # no data, no content type
    again = harness.run(text, {"n": 2})
    assert again.tasks[0].output["id"] == announced["id"]  # the same step: the same id
    assert first.output["id"] != announced["id"]


def test_emit_refuses_a_source_that_is_not_text(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - announce:
                  emit:
                    event:
                      with:
                        source: ${ 5 }
                        type: com.example.announced
        """)
    )
    assert report.status == "faulted"
    assert report.error["detail"] == "the event to emit has no source"
    assert report.error["instance"] == "/do/0/announce"


def test_attributes_that_are_not_text_match_by_their_json() -> None:
    assert attribute_matches("42", 42)
    assert attribute_matches(r"\{.*\}", {"a": 1})
    assert not attribute_matches("null", None)  # a missing attribute never matches
    assert attribute_matches(5, 5) and not attribute_matches(5, 6)
    assert attribute_matches({"a": "1", "b": {"c": "x"}}, {"a": "1", "b": {"c": "x"}, "d": 0})
    assert not attribute_matches({"a": "1"}, {"b": "1"})
    assert not attribute_matches({"a": "1"}, {"a": "2"})
    assert not attribute_matches({"a": "1"}, "a")
    assert not attribute_matches("[", "[x")  # not a valid regular expression: no match


def test_a_regular_expression_is_tried_on_attributes_up_to_a_limit() -> None:
    longest = "a" * MAX_MATCHED_TEXT
    assert attribute_matches("a+", longest)
    assert not attribute_matches("a+", longest + "a")
    assert attribute_matches(longest + "a", longest + "a")  # equality needs no expression


def test_an_expression_attribute_matches_when_true_or_equal_to_the_attribute() -> None:
    answers = {"${ true }": True, "${ false }": False, "${ same }": "x", "${ other }": "y"}

    def evaluate(expression: str, data: object) -> object:
        return answers[expression]

    def matches(expression: str) -> bool:
        return filter_matches({"with": {"subject": expression}}, {"subject": "x"}, evaluate, {})

    assert [matches(e) for e in answers] == [True, False, True, False]


def test_until_events_are_never_consumed_even_before_it_is_done() -> None:
    def evaluate(expression: str, data: object) -> object:
        raise AssertionError("no expression here")

    strategy = {
        "any": [],
        "until": {"all": [{"with": {"type": "stop1"}}, {"with": {"type": "stop2"}}]},
    }
    c = Consumption(strategy, evaluate)
    x1, stop1, x2, stop2, x3 = ({"type": t} for t in ("x", "stop1", "x", "stop2", "x"))
    assert [c.offer(e, lambda: False) for e in (x1, stop1, x2, stop2, x3)] == [
        True,
        False,
        True,
        False,
        False,
    ]
    assert c.consumed == [x1, x2]
    assert c.done


def test_a_consumption_that_is_done_takes_no_more() -> None:
    c = Consumption({"one": {"with": {"type": "a"}}}, lambda e, d: None)
    assert c.offer({"type": "a"}, lambda: False)
    assert not c.offer({"type": "a"}, lambda: False)


def test_listen_to_all_of_no_filters_is_done_at_once(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - nothing:
                  listen:
                    to:
                      all: []
        """)
    )
    assert report.status == "completed", report.error
    assert report.output == []


def test_read_modes_give_the_data_the_envelope_or_the_raw_text() -> None:
    event = {"type": "t", "data": {"a": 1}}
    assert read_event(event, "data") == {"a": 1}
    assert read_event(event, "envelope") == event
    assert read_event(event, "raw") == '{"a":1}'
    assert read_event({"type": "t", "data_base64": "aGk="}, "raw") == "aGk="


def test_listen_until_and_a_literal_correlation_see_the_task(harness: BlueprintHarness) -> None:
    for room in ("hall", "kitchen", "kitchen", "kitchen"):
        harness.event({"type": "reading", "roomid": room, "data": {"room": room}})
    report = harness.run(
        blueprint("""
            do:
              - readings:
                  listen:
                    to:
                      any:
                        - with:
                            type: reading
                          correlate:
                            room:
                              from: .roomid
                              expect: kitchen
                      until: ${ length >= $input.count }
        """),
        {"count": 2},
    )
    assert report.status == "completed", report.error
    assert report.output == [{"room": "kitchen"}, {"room": "kitchen"}]


def test_until_shares_the_correlation_of_the_events_it_ends(harness: BlueprintHarness) -> None:
    for kind, order in (("item", 1), ("stop", 2), ("item", 1), ("stop", 1), ("item", 1)):
        harness.event({"type": kind, "order": order, "data": {"kind": kind, "order": order}})
    report = harness.run(
        blueprint("""
            do:
              - items:
                  listen:
                    to:
                      any:
                        - with:
                            type: item
                          correlate:
                            order:
                              from: .order
                      until:
                        one:
                          with:
                            type: stop
                          correlate:
                            order:
                              from: .order
        """)
    )
    assert report.status == "completed", report.error
    assert report.output == [{"kind": "item", "order": 1}, {"kind": "item", "order": 1}]
