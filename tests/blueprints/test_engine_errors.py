"""try / catch / retry: filters (both type spellings), when / exceptWhen, the catch variable,
the backoffs with their delays measured on the virtual clock, limits, and escalation."""

from __future__ import annotations

import itertools

import pytest

from ghapplets.blueprints.errors import ErrorKind, raise_error
from ghapplets.testing.blueprints import BlueprintHarness
from tests.blueprints.conftest import blueprint


def flaky(failures: int, status: int = 503):
    """An applet mock that fails ``failures`` times with a communication error, then works;
    with the virtual time of each call."""
    calls: list[int] = []

    def answer(data):
        calls.append(len(calls))
        if len(calls) <= failures:
            raise raise_error(ErrorKind.COMMUNICATION, "down", status=status)
        return {"ok": True, "calls": len(calls)}

    return answer, calls


def retrying(policy: str, catch_extra: str = "") -> str:
    return blueprint(
        f"""
        do:
          - attempt:
              try:
                - callIt:
                    call: flaky
              catch:
                errors:
                  with:
                    type: https://serverlessworkflow.io/spec/1.0.0/errors/communication
                    status: 503
                retry:
{policy}
{catch_extra}
        """
    )


def call_times(harness: BlueprintHarness, answer):
    times: list[float] = []

    def timed(data):
        times.append(harness.clock.now())
        return answer(data)

    return timed, times


@pytest.mark.parametrize(
    ("backoff", "gaps"),
    [
        ("constant: {}", [2.0, 2.0, 2.0]),
        ("linear: {}", [2.0, 4.0, 6.0]),
        ("exponential: {}", [2.0, 4.0, 8.0]),
    ],
)
def test_retry_backoffs_wait_the_right_delays(
    harness: BlueprintHarness, backoff: str, gaps: list[float]
) -> None:
    answer, _calls = flaky(3)
    timed, times = call_times(harness, answer)
    harness.mock_applet("flaky", timed)
    report = harness.run(
        retrying(
            f"""                  delay:
                    seconds: 2
                  backoff:
                    {backoff}
                  limit:
                    attempt:
                      count: 5"""
        )
    )
    assert report.status == "completed", report.error
    assert report.output == {"ok": True, "calls": 4}
    assert [round(b - a, 6) for a, b in itertools.pairwise(times)] == gaps


def test_retry_gives_up_after_the_attempt_count_and_faults(harness: BlueprintHarness) -> None:
    answer, calls = flaky(10)
    harness.mock_applet("flaky", answer)
    report = harness.run(
        retrying(
            """                  delay: PT1S
                  limit:
                    attempt:
                      count: 3"""
        )
    )
    assert report.status == "faulted"
    assert len(calls) == 4  # the first try and 3 retries
    assert report.error["status"] == 503
    assert report.error["instance"] == "/do/0/attempt/try/0/callIt"


def test_retry_exhausted_runs_the_catch_tasks(harness: BlueprintHarness) -> None:
    answer, calls = flaky(10)
    harness.mock_applet("flaky", answer)
    report = harness.run(
        retrying(
            """                  delay: PT1S
                  limit:
                    attempt:
                      count: 2""",
            """                do:
                  - fallback:
                      set:
                        gaveUp: ${ $error.status }""",
        )
    )
    assert report.status == "completed", report.error
    assert report.output == {"gaveUp": 503}
    assert len(calls) == 3


def test_retry_duration_limit_stops_retrying(harness: BlueprintHarness) -> None:
    answer, calls = flaky(100)
    harness.mock_applet("flaky", answer)
    report = harness.run(
        retrying(
            """                  delay:
                    seconds: 10
                  limit:
                    duration:
                      seconds: 35"""
        )
    )
    assert report.status == "faulted"
    assert len(calls) == 5  # failures at 0, 10, 20, 30 s; the one at 40 s ends it


def test_jitter_adds_a_delay_within_its_range(harness: BlueprintHarness) -> None:
    answer, _ = flaky(3)
    timed, times = call_times(harness, answer)
    harness.mock_applet("flaky", timed)
    harness.run(
        retrying(
            """                  delay:
                    seconds: 1
                  jitter:
                    from:
                      seconds: 1
                    to:
                      seconds: 3
                  limit:
                    attempt:
                      count: 5"""
        )
    )
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 3
    assert all(2.0 <= g <= 4.0 for g in gaps)


def test_an_error_the_filter_does_not_match_escapes(harness: BlueprintHarness) -> None:
    answer, calls = flaky(1, status=500)
    harness.mock_applet("flaky", answer)
    report = harness.run(retrying("                  delay: PT1S"))
    assert report.status == "faulted"
    assert report.error["status"] == 500
    assert len(calls) == 1


@pytest.mark.parametrize(
    "type_",
    [
        "https://serverlessworkflow.io/spec/1.0.0/errors/communication",
        "https://serverlessworkflow.io/dsl/errors/types/communication",
    ],
)
def test_catch_accepts_both_spellings_of_standard_types(
    harness: BlueprintHarness, type_: str
) -> None:
    harness.mock_applet("flaky", flaky(5)[0])
    report = harness.run(
        blueprint(f"""
            do:
              - guarded:
                  try:
                    - callIt:
                        call: flaky
                  catch:
                    errors:
                      with:
                        type: {type_}
        """),
        {"in": 1},
    )
    assert report.status == "completed", report.error
    assert report.output == {"in": 1}  # a caught error with no catch tasks: the try's input


