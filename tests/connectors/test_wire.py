"""The local action endpoint's wire format on its own (sans-I/O): every action error travels to
the applet's process and back as the same exception, with what the job's retry needs."""

from __future__ import annotations

from typing import Any

import pytest

from ghapplets.connectors import wire
from ghapplets.exceptions import (
    ActionFailed,
    ActionInputInvalid,
    ActionUnavailable,
    AppletError,
    ConnectorNotAllowed,
    ConnectorUnusable,
)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ActionInputInvalid("jira.create_issue: summary: required"), 400),
        (ConnectorNotAllowed("connector 'jira' is not in the applet's 'connectors:' list"), 403),
        (ConnectorUnusable("connector 'jira' cannot be used: JIRA_TOKEN is not set"), 409),
        (ActionFailed("Jira answered 404: Issue does not exist", status=404), 422),
        (ActionUnavailable("Jira answered 503", status=503, retry_after=7.0), 503),
        (ActionUnavailable("timed out"), 503),
    ],
)
def test_each_error_comes_back_as_itself(error: AppletError, status: int) -> None:
    answered, doc = wire.error_body(error)
    assert answered == status
    back = wire.error_of(answered, doc)
    assert type(back) is type(error)
    assert (back.type, back.message, back.retryable) == (error.type, error.message, error.retryable)
    assert back.retry_after == error.retry_after
    assert getattr(back, "status", None) == getattr(error, "status", None)


def test_the_document_names_the_type_and_never_more_than_the_error_says() -> None:
    _, doc = wire.error_body(ActionFailed("refused", status=409))
    assert doc == {
        "error": {
            "type": "ActionFailed",
            "message": "refused",
            "retryable": False,
            "retry_after": None,
            "status": 409,
        }
    }


@pytest.mark.parametrize(
    ("status", "doc", "kind", "retryable"),
    [
        (502, None, ActionUnavailable, True),  # a proxy's page in front of the endpoint
        (500, "Internal Server Error", ActionUnavailable, True),
        (404, {"detail": "Not Found"}, ActionFailed, False),
        (401, wire.refusal("no valid action token"), ActionFailed, False),
        (413, {"error": {"type": "Refused"}}, ActionFailed, False),  # no message: not ours
    ],
)
def test_an_answer_not_from_an_action_is_still_an_action_error(
    status: int, doc: Any, kind: type[AppletError], retryable: bool
) -> None:
    error = wire.error_of(status, doc)
    assert type(error) is kind
    assert error.retryable is retryable
    assert getattr(error, "status", None) == status
    assert str(status) in error.message or error.message == "no valid action token"


def test_a_refusal_is_a_permanent_error_document() -> None:
    assert wire.refusal("no") == {"error": {"type": "Refused", "message": "no", "retryable": False}}


def test_an_error_of_a_type_without_a_status_of_its_own_is_a_500() -> None:
    status, doc = wire.error_body(AppletError("boom"))
    assert status == 500 and doc["error"]["type"] == "AppletError"


@pytest.mark.parametrize(
    ("status", "error", "kind", "answered"),
    [
        # at 500 exactly, a retryable error of another type is retried; one that is not is not
        (500, {"type": "Timeout", "message": "m", "retryable": True}, ActionUnavailable, None),
        (500, {"type": "Weird", "message": "m", "retryable": False}, ActionFailed, 500),
        # a vendor status that is not a number is not taken for one
        (422, {"type": "ActionFailed", "message": "m", "status": "404"}, ActionFailed, 422),
    ],
)
def test_the_status_and_retryability_of_an_error_document(
    status: int, error: dict[str, Any], kind: type[AppletError], answered: int | None
) -> None:
    back = wire.error_of(status, {"error": error})
    assert type(back) is kind
    assert getattr(back, "status", None) == answered


def test_a_refusal_keeps_its_message_and_is_permanent() -> None:
    error = wire.error_of(401, wire.refusal("no valid action token"))
    assert isinstance(error, ActionFailed)
    assert (error.message, error.status) == ("no valid action token", 401)


def test_a_retryable_5xx_of_another_type_is_retried() -> None:
    doc = {"error": {"type": "Timeout", "message": "slow", "retryable": True, "retry_after": 2}}
    error = wire.error_of(504, doc)
    assert isinstance(error, ActionUnavailable)
    assert error.retry_after == 2.0


def test_a_retry_after_that_is_not_a_number_is_dropped() -> None:
    doc = {"error": {"type": "ActionUnavailable", "message": "busy", "retry_after": "soon"}}
    error = wire.error_of(503, doc)
    assert isinstance(error, ActionUnavailable)
    assert error.retry_after is None
