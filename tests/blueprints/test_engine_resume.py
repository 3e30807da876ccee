"""What the engine keeps in its journal and reads back when a run goes on: the keys of its
steps, the state a running task checkpoints (a wait's due time, a competing fork's winner, a
caught error), the directive a finished task took; and how a run suspends (on a host that
answers "not now", as the worker's does) with the earliest wake-up and every listener."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from ghapplets.blueprints.engine import Run
from ghapplets.blueprints.errors import ErrorKind, raise_error
from ghapplets.blueprints.host import MemoryJournal, Suspended, VirtualClock
from ghapplets.blueprints.loader import parse_blueprint
from ghapplets.blueprints.local import LocalHost, Report, execute
from ghapplets.blueprints.program import Program
from ghapplets.blueprints.records import StepRecord, TaskStatus
from ghapplets.exceptions import BlueprintError
from ghapplets.testing.blueprints import BlueprintHarness
from tests.blueprints.conftest import blueprint

START = 1_700_000_000.0


def program_of(text: str) -> Program:
    return Program(parse_blueprint(text, "<test>").definition)


def run_on(program: Program, journal: MemoryJournal, input: Any = None) -> tuple[Report, float]:
    """Run on a journal (as a restarted worker would); the report and the clock's time after."""
    clock = VirtualClock(START)
    host = LocalHost(run_id="resumed", journal=journal, clock=clock)
    report = asyncio.run(execute(program, host, input, started_at=START))
    return report, clock.now()


def running(key: str, reference: str, name: str, state: dict[str, Any]) -> StepRecord:
    return StepRecord(key, reference, name, TaskStatus.RUNNING, START, state=state)


# -- state a running task keeps ------------------------------------------------------------------
WAIT = blueprint("""
    do:
      - pause:
          wait: PT1S
""")


def test_a_wait_checkpoints_its_due_time() -> None:
    journal = MemoryJournal()
    report, now = run_on(program_of(WAIT), journal, {"kept": 1})
    assert report.output == {"kept": 1}
    record = journal.recorded("/do/0/pause")
    assert record is not None
    assert record.state == {"due": START + 1}
    assert record.finished_at == now == START + 1


def test_a_resumed_wait_keeps_the_due_time_it_stored() -> None:
    journal = MemoryJournal()
    journal.write(running("/do/0/pause", "/do/0/pause", "pause", {"due": START + 100}), ())
    report, now = run_on(program_of(WAIT), journal)
    assert report.status == "completed", report.error
    assert now == START + 100
    assert journal.recorded("/do/0/pause").finished_at == START + 100


RACE = blueprint("""
    do:
      - race:
          fork:
            compete: true
            branches:
              - first:
                  set: first
              - second:
                  set: second
""")


def test_a_competing_fork_checkpoints_its_winner() -> None:
    journal = MemoryJournal()
    report, _ = run_on(program_of(RACE), journal)
    assert report.output == "first"
    assert journal.recorded("/do/0/race").state == {"winner": 0}


def test_a_resumed_competing_fork_keeps_the_winner_it_stored() -> None:
    journal = MemoryJournal()
    journal.write(running("/do/0/race", "/do/0/race", "race", {"winner": 1}), ())
    report, _ = run_on(program_of(RACE), journal)
    assert report.status == "completed", report.error
    assert report.output == "second"
    ran = [r.key for r in journal.records() if r.status == TaskStatus.COMPLETED]
    assert "/do/0/race/fork/branches/0/first" not in ran  # the loser is not run again


def test_a_running_step_records_its_input() -> None:
    journal = MemoryJournal()
    text = blueprint("""
        do:
          - hear:
              input:
                from: ${ .order }
              listen:
                to:
                  one:
                    with:
                      type: com.example.never
    """)
    report, _ = run_on(program_of(text), journal, {"order": {"id": 7}})
    assert report.status == "waiting"
    record = journal.recorded("/do/0/hear")
    assert record.status == TaskStatus.RUNNING
    assert record.input == {"id": 7}
    assert record.state == {"listening": True}


# -- keys and directives read back ---------------------------------------------------------------
def test_each_visit_and_each_attempt_has_its_own_key(harness: BlueprintHarness) -> None:
    failures = {"left": 1}

    def flaky(data: Any) -> str:
        if failures["left"]:
            failures["left"] -= 1
            raise raise_error(ErrorKind.COMMUNICATION, "down", status=503)
        return "fine"

    harness.mock_applet("flaky", flaky)
    report = harness.run(
        blueprint("""
            do:
              - inc:
                  set:
                    n: ${ .n + 1 }
              - again:
                  switch:
                    - more:
                        when: ${ .n < 3 }
                        then: inc
                    - enough:
                        then: continue
              - guarded:
                  try:
                    - flaky:
                        call: flaky
                  catch:
                    retry:
                      delay: PT1S
                      limit:
                        attempt:
                          count: 2
        """),
        {"n": 0},
    )
    assert report.status == "completed", report.error
    keys = [t.key for t in report.tasks]
    assert [k for k in keys if k.startswith("/do/0/inc")] == [
        "/do/0/inc",
        "/do/0/inc@1",
        "/do/0/inc@2",
    ]
    assert [k for k in keys if "flaky" in k] == [
        "/do/2/guarded/try/0/flaky",
        "/do/2/guarded/try@1/0/flaky",
    ]


