"""The engine's flow and data: set, switch, for, fork, do, raise, wait, if, then, timeouts, and
the data flow of input/output/export, against the DSL reference."""

from __future__ import annotations

import textwrap

from ghapplets.blueprints.engine import datetime_descriptor
from ghapplets.blueprints.errors import ErrorKind
from ghapplets.testing.blueprints import BlueprintHarness
from tests.blueprints.conftest import blueprint


def names(report) -> list[str]:
    return [t.name for t in report.tasks]


def test_set_passes_its_value_on_as_the_next_input(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - first:
                  set:
                    size: ${ .size * 2 }
                    shape: circle
              - second:
                  set: ${ .size + 1 }
        """),
        {"size": 5},
    )
    assert report.status == "completed"
    assert report.output == 11
    assert names(report) == ["first", "second"]
    assert report.tasks[0].output == {"size": 10, "shape": "circle"}
    assert [t.reference for t in report.tasks] == ["/do/0/first", "/do/1/second"]


def test_data_flow_input_from_output_as_and_export_as(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            input:
              from: ${ .order }
            do:
              - pick:
                  input:
                    from: ${ .items }
                  set:
                    count: ${ length }
                  output:
                    as: ${ .count }
                  export:
                    as: '${ $context + { counted: $output } }'
              - read:
                  set:
                    counted: ${ $context.counted }
                    previous: ${ . }
                    id: ${ $context.id }
            output:
              as: ${ .counted + .previous }
        """),
        {"order": {"id": "o1", "items": [1, 2, 3]}},
    )
    assert report.status == "completed", report.error
    assert report.tasks[0].input == [1, 2, 3]
    assert report.tasks[0].output == 3
    assert report.output == 6


def test_the_initial_context_is_the_transformed_input(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            input:
              from: '${ {k: .a} }'
            do:
              - look:
                  set: ${ $context }
        """),
        {"a": 1},
    )
    assert report.output == {"k": 1}


def test_descriptors_reach_the_expressions(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - describe:
                  set:
                    task: ${ $task.name }
                    ref: ${ $task.reference }
                    raw: ${ $workflow.input }
                    id: ${ $workflow.id }
                    runtime: ${ $runtime.name }
                    started: ${ $workflow.startedAt.epoch.seconds }
        """),
        {"x": 1},
    )
    assert report.output == {
        "task": "describe",
        "ref": "/do/0/describe",
        "raw": {"x": 1},
        "id": "test-run",
        "runtime": "ghapplets",
        "started": int(harness.clock.now()),
    }


def test_switch_takes_the_first_matching_case_then_the_default(harness: BlueprintHarness) -> None:
    text = blueprint("""
        do:
          - route:
              switch:
                - high:
                    when: .priority == "high"
                    then: escalate
                - low:
                    when: .priority == "low"
                    then: resolve
                - default:
                    then: unknown
          - escalate:
              set: escalated
              then: end
          - resolve:
              set: resolved
              then: end
          - unknown:
              set: unknown
    """)
    assert harness.run(text, {"priority": "high"}).output == "escalated"
    assert harness.run(text, {"priority": "low"}).output == "resolved"
    report = harness.run(text, {"priority": "medium"})
    assert report.output == "unknown"
    assert names(report) == ["route", "unknown"]


def test_switch_without_a_match_or_default_continues(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - route:
                  switch:
                    - high:
                        when: .priority == "high"
                        then: end
              - next:
                  set: went-on
        """),
        {"priority": "none"},
    )
    assert report.output == "went-on"


def test_then_jumps_back_and_loops_with_distinct_steps(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - inc:
                  set:
                    n: ${ .n + 1 }
              - check:
                  switch:
                    - again:
                        when: .n < 3
                        then: inc
                    - done:
                        then: continue
              - last:
                  set: ${ .n }
        """),
        {"n": 0},
    )
    assert report.output == 3
    assert names(report) == ["inc", "check", "inc", "check", "inc", "check", "last"]


def test_exit_ends_only_the_current_scope(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - outer:
                  do:
                    - one:
                        set: '${ 1 }'
                        then: exit
                    - two:
                        set: '${ 2 }'
              - after:
                  set: ${ . + 10 }
        """)
    )
    assert report.output == 11
    assert names(report) == ["one", "outer", "after"]


def test_end_ends_the_whole_workflow_from_inside(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - outer:
                  do:
                    - one:
                        set: '${ 1 }'
                        then: end
              - after:
                  set: '${ 99 }'
        """)
    )
    assert report.output == 1
    assert "after" not in names(report)


