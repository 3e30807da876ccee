"""emit and listen: the consumption strategies, correlation, read modes, foreach, timeouts."""

from __future__ import annotations

from ghapplets.blueprints.errors import ErrorKind
from ghapplets.blueprints.listening import Consumption, filter_matches
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