def test_a_resumed_run_follows_the_directive_a_finished_task_took(
    harness: BlueprintHarness,
) -> None:
    report = harness.run(
        blueprint("""
            do:
              - route:
                  switch:
                    - jump:
                        when: ${ .go }
                        then: far
                    - stay:
                        then: continue
              - near:
                  set: near
                  then: end
              - far:
                  set: far
        """),
        {"go": True},
        crash_after=1,  # right after the switch's checkpoint, before the jump
    )
    assert report.output == "far"
    assert [t.name for t in report.tasks] == ["route", "far"]


def test_a_run_resumed_inside_a_catch_does_not_try_again(harness: BlueprintHarness) -> None:
    def broken(data: Any) -> Any:
        raise raise_error(ErrorKind.COMMUNICATION, "down", status=503)

    harness.mock_applet("broken", broken)
    harness.mock_applet("first", "one")
    harness.mock_applet("second", "two")
    report = harness.run(
        blueprint("""
            do:
              - guarded:
                  try:
                    - fail:
                        call: broken
                  catch:
                    do:
                      - first:
                          call: first
                      - second:
                          call: second
        """),
        crash_after=1,  # right after the first task of the catch
    )
    assert report.status == "completed", report.error
    assert report.output == "two"
    assert [c.name for c in harness.calls] == ["broken", "first", "second"]


# -- bad definitions built by hand (the loader refuses them in a file) -------------------------
def hand_built(**extra: Any) -> Program:
    task: dict[str, Any] = {"set": {"x": 1}}
    task.update(extra.pop("task", {}))
    return Program(
        {
            "document": {"dsl": "1.0.0", "namespace": "t", "name": "t", "version": "1.0.0"},
            "do": [{"one": task}],
            **extra,
        }
    )


@pytest.mark.parametrize(
    ("program", "instance"),
    [
        (hand_built(timeout="missing"), "/timeout"),
        (hand_built(task={"timeout": "missing"}), "/do/0/one"),
    ],
)
def test_a_timeout_by_a_name_not_in_use_is_a_configuration_error(
    program: Program, instance: str
) -> None:
    report, _ = run_on(program, MemoryJournal())
    assert report.status == "faulted"
    assert report.error["type"] == ErrorKind.CONFIGURATION.type
    assert report.error["detail"] == "no such timeout in use.timeouts"
    assert report.error["instance"] == instance


ONCE = {"attempt": {"count": 1}}


@pytest.mark.parametrize(
    "policy",
    [
        {"delay": "${ $input.pause }", "limit": ONCE},
        {"limit": {"duration": "${ $input.pause }", **ONCE}},
        {"limit": {"attempt": {"count": 1, "duration": "${ $input.pause }"}}},
        {"jitter": {"from": "${ $input.pause }", "to": "PT2M"}, "limit": ONCE},
        {"jitter": {"from": "PT0S", "to": "${ $input.pause }"}, "limit": ONCE},
    ],
    ids=["delay", "duration", "attempt-duration", "jitter-from", "jitter-to"],
)
def test_a_retry_duration_given_by_an_expression_reads_the_task_input(
    harness: BlueprintHarness, policy: dict[str, Any]
) -> None:
    attempts: list[float] = []

    def broken(data: Any) -> Any:
        attempts.append(harness.clock.now())
        raise raise_error(ErrorKind.COMMUNICATION, "down", status=503)

    harness.mock_applet("broken", broken)
    text = blueprint(f"""
        do:
          - guarded:
              try:
                - fail:
                    call: broken
              catch:
                retry: {orjson.dumps(policy).decode()}
    """)
    report = harness.run(text, {"pause": "PT1M"})
    assert report.status == "faulted"
    assert report.error["instance"] == "/do/0/guarded/try/0/fail"
    assert len(attempts) == 2  # the duration read from the input allowed one retry
    report = harness.run(text, {"pause": "soon"})
    assert report.error["type"] == ErrorKind.CONFIGURATION.type
    assert report.error["instance"] == "/do/0/guarded"
    assert len(attempts) == 3


