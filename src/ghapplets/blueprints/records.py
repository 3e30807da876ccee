"""What a blueprint run is made of: its statuses, and the journal entry of each task it ran.
(:class:`RunStatus` lives with the run store, :mod:`ghapplets.store.records`; it is re-exported
here.)

A :class:`StepRecord` is one task's outcome at one position of a run (its ``key``: the task's
reference plus the loop iterations, retry attempts and revisits that led there). The journal of a
run is its step records; the engine replays them to resume a run, so a record holds everything
the engine needs to go on without running the task again: its output, the context it left and
the flow directive it took.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ghapplets.blueprints.model_tasks import FlowDirective
from ghapplets.store.records import RunStatus  # the run store keeps it; here for the engine

__all__ = ["RunStatus", "StepRecord", "TaskStatus"]


class TaskStatus(StrEnum):
    """A task's phase in the journal. ``running`` marks a task that started and keeps state
    that must survive a crash (a wait's due time, a listener, a retry's next attempt)."""

    RUNNING = "running"
    COMPLETED = "completed"
    SKIPPED = "skipped"
    FAULTED = "faulted"
    CANCELLED = "cancelled"

    @property
    def done(self) -> bool:
        """A task whose outcome replays without running it again."""
        return self in (TaskStatus.COMPLETED, TaskStatus.SKIPPED)


@dataclass
class StepRecord:
    """One task at one position of a run."""

    key: str
    reference: str
    name: str
    status: TaskStatus
    started_at: float
    finished_at: float | None = None
    input: Any = None
    output: Any = None
    context: Any = None  # the run's context after the task (its export), when it completed
    then: str = FlowDirective.CONTINUE.value
    error: dict[str, Any] | None = None
    attempt: int = 1
    state: dict[str, Any] = field(default_factory=dict)  # kind-specific durable state

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "reference": self.reference,
            "name": self.name,
            "status": self.status.value,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "input": self.input,
            "output": self.output,
            "context": self.context,
            "then": self.then,
            "error": self.error,
            "attempt": self.attempt,
            "state": self.state,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepRecord:
        return cls(
            key=data["key"],
            reference=data["reference"],
            name=data["name"],
            status=TaskStatus(data["status"]),
            started_at=data["started_at"],
            finished_at=data.get("finished_at"),
            input=data.get("input"),
            output=data.get("output"),
            context=data.get("context"),
            then=data.get("then", FlowDirective.CONTINUE.value),
            error=data.get("error"),
            attempt=data.get("attempt", 1),
            state=data.get("state") or {},
        )
