"""The engine's details a user reads: the runtime arguments each expression sees, the
variables of loops and cases, and what a fault says (its detail and instance)."""

from __future__ import annotations

from ghapplets.blueprints.errors import ErrorKind
from ghapplets.testing.blueprints import BlueprintHarness
from tests.blueprints.conftest import blueprint


def test_the_task_descriptor_holds_its_definition_input_output_and_start(
    harness: BlueprintHarness,
) -> None:
    start = harness.clock.now()
    report = harness.run(
        blueprint("""
            do:
              - pause:
                  wait: PT2S
              - describe:
                  input:
                    from: ${ .n }
                  set:
                    n: ${ . + 1 }
                  output:
                    as:
                      definition: ${ $task.definition.set }
                      input: ${ $task.input }
                      output: ${ $task.output }
                      started: ${ $task.startedAt.epoch.seconds }
                      value: ${ .n }  # an object of expressions, on the task's output
        """),
        {"n": 1},
    )
    assert report.status == "completed", report.error
    assert report.output == {
        "definition": {"n": "${ . + 1 }"},
        "input": {"n": 1},  # the task's raw input, before input.from
        "output": {"n": 2},
        "started": int(start) + 2,
        "value": 2,
    }


def test_workflow_expressions_see_every_runtime_argument_null_outside_a_task(
    harness: BlueprintHarness,
) -> None:
    report = harness.run(
        blueprint("""
            do:
              - one:
                  set: '${ 1 }'
            output:
              as: '${ [$input, $output, $task, $authorization] }'
        """)
    )
    assert report.status == "completed", report.error
    assert report.output == [None, None, None, None]


def test_a_schema_refusal_names_what_was_checked_and_where_it_failed(
    harness: BlueprintHarness,
) -> None:
    report = harness.run(
        blueprint("""
            input:
              schema:
                format: json
                document:
                  type: object
                  properties:
                    items:
                      type: array
                      items:
                        type: integer
            do:
              - ok:
                  set: '${ 1 }'
        """),
        {"items": [1, "two"]},
    )
    assert report.status == "faulted"
    assert report.error["detail"].startswith("the workflow input does not match its schema at ")
    assert "at /items/1: 'two' is not of type 'integer'" in report.error["detail"]


def test_the_workflow_output_schema_is_checked_after_output_as(
    harness: BlueprintHarness,
) -> None:
    text = blueprint("""
        do:
          - make:
              set:
                n: ${ .n }
        output:
          as: ${ .n }
          schema:
            format: json
            document:
              type: integer
    """)
    report = harness.run(text, {"n": "seven"})
    assert report.status == "faulted"
    assert report.error["type"] == ErrorKind.VALIDATION.type
    assert report.error["instance"] == "/output"
    assert report.error["detail"].startswith("the workflow output does not match its schema")
    assert harness.run(text, {"n": 7}).output == 7


def test_a_workflow_that_ends_within_its_timeout_completes(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            timeout:
              after: PT1M
            do:
              - short:
                  wait: PT30S
              - done:
                  set: in time
        """)
    )
    assert report.status == "completed", report.error
    assert report.output == "in time"


def test_a_workflow_timeout_faults_at_the_workflow(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            timeout:
              after: PT1M
            do:
              - long:
                  wait: PT1H
        """)
    )
    assert report.status == "faulted"
    assert report.error["instance"] == "/"
    assert report.error["detail"] == "the task did not finish within its timeout"


def test_a_workflow_timeout_that_is_no_duration_faults_at_the_workflow(
    harness: BlueprintHarness,
) -> None:
    report = harness.run(
        blueprint("""
            timeout:
              after: ${ "soon" }
            do:
              - one:
                  set: '${ 1 }'
        """)
    )
    assert report.status == "faulted"
    assert report.error["type"] == ErrorKind.CONFIGURATION.type
    assert report.error["instance"] == "/"
    assert report.error["detail"].startswith("not a duration")


def test_a_task_timeout_given_by_an_expression_reads_the_task_input(
    harness: BlueprintHarness,
) -> None:
    text = blueprint("""
        do:
          - slow:
              wait: PT10S
              timeout:
                after: ${ $input.limit }
    """)
    assert harness.run(text, {"limit": "PT1M"}).status == "completed"
    report = harness.run(text, {"limit": "PT5S"})
    assert report.status == "faulted"
    assert report.error["type"] == ErrorKind.TIMEOUT.type
    assert report.error["instance"] == "/do/0/slow"
    report = harness.run(text, {"limit": "later"})
    assert report.error["type"] == ErrorKind.CONFIGURATION.type
    assert report.error["instance"] == "/do/0/slow"


def test_for_over_nothing_passes_its_input_on(harness: BlueprintHarness) -> None:
    for items in ("${ .missing }", "${ [] }"):
        report = harness.run(
            blueprint(f"""
                do:
                  - loop:
                      for:
                        in: '{items}'
                      do:
                        - never:
                            set: ran
            """),
            {"kept": True},
        )
        assert report.status == "completed", report.error
        assert report.output == {"kept": True}
        assert [t.name for t in report.tasks] == ["loop"]