# -- suspending ---------------------------------------------------------------------------------
class SuspendingHost(LocalHost):
    """A host that suspends the run instead of waiting, as the worker's does."""

    async def sleep_until(self, when: float) -> None:
        if when > self.now():
            raise Suspended(wake_at=when)

    async def receive(self, key: str, index: int) -> Any:
        event = self.inbox.get(key, index)
        if event is not None:
            return event
        raise Suspended(listeners=[key])


def suspend(text: str) -> Suspended:
    host = SuspendingHost(run_id="suspends", clock=VirtualClock(START))
    run = Run(program_of(text), host, input={}, started_at=START)
    with pytest.raises(Suspended) as caught:
        asyncio.run(run.execute())
    return caught.value


def listening(name: str) -> str:
    return f"""
          - {name}:
              listen:
                to:
                  one:
                    with:
                      type: com.example.{name}
    """


def test_a_listener_with_a_timeout_suspends_until_its_deadline_or_an_event() -> None:
    suspended = suspend(
        blueprint("""
            do:
              - hear:
                  listen:
                    to:
                      one:
                        with:
                          type: com.example.answer
                  timeout:
                    after: PT1H
        """)
    )
    assert suspended.wake_at == START + 3600
    assert suspended.listeners == ("/do/0/hear",)


@pytest.mark.parametrize("compete", [False, True])
def test_a_fork_suspends_on_every_branch_and_wakes_at_the_earliest(compete: bool) -> None:
    branches = "".join(
        [
            listening("left"),
            listening("right"),
            "\n          - later:\n              wait: PT2H\n",
            "\n          - sooner:\n              wait: PT1H\n",
        ]
    )
    text = blueprint(
        "do:\n  - split:\n      fork:\n"
        f"        compete: {str(compete).lower()}\n        branches:\n"
        + "\n".join("    " + line if line.strip() else line for line in branches.splitlines())
    )
    suspended = suspend(text)
    assert sorted(suspended.listeners) == [
        "/do/0/split/fork/branches/0/left",
        "/do/0/split/fork/branches/1/right",
    ]
    assert suspended.wake_at == START + 3600


def test_the_error_of_a_hand_built_run_is_a_blueprint_error() -> None:
    host = SuspendingHost(run_id="faults", clock=VirtualClock(START))
    run = Run(hand_built(timeout="missing"), host, input={}, started_at=START)
    with pytest.raises(BlueprintError, match="no such timeout"):
        asyncio.run(run.execute())


def test_a_faulted_step_records_its_input_error_and_times() -> None:
    journal = MemoryJournal()
    text = blueprint("""
        do:
          - pause:
              wait: PT5S
          - broken:
              input:
                from: ${ .order }
              wait: PT1M
              timeout:
                after: PT10S
    """)
    report, now = run_on(program_of(text), journal, {"order": 7})
    assert report.status == "faulted"
    record = journal.recorded("/do/1/broken")
    assert record.status == TaskStatus.FAULTED
    assert (record.started_at, record.finished_at) == (START + 5, START + 15) == (START + 5, now)
    assert record.input == 7
    assert record.error == report.error
    assert record.error["type"] == ErrorKind.TIMEOUT.type
    assert record.state == {"due": START + 65}  # what it kept while it ran


def test_a_task_deadline_outlives_a_crash(harness: BlueprintHarness) -> None:
    report = harness.run(
        blueprint("""
            do:
              - guarded:
                  do:
                    - first:
                        wait: PT40S
                    - second:
                        wait: PT40S
                  timeout:
                    after: PT1M
        """),
        crash_after=1,  # at 40 s: the resumed task still has 20 s, not a minute
    )
    assert report.status == "faulted"
    assert report.error["type"] == ErrorKind.TIMEOUT.type
    assert report.error["instance"] == "/do/0/guarded"


def test_a_step_that_faulted_before_runs_again_from_the_start() -> None:
    """A competing fork resumed before it had a winner runs its branches again: one that
    faulted in the first try starts afresh (its old start and state are not reused)."""
    journal = MemoryJournal()
    key = "/do/0/race/fork/branches/0/quick"
    old = StepRecord(
        key, key, "quick", TaskStatus.FAULTED, START - 1000, START - 990, state={"due": START - 500}
    )
    journal.write(old, ())
    text = blueprint("""
        do:
          - race:
              fork:
                compete: true
                branches:
                  - quick:
                      wait: PT1S
                  - slow:
                      wait: PT5S
    """)
    report, now = run_on(program_of(text), journal, {"won": "quick"})
    assert report.status == "completed", report.error
    assert now == START + 1
    record = journal.recorded(key)
    assert (record.status, record.started_at, record.state) == (
        TaskStatus.COMPLETED,
        START,
        {"due": START + 1},
    )
