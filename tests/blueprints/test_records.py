"""The journal's record of a task (``StepRecord``): the dict the stores keep, and back."""

from __future__ import annotations

from ghapplets.blueprints.records import StepRecord, TaskStatus

FULL = StepRecord(
    key="/do/1/guarded/try@1/0/call",
    reference="/do/1/guarded/try/0/call",
    name="call",
    status=TaskStatus.FAULTED,
    started_at=1_700_000_000.5,
    finished_at=1_700_000_003.25,
    input={"order": 7},
    output=["partial"],
    context={"seen": True},
    then="retry",
    error={"type": "https://example.com/broken", "status": 500},
    attempt=2,
    state={"due": 1_700_000_060.0},
)


def test_a_record_is_kept_as_a_dict_of_every_field() -> None:
    assert FULL.to_dict() == {
        "key": "/do/1/guarded/try@1/0/call",
        "reference": "/do/1/guarded/try/0/call",
        "name": "call",
        "status": "faulted",
        "started_at": 1_700_000_000.5,
        "finished_at": 1_700_000_003.25,
        "input": {"order": 7},
        "output": ["partial"],
        "context": {"seen": True},
        "then": "retry",
        "error": {"type": "https://example.com/broken", "status": 500},
        "attempt": 2,
        "state": {"due": 1_700_000_060.0},
    }


def test_a_record_read_back_is_the_same_record() -> None:
    assert StepRecord.from_dict(FULL.to_dict()) == FULL


def test_a_record_of_an_older_journal_without_the_optional_fields_reads_with_defaults() -> None:
    record = StepRecord.from_dict(
        {
            "key": "/do/0/a",
            "reference": "/do/0/a",
            "name": "a",
            "status": "running",
            "started_at": 1.0,
        }
    )
    assert record == StepRecord("/do/0/a", "/do/0/a", "a", TaskStatus.RUNNING, 1.0)
    assert (record.then, record.attempt, record.state) == ("continue", 1, {})
    assert StepRecord.from_dict({**FULL.to_dict(), "state": None}).state == {}


def test_only_completed_and_skipped_tasks_replay() -> None:
    assert {s for s in TaskStatus if s.done} == {TaskStatus.COMPLETED, TaskStatus.SKIPPED}