def test_if_skips_a_task_and_passes_its_raw_input_on(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - maybe:
                  if: ${ .go }
                  set: ran
        """),
        {"go": False},
    )
    assert report.output == {"go": False}
    assert report.tasks[0].status == "skipped"
    assert (
        harness.run(
            blueprint("""
            do:
              - maybe:
                  if: ${ .go }
                  set: ran
        """),
            {"go": True},
        ).output
        == "ran"
    )


def test_for_iterates_with_its_variables_and_chains_outputs(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - loop:
                  for:
                    each: pet
                    in: ${ .pets }
                    at: i
                  do:
                    - add:
                        set:
                          names: ${ .names + [$pet.name] }
                          last: ${ $i }
                          pets: ${ .pets }
        """),
        {"pets": [{"name": "a"}, {"name": "b"}, {"name": "c"}], "names": []},
    )
    assert report.status == "completed", report.error
    assert report.output["names"] == ["a", "b", "c"]
    assert report.output["last"] == 2
    assert names(report) == ["add", "add", "add", "loop"]


def test_for_default_variable_names_and_while(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - loop:
                  for:
                    in: ${ .items }
                  while: ${ .total < 5 }
                  do:
                    - add:
                        set:
                          total: ${ .total + $item }
                          items: ${ .items }
                          at: ${ $index }
        """),
        {"items": [2, 2, 2, 2], "total": 0},
    )
    assert report.output["total"] == 6  # the third iteration starts at 4 < 5, the fourth at 6
    assert report.output["at"] == 2


def test_for_over_a_non_list_is_an_expression_error(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - loop:
                  for:
                    in: ${ .n }
                  do:
                    - noop:
                        set: '${ 1 }'
        """),
        {"n": 3},
    )
    assert report.status == "faulted"
    assert report.error["type"] == ErrorKind.EXPRESSION.type
    assert report.error["instance"] == "/do/0/loop"
    assert report.error["detail"] == "for.in gave a int, not a list"


def test_fork_returns_every_branch_output_in_declared_order(harness: BlueprintHarness) -> None:
    harness.mock_http("GET", "https://slow.example/*", {"slow": True})
    report = harness.run(
        blueprint("""
            do:
              - both:
                  fork:
                    branches:
                      - slow:
                          do:
                            - pause:
                                wait:
                                  seconds: 5
                            - get:
                                call: http
                                with:
                                  method: get
                                  endpoint: https://slow.example/x
                      - fast:
                          set: fast
        """)
    )
    assert report.status == "completed", report.error
    assert report.output == [{"slow": True}, "fast"]
    refs = {t.reference for t in report.tasks}
    assert "/do/0/both/fork/branches/1/fast" in refs


def test_fork_compete_keeps_the_first_branch_to_finish(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - race:
                  fork:
                    compete: true
                    branches:
                      - tortoise:
                          do:
                            - crawl:
                                wait: PT10S
                            - arrive:
                                set: tortoise
                      - hare:
                          do:
                            - run:
                                wait: PT1S
                            - arrive:
                                set: hare
        """)
    )
    assert report.output == "hare"
    assert "tortoise" not in [t.output for t in report.tasks]


def test_fork_fault_faults_the_fork(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - both:
                  fork:
                    branches:
                      - bad:
                          raise:
                            error:
                              type: https://example.com/bad
                              status: 418
                      - good:
                          set: fine
        """)
    )
    assert report.status == "faulted"
    assert report.error["status"] == 418
    assert report.error["instance"] == "/do/0/both/fork/branches/0/bad"


def test_raise_inline_faults_with_the_error_and_its_pointer(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - fail:
                  raise:
                    error:
                      type: https://serverlessworkflow.io/spec/1.0.0/errors/validation
                      status: 400
                      title: Bad ticket
                      detail: ${ "no priority on " + .id }
        """),
        {"id": "T-1"},
    )
    assert report.status == "faulted"
    assert report.error == {
        "type": "https://serverlessworkflow.io/spec/1.0.0/errors/validation",
        "status": 400,
        "title": "Bad ticket",
        "detail": "no priority on T-1",
        "instance": "/do/0/fail",
    }


def test_raise_reusable_error(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            use:
              errors:
                notFound:
                  type: https://example.com/errors/not-found
                  status: 404
                  title: Not found
            do:
              - fail:
                  raise:
                    error: notFound
        """)
    )
    assert report.error["type"] == "https://example.com/errors/not-found"
    assert report.error["status"] == 404
    assert report.error["instance"] == "/do/0/fail"


