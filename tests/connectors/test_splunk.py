"""The Splunk connector and ``splunk.send_event`` against the HEC fake, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from ghapplets.connectors.config import SplunkConnector
from ghapplets.connectors.registry import Connectors
from ghapplets.exceptions import (
    ActionFailed,
    ActionInputInvalid,
    ActionUnavailable,
    ConnectorNotAllowed,
)
from ghapplets.fakes.config import HecToken
from ghapplets.secrets.refs import Lookup
from ghapplets.secrets.scopes import Reader

TOKEN = HecToken().token


def no_secrets(reader: Reader) -> Lookup:
    async def lookup(name: str) -> str:
        raise AssertionError(f"no secret should be read, {reader} read {name}")

    return lookup


@pytest.fixture
async def connectors(ghapplets_fakes: Any) -> AsyncIterator[Connectors]:
    config = SplunkConnector(
        kind="splunk", url=ghapplets_fakes.splunk.base_url, token=TOKEN, sourcetype="ghapplets"
    )
    opened = await Connectors.open({"splunk": config}, no_secrets)
    yield opened
    await opened.aclose()


async def test_an_event_reaches_hec_in_its_envelope(
    connectors: Connectors, ghapplets_fakes: Any
) -> None:
    out = await connectors.act(
        "splunk.send_event",
        {"event": {"job": "j-1", "ok": True}, "index": "sdlc", "fields": {"repo": "octo/x"}},
    )
    assert out == {"text": "Success", "code": 0}
    [event] = ghapplets_fakes.splunk.events
    assert event.event == {"job": "j-1", "ok": True}
    assert (event.index, event.sourcetype) == ("sdlc", "ghapplets")  # input, connector default
    assert event.fields == {"repo": "octo/x"}
    [request] = ghapplets_fakes.splunk.requests()
    assert request.header("authorization") == f"Splunk {TOKEN}"


async def test_bad_input_is_refused_before_any_call(
    connectors: Connectors, ghapplets_fakes: Any
) -> None:
    with pytest.raises(ActionInputInvalid, match="'event' is a required property"):
        await connectors.act("splunk.send_event", {"index": "main"})
    with pytest.raises(ActionInputInvalid, match="fields/repo"):
        await connectors.act("splunk.send_event", {"event": 1, "fields": {"repo": {"x": 1}}})
    with pytest.raises(ActionInputInvalid, match=r"no action named 'splunk\.send'"):
        await connectors.act("splunk.send", {"event": 1})
    assert ghapplets_fakes.splunk.requests() == []


async def test_hec_refusals_are_permanent_and_busy_is_retried(
    ghapplets_fakes: Any, connectors: Connectors
) -> None:
    wrong = await Connectors.open(
        {"s": SplunkConnector(kind="splunk", url=ghapplets_fakes.splunk.base_url, token="nope")},
        no_secrets,
    )
    try:
        with pytest.raises(ActionFailed, match=r"Splunk answered 403 .*Invalid token") as failed:
            await wrong.act("splunk.send_event", {"event": "x"})
        assert failed.value.status == 403 and not failed.value.retryable
        assert "nope" not in str(failed.value)
    finally:
        await wrong.aclose()
    ghapplets_fakes.splunk.inject(503, retry_after=7)
    with pytest.raises(ActionUnavailable, match="Server is busy") as busy:
        await connectors.act("splunk.send_event", {"event": "x"})
    assert busy.value.retryable and busy.value.retry_after == 7.0
    assert await connectors.act("splunk.send_event", {"event": "x"}) == {
        "text": "Success",
        "code": 0,
    }


async def test_the_applet_may_use_only_its_connectors(connectors: Connectors) -> None:
    with pytest.raises(ConnectorNotAllowed, match="not in the applet's 'connectors:' list"):
        await connectors.act("splunk.send_event", {"event": 1}, allowed=["jira"])
    with pytest.raises(ConnectorNotAllowed, match="no splunk connector named 'other'"):
        await connectors.act("splunk.send_event", {"event": 1, "connector": "other"})
    with pytest.raises(ConnectorNotAllowed, match="no jira connector"):
        Connectors({}).pick("jira", None, None)
