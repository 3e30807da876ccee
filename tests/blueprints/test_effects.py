"""The calls of our extensions as a blueprint's tasks (``ghapplets.blueprints.effects``): the
event an applet gets, its failures as DSL errors, a connector action's refusals, and stored
secrets as a blueprint reads them. The pieces a host hands in (a runtime, the connectors) are
small stand-ins here that record what they were given; the whole path runs against the real
runtimes and vendor fakes in tests/dispatch and tests/examples."""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from ghapplets.applets.result import AppletOutcome
from ghapplets.applets.runtime import Invocation, Runtime
from ghapplets.blueprints.effects import (
    CALL_EVENT_TYPE,
    call_action,
    call_applet,
    call_event,
    outcome_value,
    secret_values,
)
from ghapplets.blueprints.errors import ErrorKind
from ghapplets.connectors.registry import Connectors
from ghapplets.exceptions import (
    ActionFailed,
    ActionInputInvalid,
    ActionUnavailable,
    BlueprintError,
    ConnectorNotAllowed,
    ConnectorUnusable,
    ErrorType,
)


def test_stored_secrets_that_are_json_objects_are_objects() -> None:
    assert secret_values(
        {
            "basic": ' {"username": "u", "password": "p"}',
            "token": "abc",
            "broken": "{not json",
            "list": "[1, 2]",
        }
    ) == {
        "basic": {"username": "u", "password": "p"},
        "token": "abc",
        "broken": "{not json",
        "list": "[1, 2]",
    }
    assert secret_values({}) == {}


def test_the_call_event_names_the_applet_and_has_an_id_stable_for_the_step() -> None:
    event = call_event("run-1/do/0/triage", "ns/triage@1", "labeler", {"n": 1})
    assert event.type == CALL_EVENT_TYPE
    assert event.subject == "labeler"
    assert event.source == "/blueprints/ns/triage@1"
    assert event.data == {"n": 1}
    assert event.id == hashlib.sha256(b"run-1/do/0/triage").hexdigest()[:32]


def failed(**fields: Any) -> BlueprintError:
    with pytest.raises(BlueprintError) as caught:
        outcome_value(AppletOutcome(ok=False, **fields), "applet 'x'")
    return caught.value


def test_an_applet_failure_becomes_the_dsl_error_of_its_kind() -> None:
    assert outcome_value(AppletOutcome.success({"a": 1}), "applet 'x'") == {"a": 1}
    timeout = failed(error_type=ErrorType.TIMEOUT.value, error_message="too slow")
    assert (timeout.type, timeout.status, timeout.title, timeout.detail) == (
        ErrorKind.TIMEOUT.type,
        408,
        "Timeout",
        "applet 'x': too slow",
    )
    later = failed(error_type="ActionUnavailable", error_message="busy", retryable=True)
    assert (later.type, later.status, later.title) == (
        ErrorKind.COMMUNICATION.type,
        503,
        "ActionUnavailable",
    )
    other = failed(error_type="Mine", error_message="broke")
    assert (other.type, other.status, other.title, other.detail) == (
        ErrorKind.RUNTIME.type,
        500,
        "Mine",
        "applet 'x': broke",
    )
    untyped = failed()
    assert (untyped.title, untyped.detail) == ("AppletError", "applet 'x': AppletError")


@dataclass
class Refusing:
    """Connectors whose every action raises ``error`` (or answers ``answer``)."""

    error: Exception | None = None
    answer: Any = None
    seen: list[tuple[str, Any]] = field(default_factory=list)

    async def act(self, name: str, data: Any) -> Any:
        self.seen.append((name, data))
        if self.error is not None:
            raise self.error
        return self.answer


def act(connectors: Refusing, data: Any = None) -> Any:
    return asyncio.run(call_action(cast(Connectors, connectors), "jira.create_issue", data))


@pytest.mark.parametrize(
    ("error", "kind", "status", "title"),
    [
        (ActionInputInvalid("no project"), ErrorKind.VALIDATION, 400, "ActionInputInvalid"),
        (ConnectorNotAllowed("not yours"), ErrorKind.AUTHORIZATION, 403, "ConnectorNotAllowed"),
        (ConnectorUnusable("no secret"), ErrorKind.CONFIGURATION, 400, "ConnectorUnusable"),
        (ActionFailed("no such issue", status=404), ErrorKind.COMMUNICATION, 404, "ActionFailed"),
        (ActionUnavailable("busy"), ErrorKind.COMMUNICATION, 503, "ActionUnavailable"),
    ],
)
def test_a_refused_action_becomes_the_dsl_error_of_its_kind(
    error: Exception, kind: ErrorKind, status: int, title: str
) -> None:
    with pytest.raises(BlueprintError) as caught:
        act(Refusing(error))
    assert (caught.value.type, caught.value.status, caught.value.title) == (
        kind.type,
        status,
        title,
    )
    assert caught.value.detail.startswith("jira.create_issue: ")


def test_an_action_gets_its_input_or_an_empty_object() -> None:
    connectors = Refusing(answer={"key": "PROJ-1"})
    assert act(connectors, {"summary": "s"}) == {"key": "PROJ-1"}
    act(connectors, "not an object")
    assert connectors.seen == [
        ("jira.create_issue", {"summary": "s"}),
        ("jira.create_issue", {}),
    ]
    with pytest.raises(BlueprintError, match=re.escape("no connectors to run 'jira.create_issue'")):
        asyncio.run(call_action(None, "jira.create_issue", {}))


@dataclass
class Spec:
    connectors: list[str]


@dataclass
class Recording:
    """A runtime that records the invocation it gets and answers ``outcome``."""

    outcome: AppletOutcome
    spec: Spec = field(default_factory=lambda: Spec(["github"]))
    invocations: list[Invocation] = field(default_factory=list)

    async def invoke(self, invocation: Invocation) -> AppletOutcome:
        self.invocations.append(invocation)
        return self.outcome


class Handing:
    """Connectors that hand out tokens naming what they were asked for."""

    def caller(self, names: list[str], event: Any) -> Any:
        return ("caller", tuple(names), event.id)

    def clients(self, names: list[str], event: Any) -> Any:
        return ("clients", tuple(names), event.id)


def test_an_applet_call_hands_the_applet_its_event_secrets_and_connectors() -> None:
    runtime = Recording(AppletOutcome.success("done"))
    runtimes = cast(dict[str, Runtime], {"labeler": runtime})
    output = asyncio.run(
        call_applet(
            runtimes,
            "labeler",
            {"n": 1},
            key="run-1/do/0/label",
            blueprint="ns/b@1",
            secrets={"token": "t"},
            connectors=cast(Connectors, Handing()),
        )
    )
    assert output == "done"
    (invocation,) = runtime.invocations
    assert (invocation.job_id, invocation.delivery_id) == ("run-1/do/0/label",) * 2
    assert invocation.event.data == {"n": 1}
    assert invocation.secrets == {"token": "t"}
    event_id = invocation.event.id
    assert invocation.actions == ("caller", ("github",), event_id)
    assert invocation.clients == ("clients", ("github",), event_id)
    bare = Recording(AppletOutcome.success(None))
    asyncio.run(call_applet(cast(dict[str, Runtime], {"b": bare}), "b", {}, key="k", blueprint="x"))
    assert (bare.invocations[0].secrets, bare.invocations[0].actions) == ({}, None)
    assert bare.invocations[0].clients is None
    with pytest.raises(BlueprintError, match="no applet named 'missing' is installed"):
        asyncio.run(call_applet(runtimes, "missing", {}, key="k", blueprint="x"))
