"""Pydantic models of the DSL 1.0 tasks, and of the objects that hold tasks.

A task is one of twelve kinds (:class:`TaskKind`), told apart by the key that names its kind
(``call``, ``do``, ``for``, ...); a ``call`` task is then told apart by what it calls (``http``,
``openapi``, ``grpc``, ``asyncapi``, ``a2a``, ``mcp``, or a function). A task list (``do``,
``try``, ``fork.branches``, ...) is a list of one-key maps ``{name: task}``. Also here, because
they hold task lists: the subscription iterator (listen ``foreach``), the catch clause, and the
AsyncAPI call arguments (whose subscription has a ``foreach``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Discriminator, Field, Tag, model_validator
from pydantic_core import PydanticCustomError

from ghapplets.blueprints.model_auth import (
    ExternalResource,
    ReferenceableAuthentication,
)
from ghapplets.blueprints.model_base import (
    Closed,
    Duration,
    NonEmpty,
    Open,
    RuntimeExpression,
    TimeoutOrName,
    shape,
)
from ghapplets.blueprints.model_calls import (
    A2aArguments,
    GrpcArguments,
    HttpArguments,
    McpArguments,
    OpenApiArguments,
)
from ghapplets.blueprints.model_common import (
    CatchErrors,
    EmittedProperties,
    ErrorOrName,
    EventConsumptionStrategy,
    Export,
    Input,
    Output,
    RetryOrName,
)


class TaskKind(StrEnum):
    """The kinds of task; each is named by the key that holds its definition."""

    CALL = "call"
    DO = "do"
    EMIT = "emit"
    FOR = "for"
    FORK = "fork"
    LISTEN = "listen"
    RAISE = "raise"
    RUN = "run"
    SET = "set"
    SWITCH = "switch"
    TRY = "try"
    WAIT = "wait"


class FlowDirective(StrEnum):
    """The flow directives that are not task names."""

    CONTINUE = "continue"
    EXIT = "exit"
    END = "end"


class BuiltinCall(StrEnum):
    """The calls the DSL defines (any other ``call`` names a function)."""

    HTTP = "http"
    OPENAPI = "openapi"
    GRPC = "grpc"
    ASYNCAPI = "asyncapi"
    A2A = "a2a"
    MCP = "mcp"


TASK_BASE_KEYS = ("if", "input", "output", "export", "timeout", "then", "metadata")


def task_kinds(task: Mapping[str, Any]) -> list[TaskKind]:
    """The kind keys of ``task`` (a ``for`` task's ``do`` is its body, not a second kind)."""
    kinds = [kind for kind in TaskKind if kind.value in task]
    if TaskKind.FOR in kinds and TaskKind.DO in kinds:
        kinds.remove(TaskKind.DO)
    return kinds


def task_kind(task: Mapping[str, Any]) -> TaskKind | None:
    """The kind of ``task``, or None when it has none or several."""
    kinds = task_kinds(task)
    return kinds[0] if len(kinds) == 1 else None


def one_entry(what: str, example: str) -> Callable[[Any], Any]:
    """A validator for a list item that must be a one-key map ``{name: value}``."""

    def check(value: Any) -> Any:
        if not isinstance(value, dict):
            raise PydanticCustomError(
                "entry",
                "expected {what}: a one-key map like {example}",
                {"what": what, "example": example},
            )
        if len(value) != 1:
            keys = ", ".join(map(str, value)) or "none"
            raise PydanticCustomError(
                "entry",
                "expected {what}: a one-key map like {example}, not {count} keys ({keys}); is "
                "the definition indented under its name?",
                {"what": what, "example": example, "count": len(value), "keys": keys},
            )
        return value

    return check


# --- the common part of every task -------------------------------------------------------------


class TaskBase(Closed):
    if_: str | None = Field(None, alias="if")
    input: Input | None = None
    output: Output | None = None
    export: Export | None = None
    timeout: TimeoutOrName | None = None
    then: NonEmpty | None = None
    metadata: dict[str, Any] | None = None


class SubscriptionIterator(Closed):
    """What to do with each consumed event (listen ``foreach``) or message (AsyncAPI)."""

    item: NonEmpty | None = None
    at: NonEmpty | None = None
    do: TaskList | None = None
    output: Output | None = None
    export: Export | None = None


# --- call tasks --------------------------------------------------------------------------------


class AsyncApiServer(Closed):
    name: str
    variables: dict[str, Any] | None = None


class AsyncApiOutboundMessage(Closed):
    payload: dict[str, Any] | None = None
    headers: dict[str, Any] | None = None


class AsyncApiConsumption(Closed):
    """How long a subscription consumes: ``amount``, ``while`` or ``until`` (and ``for``)."""

    for_: Duration | None = Field(None, alias="for")
    amount: int | None = None
    while_: RuntimeExpression | None = Field(None, alias="while")
    until: RuntimeExpression | None = None

    @model_validator(mode="after")
    def _one(self) -> AsyncApiConsumption:
        self.one_of("amount", "while", "until")
        return self


class AsyncApiSubscription(Closed):
    filter: RuntimeExpression | None = None
    consume: AsyncApiConsumption
    foreach: SubscriptionIterator | None = None


AsyncApiProtocol = Literal[
    "amqp", "amqp1", "anypointmq", "googlepubsub", "http", "ibmmq", "jms", "kafka", "mercure",
    "mqtt", "mqtt5", "nats", "pulsar", "redis", "sns", "solace", "sqs", "stomp", "ws",
]  # fmt: skip


class AsyncApiArguments(Closed):
    """``call: asyncapi`` (refused): a document, then ``operation`` (AsyncAPI 3) or ``channel``
    (2.6), then ``message`` (publish) or ``subscription`` (subscribe)."""

    document: ExternalResource
    channel: str | None = None
    operation: str | None = None
    server: AsyncApiServer | None = None
    protocol: AsyncApiProtocol | None = None
    message: AsyncApiOutboundMessage | None = None
    subscription: AsyncApiSubscription | None = None
    authentication: ReferenceableAuthentication | None = None

    @model_validator(mode="after")
    def _shape(self) -> AsyncApiArguments:
        self.one_of("operation", "channel")
        self.one_of("message", "subscription")
        return self


class CallHttp(TaskBase):
    call: Literal["http"]
    with_: HttpArguments = Field(alias="with")


class CallOpenApi(TaskBase):
    call: Literal["openapi"]
    with_: OpenApiArguments = Field(alias="with")


class CallGrpc(TaskBase):
    call: Literal["grpc"]
    with_: GrpcArguments = Field(alias="with")


class CallAsyncApi(TaskBase):
    call: Literal["asyncapi"]
    with_: AsyncApiArguments = Field(alias="with")


class CallA2a(TaskBase):
    call: Literal["a2a"]
    with_: A2aArguments = Field(alias="with")


class CallMcp(TaskBase):
    call: Literal["mcp"]
    with_: McpArguments = Field(alias="with")


class CallFunction(TaskBase):
    """A call of a function: one of ``use.functions``, an applet, a connector action, or (refused)
    a cataloged or URI-named custom function."""

    call: NonEmpty
    with_: dict[str, Any] | None = Field(None, alias="with")


def _call_tag(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    call = value.get("call")
    return f"<call {call}>" if call in set(BuiltinCall) else "<call function>"


CallTask = Annotated[
    Annotated[CallHttp, Tag("<call http>")]
    | Annotated[CallOpenApi, Tag("<call openapi>")]
    | Annotated[CallGrpc, Tag("<call grpc>")]
    | Annotated[CallAsyncApi, Tag("<call asyncapi>")]
    | Annotated[CallA2a, Tag("<call a2a>")]
    | Annotated[CallMcp, Tag("<call mcp>")]
    | Annotated[CallFunction, Tag("<call function>")],
    Discriminator(_call_tag),
]

# --- the other tasks ---------------------------------------------------------------------------


class DoTask(TaskBase):
    do: TaskList


class EmitEvent(Open):
    with_: EmittedProperties = Field(alias="with")


class EmitConfiguration(Closed):
    event: EmitEvent


class EmitTask(TaskBase):
    emit: EmitConfiguration


class ForConfiguration(Closed):
    each: NonEmpty | None = None
    in_: str = Field(alias="in")
    at: NonEmpty | None = None


class ForTask(TaskBase):
    for_: ForConfiguration = Field(alias="for")
    while_: str | None = Field(None, alias="while")
    do: TaskList


class ForkConfiguration(Closed):
    """``branches`` is required (by the JSON Schema; the reference says optional, but a fork
    without branches does nothing)."""

    branches: TaskList
    compete: bool | None = None


class ForkTask(TaskBase):
    fork: ForkConfiguration


class ListenConfiguration(Closed):
    to: EventConsumptionStrategy
    read: Literal["data", "envelope", "raw"] | None = None


class ListenTask(TaskBase):
    listen: ListenConfiguration
    foreach: SubscriptionIterator | None = None


class RaiseConfiguration(Closed):
    error: ErrorOrName


class RaiseTask(TaskBase):
    raise_: RaiseConfiguration = Field(alias="raise")


class ContainerLifetime(Closed):
    cleanup: Literal["always", "never", "eventually"]
    after: Duration | None = None

    @model_validator(mode="after")
    def _after(self) -> ContainerLifetime:
        if self.cleanup == "eventually" and self.after is None:
            raise PydanticCustomError("lifetime", "cleanup: eventually needs 'after'")
        if self.cleanup != "eventually" and self.after is not None:
            raise PydanticCustomError("lifetime", "'after' only applies to cleanup: eventually")
        return self


class Container(Closed):
    image: NonEmpty
    name: str | None = None
    command: str | None = None
    ports: dict[str, Any] | None = None
    volumes: dict[str, Any] | None = None
    environment: dict[str, Any] | None = None
    stdin: str | None = None
    arguments: list[str] | None = None
    lifetime: ContainerLifetime | None = None
    pull_policy: Literal["ifNotPresent", "always", "never"] | None = Field(None, alias="pullPolicy")


class Script(Closed):
    """A script: its ``language``, and its ``code`` or its ``source``."""

    language: NonEmpty
    code: str | None = None
    source: ExternalResource | None = None
    stdin: str | None = None
    arguments: list[str] | None = None
    environment: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one(self) -> Script:
        self.one_of("code", "source")
        return self


class Shell(Closed):
    command: NonEmpty
    stdin: str | None = None
    arguments: list[str] | None = None
    environment: dict[str, Any] | None = None


class SubflowReference(Closed):
    """The workflow to run. ``input`` may be any value (the reference; the JSON Schema says an
    object)."""

    nullable = frozenset({"input"})

    namespace: NonEmpty
    name: NonEmpty
    version: NonEmpty
    input: Any = None


class RunConfiguration(Closed):
    container: Container | None = None
    script: Script | None = None
    shell: Shell | None = None
    workflow: SubflowReference | None = None
    await_: bool | None = Field(None, alias="await")
    return_: Literal["stdout", "stderr", "code", "all", "none"] | None = Field(None, alias="return")

    @model_validator(mode="after")
    def _one(self) -> RunConfiguration:
        self.one_of("container", "script", "shell", "workflow")
        return self


class RunTask(TaskBase):
    run: RunConfiguration


def _non_empty_mapping(value: Any) -> Any:
    if isinstance(value, dict) and not value:
        raise PydanticCustomError("set", "set needs at least one value (or a runtime expression)")
    return value


SetValue = Annotated[
    Annotated[str, Tag("<string>")]
    | Annotated[dict[str, Any], BeforeValidator(_non_empty_mapping), Tag("<object>")],
    Discriminator(
        shape,
        custom_error_type="set",
        custom_error_message="expected the data to set (a mapping) or a runtime expression",
    ),
]


class SetTask(TaskBase):
    set_: SetValue = Field(alias="set")


class SwitchCase(Closed):
    """A case: its condition (none for the default case) and where to go."""

    when: str | None = None
    then: NonEmpty


SwitchItem = Annotated[
    dict[str, SwitchCase],
    BeforeValidator(one_entry("a switch case", "- caseName: {when: ..., then: ...}")),
]


def _some_cases(value: Any) -> Any:
    if isinstance(value, list) and not value:
        raise PydanticCustomError("switch", "a switch needs at least one case")
    return value


class SwitchTask(TaskBase):
    switch: Annotated[list[SwitchItem], BeforeValidator(_some_cases)]


class Catch(Closed):
    errors: CatchErrors | None = None
    as_: NonEmpty | None = Field(None, alias="as")
    when: str | None = None
    except_when: str | None = Field(None, alias="exceptWhen")
    retry: RetryOrName | None = None
    do: TaskList | None = None


class TryTask(TaskBase):
    try_: TaskList = Field(alias="try")
    catch: Catch


class WaitTask(TaskBase):
    wait: Duration


_KIND_LIST = ", ".join(TaskKind)


class _AmbiguousTask(Closed):
    """Stands for a mapping with two task kinds: always refused, with a clear message."""

    @model_validator(mode="before")
    @classmethod
    def _refuse(cls, data: Any) -> Any:
        kinds = " and ".join(task_kinds(data))
        raise PydanticCustomError(
            "task_kind",
            "a task has one kind, this one has {kinds}: split it in two tasks",
            {"kinds": kinds},
        )


class _NotATask(Closed):
    """Stands for anything that is not a task: always refused, with a suggestion if a key
    looks like a misspelt kind."""

    @model_validator(mode="before")
    @classmethod
    def _refuse(cls, data: Any) -> Any:
        hint = ""
        if isinstance(data, dict):
            for key in data:
                close = difflib.get_close_matches(str(key), [k.value for k in TaskKind], 1, 0.6)
                if key not in TASK_BASE_KEYS and close:
                    hint = f" (did you mean {close[0]!r} instead of {key!r}?)"
                    break
        raise PydanticCustomError(
            "task_kind",
            "not a task: a task needs one of {kinds}{hint}",
            {"kinds": _KIND_LIST, "hint": hint},
        )


def _task_tag(value: Any) -> str:
    if not isinstance(value, dict):
        return "<not a task>"
    kinds = task_kinds(value)
    if len(kinds) > 1:
        return "<ambiguous task>"
    return f"<{kinds[0]}>" if kinds else "<not a task>"


Task = Annotated[
    Annotated[CallTask, Tag("<call>")]
    | Annotated[DoTask, Tag("<do>")]
    | Annotated[EmitTask, Tag("<emit>")]
    | Annotated[ForTask, Tag("<for>")]
    | Annotated[ForkTask, Tag("<fork>")]
    | Annotated[ListenTask, Tag("<listen>")]
    | Annotated[RaiseTask, Tag("<raise>")]
    | Annotated[RunTask, Tag("<run>")]
    | Annotated[SetTask, Tag("<set>")]
    | Annotated[SwitchTask, Tag("<switch>")]
    | Annotated[TryTask, Tag("<try>")]
    | Annotated[WaitTask, Tag("<wait>")]
    | Annotated[_AmbiguousTask, Tag("<ambiguous task>")]
    | Annotated[_NotATask, Tag("<not a task>")],
    Discriminator(_task_tag),
]

TaskItem = Annotated[dict[str, Task], BeforeValidator(one_entry("a task", "- taskName: {...}"))]
TaskList = list[TaskItem]

for _model in (
    SubscriptionIterator,
    AsyncApiSubscription,
    AsyncApiArguments,
    CallAsyncApi,
    DoTask,
    ForTask,
    ForkConfiguration,
    ForkTask,
    ListenTask,
    Catch,
    TryTask,
):
    _model.model_rebuild()

__all__ = [
    "TASK_BASE_KEYS",
    "BuiltinCall",
    "FlowDirective",
    "Task",
    "TaskBase",
    "TaskItem",
    "TaskKind",
    "TaskList",
    "one_entry",
    "task_kind",
    "task_kinds",
]