def test_catch_exposes_the_error_fields(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - guarded:
                  try:
                    - fail:
                        raise:
                          error:
                            type: https://example.com/oops
                            status: 409
                            title: Conflict
                  catch:
                    as: err
                    do:
                      - seen:
                          set:
                            type: ${ $err.type }
                            status: ${ $err.status }
                            title: ${ $err.title }
                            instance: ${ $err.instance }
        """)
    )
    assert report.output == {
        "type": "https://example.com/oops",
        "status": 409,
        "title": "Conflict",
        "instance": "/do/0/guarded/try/0/fail",
    }


def test_catch_when_and_except_when(harness: BlueprintHarness) -> None:
    def make(clause: str) -> str:
        return blueprint(f"""
            do:
              - guarded:
                  try:
                    - fail:
                        raise:
                          error:
                            type: https://example.com/oops
                            status: 409
                  catch:
                    {clause}
        """)

    assert harness.run(make("when: ${ .status == 409 }")).status == "completed"
    assert harness.run(make("when: ${ $error.status == 500 }")).status == "faulted"
    assert harness.run(make("exceptWhen: ${ .status == 409 }")).status == "faulted"
    assert harness.run(make("exceptWhen: ${ .status == 500 }")).status == "completed"


def test_retry_when_decides_per_error(harness: BlueprintHarness) -> None:
    answer, calls = flaky(10)
    harness.mock_applet("flaky", answer)
    report = harness.run(
        retrying(
            """                  when: ${ .status != 503 }
                  delay: PT1S"""
        )
    )
    assert report.status == "faulted"
    assert len(calls) == 1


def test_reusable_retry_policy(harness: BlueprintHarness) -> None:
    answer, calls = flaky(2)
    harness.mock_applet("flaky", answer)
    report = harness.run(
        blueprint("""
            use:
              retries:
                twice:
                  delay: PT1S
                  limit:
                    attempt:
                      count: 2
            do:
              - attempt:
                  try:
                    - callIt:
                        call: flaky
                  catch:
                    retry: twice
        """)
    )
    assert report.status == "completed", report.error
    assert len(calls) == 3


def test_an_uncaught_error_in_nested_scopes_keeps_its_instance(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - outer:
                  do:
                    - loop:
                        for:
                          in: ${ [1] }
                        do:
                          - boom:
                              set: ${ error("broken") }
        """)
    )
    assert report.status == "faulted"
    assert report.error["instance"] == "/do/0/outer/do/0/loop/do/0/boom"
    assert report.error["type"] == ErrorKind.EXPRESSION.type


def test_each_retry_attempt_is_recorded_with_its_number(harness: BlueprintHarness) -> None:
    answer, _ = flaky(2)
    harness.mock_applet("flaky", answer)
    report = harness.run(
        retrying(
            """                  delay: PT1S
                  limit:
                    attempt:
                      count: 3"""
        )
    )
    tries = [(t.status, t.attempt) for t in report.tasks if t.name == "callIt"]
    assert tries == [("faulted", 1), ("faulted", 2), ("completed", 3)]


@pytest.mark.parametrize(
    ("limit", "calls_made"),
    [
        # failures at 0, 10, 20 and 30 s: a window of 30 s is over at the fourth
        ("duration:\n                      seconds: 30", 4),
        ("attempt:\n                      duration:\n                        seconds: 35", 5),
    ],
)
def test_retry_windows_end_retrying_when_they_are_over(
    harness: BlueprintHarness, limit: str, calls_made: int
) -> None:
    answer, calls = flaky(100)
    harness.mock_applet("flaky", answer)
    report = harness.run(
        retrying(
            f"""                  delay:
                    seconds: 10
                  limit:
                    {limit}"""
        )
    )
    assert report.status == "faulted"
    assert len(calls) == calls_made


def test_retry_without_a_delay_tries_again_at_once(harness: BlueprintHarness) -> None:
    answer, _calls = flaky(2)
    timed, times = call_times(harness, answer)
    harness.mock_applet("flaky", timed)
    report = harness.run(
        retrying(
            """                  limit:
                    attempt:
                      count: 3"""
        )
    )
    assert report.status == "completed", report.error
    assert [b - a for a, b in itertools.pairwise(times)] == [0.0, 0.0]


@pytest.mark.parametrize(
    ("name", "catch_extra"),
    [("error", ""), ("failure", "                as: failure")],
)
def test_retry_when_reads_the_error_by_the_catch_variable(
    harness: BlueprintHarness, name: str, catch_extra: str
) -> None:
    answer, calls = flaky(10)
    harness.mock_applet("flaky", answer)
    report = harness.run(
        retrying(
            f"""                  when: ${{ ${name}.status == 503 }}
                  delay: PT1S
                  limit:
                    attempt:
                      count: 2""",
            catch_extra,
        )
    )
    assert report.status == "faulted"
    assert report.error["status"] == 503  # the call's error, not the expression's
    assert len(calls) == 3  # retried twice: the variable named the error


CUSTOM_INSTANCE = "\n" + " " * 22 + "instance: /custom"  # a field of the error, below detail


@pytest.mark.parametrize(
    ("instance", "reported"), [(CUSTOM_INSTANCE, "/custom"), ("", "/do/0/boom")]
)
def test_a_raised_error_renders_its_fields_and_keeps_its_instance_or_the_tasks(
    harness: BlueprintHarness, instance: str, reported: str
) -> None:
    report = harness.run(
        blueprint(f"""
            do:
              - boom:
                  raise:
                    error:
                      type: https://example.com/oops
                      status: 409
                      title: Conflict
                      detail: ${{ "in " + $task.name }}{instance}
        """)
    )
    assert report.status == "faulted"
    assert (report.error["detail"], report.error["instance"]) == ("in boom", reported)
