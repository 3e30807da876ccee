"""The records' dict form, as ``--json`` prints them: every field, JSON-ready."""

from __future__ import annotations

import orjson

from ghapplets.store.records import (
    AttemptOutcome,
    AttemptRecord,
    DeadLetterRecord,
    JobRecord,
    JobStatus,
    ReadOutcome,
    SecretReadRecord,
)


def test_a_record_as_a_dict_has_every_field_and_prints_as_json() -> None:
    job = JobRecord("j1", "github", "d1", "triage", JobStatus.DEAD, 1.0, 2.0, attempts=3)
    assert job.to_dict() == {
        "id": "j1",
        "source": "github",
        "delivery_id": "d1",
        "applet": "triage",
        "status": "dead",
        "created_at": 1.0,
        "updated_at": 2.0,
        "attempts": 3,
        "next_attempt_at": None,
        "result": None,
        "error_type": None,
        "error_message": None,
    }
    attempt = AttemptRecord("j1", 1, 1.0, 1.5, AttemptOutcome.PERMANENT, logs=["line"])
    assert orjson.loads(orjson.dumps(attempt.to_dict()))["logs"] == ["line"]
    read = SecretReadRecord("r1", 5.0, "cli", "token", "local", ReadOutcome.OK, "global", 2)
    assert read.to_dict()["count"] == 2 and read.to_dict()["outcome"] == "ok"
    dead = DeadLetterRecord(
        job_id="j1", source="github", delivery_id="d1", applet="a", reason="r", dead_at=3.0
    )
    assert dead.to_dict()["reason"] == "r"