def test_wait_lets_virtual_time_pass(harness: BlueprintHarness) -> None:
    start = harness.clock.now()
    report = harness.run(
        blueprint("""
            do:
              - pause:
                  wait:
                    hours: 2
                    minutes: 30
              - later:
                  wait: PT15M
        """),
        {"kept": True},
    )
    assert report.output == {"kept": True}
    assert harness.clock.now() - start == 2.5 * 3600 + 15 * 60


def test_task_timeout_raises_a_timeout_error_that_try_catches(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - guarded:
                  try:
                    - slow:
                        wait:
                          seconds: 60
                        timeout:
                          after:
                            seconds: 5
                  catch:
                    errors:
                      with:
                        type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout
                    as: problem
                    do:
                      - report:
                          set:
                            status: ${ $problem.status }
                            instance: ${ $problem.instance }
        """)
    )
    assert report.status == "completed", report.error
    assert report.output == {"status": 408, "instance": "/do/0/guarded/try/0/slow"}


def test_workflow_timeout_faults_the_run(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            use:
              timeouts:
                short:
                  after: PT1M
            timeout: short
            do:
              - long:
                  wait: PT1H
        """)
    )
    assert report.status == "faulted"
    assert report.error["type"] == ErrorKind.TIMEOUT.type
    assert report.error["status"] == 408


def test_input_schema_refuses_bad_input(harness: BlueprintHarness) -> None:
    text = blueprint("""
        input:
          schema:
            format: json
            document:
              type: object
              required: [id]
              properties:
                id:
                  type: string
        do:
          - ok:
              set: ${ .id }
    """)
    report = harness.run(text, {"id": 7})
    assert report.status == "faulted"
    assert report.error["type"] == ErrorKind.VALIDATION.type
    assert report.error["instance"] == "/input"
    assert harness.run(text, {"id": "7"}).output == "7"


def test_task_output_schema_is_checked_after_output_as(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - make:
                  set:
                    n: 1
                  output:
                    as: ${ .n }
                    schema:
                      format: json
                      document:
                        type: string
        """)
    )
    assert report.status == "faulted"
    assert report.error["type"] == ErrorKind.VALIDATION.type
    assert report.error["instance"] == "/do/0/make"


def test_an_expression_that_fails_is_an_expression_error(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - bad:
                  set: ${ .name + 1 }
        """),
        {"name": "x"},
    )
    assert report.status == "faulted"
    assert report.error["type"] == ErrorKind.EXPRESSION.type
    assert report.error["status"] == 400
    assert report.error["instance"] == "/do/0/bad"


def test_secrets_are_bound_and_a_missing_one_is_refused(harness: BlueprintHarness) -> None:
    text = blueprint("""
        use:
          secrets: [apiKey]
        do:
          - read:
              set: ${ $secrets.apiKey | length }
    """)
    missing = harness.run(text)
    assert missing.status == "faulted"
    assert missing.error["type"] == ErrorKind.AUTHORIZATION.type
    assert missing.error["status"] == 403
    harness.secrets["apiKey"] = "abcd"
    assert harness.run(text).output == 4


def test_a_date_time_descriptor_is_iso_8601_in_utc_and_epoch_time() -> None:
    assert datetime_descriptor(1_700_000_000.25) == {
        "iso8601": "2023-11-14T22:13:20.250Z",
        "epoch": {"seconds": 1_700_000_000, "milliseconds": 1_700_000_000_250},
    }


def race(*branches: str) -> str:
    """A blueprint whose one task is a competing fork of ``branches`` (YAML list items)."""
    items = "\n".join(textwrap.indent(textwrap.dedent(b).strip(), " " * 10) for b in branches)
    return blueprint(
        "do:\n  - race:\n      fork:\n        compete: true\n        branches:\n" + items
    )


def raising(name: str, status: int) -> str:
    return f"""
        - {name}:
            raise:
              error:
                type: https://example.com/{name}
                status: {status}
    """


def test_fork_compete_waits_past_a_faulted_branch_for_one_that_finishes(
    harness: BlueprintHarness,
) -> None:
    finishes = """
        - finishes:
            do:
              - run:
                  wait: PT1S
              - arrive:
                  set: finished
    """
    report = harness.run(race(raising("stumbles", 400), finishes))
    assert report.status == "completed", report.error
    assert report.output == "finished"


def test_fork_compete_with_every_branch_faulted_faults_with_the_first_branchs_error(
    harness: BlueprintHarness,
) -> None:
    report = harness.run(race(raising("first", 400), raising("second", 409)))
    assert report.status == "faulted"
    assert (report.error["type"], report.error["status"]) == ("https://example.com/first", 400)