def test_nested_loops_and_while_see_the_enclosing_variables(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - outer:
                  for:
                    each: team
                    in: ${ .teams }
                  do:
                    - inner:
                        for:
                          each: member
                          in: ${ $team.members }
                        while: ${ $index < $team.cap }
                        do:
                          - add:
                              set:
                                teams: ${ .teams }
                                seen: ${ .seen + ["\\($team.name)/\\($member)"] }
        """),
        {
            "teams": [
                {"name": "a", "members": ["x", "y", "z"], "cap": 2},
                {"name": "b", "members": ["w"], "cap": 5},
            ],
            "seen": [],
        },
    )
    assert report.status == "completed", report.error
    assert report.output["seen"] == ["a/x", "a/y", "b/w"]


def test_a_switch_inside_a_loop_reads_the_loop_variables(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - loop:
                  for:
                    in: ${ .items }
                  do:
                    - route:
                        switch:
                          - even:
                              when: ${ $item % 2 == 0 }
                              then: keep
                          - odd:
                              then: exit
                    - keep:
                        set:
                          items: ${ .items }
                          kept: ${ .kept + [$item] }
        """),
        {"items": [1, 2, 3, 4], "kept": []},
    )
    assert report.status == "completed", report.error
    assert report.output["kept"] == [2, 4]


def test_a_fork_branch_that_ends_the_workflow_gives_its_output(
    harness: BlueprintHarness,
) -> None:
    report = harness.run(
        blueprint("""
            do:
              - split:
                  fork:
                    branches:
                      - stop:
                          set: stopped here
                          then: end
              - after:
                  set: not reached
        """)
    )
    assert report.status == "completed", report.error
    assert report.output == "stopped here"


def test_a_fork_faults_when_one_branch_does_while_another_waits_for_an_event(
    harness: BlueprintHarness,
) -> None:
    report = harness.run(
        blueprint("""
            do:
              - split:
                  fork:
                    branches:
                      - waits:
                          listen:
                            to:
                              one:
                                with:
                                  type: com.example.never
                      - fails:
                          raise:
                            error:
                              type: https://example.com/broken
                              status: 500
        """)
    )
    assert report.status == "faulted"
    assert report.error["type"] == "https://example.com/broken"


def test_catch_when_reads_the_error_by_its_name_and_the_task_input(
    harness: BlueprintHarness,
) -> None:
    def guarded(catch: str) -> str:
        return blueprint(f"""
            do:
              - guarded:
                  try:
                    - fail:
                        raise:
                          error:
                            type: https://example.com/flaky
                            status: 503
                  catch:
{catch}
                    do:
                      - handled:
                          set: handled
        """)

    named = "                    as: failure\n                    when: ${ $failure.status == 503 }"
    assert harness.run(guarded(named)).output == "handled"
    default = "                    when: ${ $error.status == 503 and $input.tolerate }"
    assert harness.run(guarded(default), {"tolerate": True}).output == "handled"
    assert harness.run(guarded(default), {"tolerate": False}).status == "faulted"


def test_catch_do_starts_from_the_try_input(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - guarded:
                  try:
                    - fail:
                        raise:
                          error:
                            type: https://example.com/broken
                            status: 500
                  catch:
                    do:
                      - recover:
                          set:
                            recovered: ${ .order }
        """),
        {"order": 7},
    )
    assert report.output == {"recovered": 7}


def test_if_sees_the_task_descriptor_and_the_loop_variables(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - loop:
                  for:
                    in: ${ .items }
                  do:
                    - maybe:
                        if: ${ $item > 1 and $task.name == "maybe" }
                        set:
                          items: ${ .items }
                          took: ${ .took + [$item] }
        """),
        {"items": [1, 2, 3], "took": []},
    )
    assert report.status == "completed", report.error
    assert report.output["took"] == [2, 3]
    skipped = report.tasks[0]
    assert (skipped.status, skipped.output) == ("skipped", {"items": [1, 2, 3], "took": []})


SCHEMA_OF_INTEGERS = """
                schema:
                  format: json
                  document:
                    type: integer
"""


def test_a_task_input_schema_is_checked_before_input_from(harness: BlueprintHarness) -> None:
    text = blueprint(f"""
        do:
          - take:
              input:
                from: ${{ .n }}
{SCHEMA_OF_INTEGERS.replace("integer", "object")}
              set: ${{ . + 1 }}
    """)
    assert harness.run(text, {"n": 1}).output == 2
    report = harness.run(text, [1])
    assert report.status == "faulted"
    assert report.error["instance"] == "/do/0/take"
    assert report.error["detail"].startswith("the task input does not match its schema at /")


def test_a_task_output_that_matches_its_schema_passes_on(harness: BlueprintHarness) -> None:
    text = blueprint(f"""
        do:
          - make:
              set: ${{ .n }}
              output:
{SCHEMA_OF_INTEGERS}
    """)
    assert harness.run(text, {"n": 1}).output == 1
    report = harness.run(text, {"n": "one"})
    assert report.error["detail"].startswith("the task output does not match its schema")


def test_the_exported_context_is_checked_against_its_schema(harness: BlueprintHarness) -> None:
    text = blueprint(f"""
        do:
          - remember:
              set: ${{ .n }}
              export:
                as: ${{ . }}
{SCHEMA_OF_INTEGERS}
          - recall:
              set: ${{ $context }}
    """)
    assert harness.run(text, {"n": 4}).output == 4
    report = harness.run(text, {"n": "four"})
    assert report.status == "faulted"
    assert report.error["type"] == ErrorKind.VALIDATION.type
    assert report.error["instance"] == "/do/0/remember"
    assert report.error["detail"].startswith("the exported context does not match its schema")
