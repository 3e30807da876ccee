"""Pydantic models of a DSL 1.0 workflow document: the top of the tree.

:class:`Workflow` is a whole file: ``document``, ``input``, ``use`` (the reusable components),
``do``, ``timeout``, ``output``, ``schedule`` and ``evaluate``. The objects it is made of are in
:mod:`.model_base` (base classes, string forms, durations), :mod:`.model_auth` (authentication,
endpoints), :mod:`.model_common` (data flow, errors, retries, events), :mod:`.model_calls` (call
arguments) and :mod:`.model_tasks` (tasks and task lists).

The top-level object refuses unknown properties, like every object the DSL lists all the
properties of (the JSON Schema leaves the top level open, but a misspelt ``timeout`` or
``schedule`` silently ignored would be worse than refused).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, model_validator
from pydantic_core import PydanticCustomError

from ghapplets.blueprints.model_auth import (
    AuthenticationPolicy,
    ResourceCatalog,
)
from ghapplets.blueprints.model_base import (
    Closed,
    DnsName,
    Duration,
    SemVer,
    Timeout,
    TimeoutOrName,
    file_path,
)
from ghapplets.blueprints.model_common import (
    Error,
    EventConsumptionStrategy,
    Input,
    Output,
    RetryPolicy,
)
from ghapplets.blueprints.model_tasks import (
    BuiltinCall,
    FlowDirective,
    Task,
    TaskKind,
    TaskList,
    one_entry,
    task_kind,
)


class Document(Closed):
    dsl: SemVer
    namespace: DnsName
    name: DnsName
    version: SemVer
    title: str | None = None
    summary: str | None = None
    tags: dict[str, str] | None = None
    metadata: dict[str, Any] | None = None


ExtensionTarget = Literal[
    "call", "composite", "emit", "extension", "for", "listen", "raise", "run", "set", "switch",
    "try", "wait", "all",
]  # fmt: skip


class Extension(Closed):
    """Tasks to run before and after the tasks of a kind (``extension``, which the reference
    lists and the JSON Schema does not, is accepted)."""

    extend: ExtensionTarget
    when: str | None = None
    before: TaskList | None = None
    after: TaskList | None = None


ExtensionItem = Annotated[
    dict[str, Extension], BeforeValidator(one_entry("an extension", "- name: {extend: ...}"))
]


class Use(Closed):
    """The workflow's reusable components."""

    authentications: dict[str, AuthenticationPolicy] | None = None
    catalogs: dict[str, ResourceCatalog] | None = None
    errors: dict[str, Error] | None = None
    extensions: list[ExtensionItem] | None = None
    functions: dict[str, Task] | None = None
    retries: dict[str, RetryPolicy] | None = None
    secrets: list[str] | None = None
    timeouts: dict[str, Timeout] | None = None


class Schedule(Closed):
    """When the workflow starts by itself: at least one of ``every``, ``cron``, ``after`` and
    ``on`` (the reference: each is required when no other is set)."""

    every: Duration | None = None
    cron: str | None = None
    after: Duration | None = None
    on: EventConsumptionStrategy | None = None

    @model_validator(mode="after")
    def _some(self) -> Schedule:
        if not self.present("every", "cron", "after", "on"):
            raise PydanticCustomError("schedule", "set one of every, cron, after or on")
        return self


class Evaluate(Closed):
    """How runtime expressions are read. The reference marks both required and gives each a
    default: they are optional here, with those defaults."""

    language: str = "jq"
    mode: Literal["strict", "loose"] = "strict"


class Workflow(Closed):
    document: Document
    input: Input | None = None
    use: Use | None = None
    do: TaskList
    timeout: TimeoutOrName | None = None
    output: Output | None = None
    schedule: Schedule | None = None
    evaluate: Evaluate | None = None


__all__ = [
    "BuiltinCall",
    "Document",
    "Evaluate",
    "Extension",
    "FlowDirective",
    "Schedule",
    "TaskKind",
    "Use",
    "Workflow",
    "file_path",
    "task_kind",
]
