"""The connectors' registry: which GitHub App installation an event came from (sans I/O: only
a whole number in the payload's ``installation.id`` is one), credentials resolved from secrets
and redacted, and a connector whose secret is missing set aside while the others open."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from structlog.testing import capture_logs

from ghapplets.connectors.config import SplunkConnector
from ghapplets.connectors.registry import Connectors, Unusable, installation_of, resolved
from ghapplets.events.cloudevent import CloudEvent
from ghapplets.exceptions import ConnectorNotAllowed, NotFound
from ghapplets.logging import redact
from ghapplets.secrets.refs import Lookup
from ghapplets.secrets.scopes import Reader


def event(data: Any) -> CloudEvent:
    return CloudEvent(id="d1", source="https://github.com/o/r", type="com.github.push", data=data)


@pytest.mark.parametrize(
    ("data", "found"),
    [
        ({"installation": {"id": 2001}}, 2001),
        ({"installation": {"id": "2001"}}, None),  # a string is not an id
        ({"installation": {"id": True}}, None),  # nor is a boolean (an int to Python)
        ({"installation": 2001}, None),
        ({}, None),
        ([{"installation": {"id": 2001}}], None),  # a payload that is no object
        (b"installation", None),
        (None, None),
    ],
)
def test_the_installation_is_a_whole_number_in_the_payload(data: Any, found: int | None) -> None:
    assert installation_of(event(data)) == found


def splunk(token: str) -> SplunkConnector:
    return SplunkConnector(kind="splunk", url="https://splunk.example.com:8088", token=token)


def store_of(values: dict[str, str]) -> Lookup:
    async def lookup(name: str) -> str:
        if name not in values:
            raise NotFound(f"no secret {name!r}")
        return values[name]

    return lookup


async def test_a_credential_from_a_secret_is_resolved_and_redacted_a_literal_kept() -> None:
    token = f"hec-{secrets.token_hex(12)}"
    plain = await resolved(splunk("${secret:HEC}"), store_of({"HEC": token}))
    assert plain.token == token and redact(f"sent {token}") == "sent ***"
    literal = f"lit-{secrets.token_hex(12)}"
    assert (await resolved(splunk(literal), store_of({}))).token == literal
    assert redact(literal) == literal  # written in the config: not a secret to hide


async def test_a_connector_whose_secret_is_missing_is_set_aside_and_the_others_open() -> None:
    configs = {"broken": splunk("${secret:NOPE}"), "fine": splunk("${secret:HEC}")}

    def lookup_for(reader: Reader) -> Lookup:
        return store_of({"HEC": f"hec-{secrets.token_hex(12)}"})  # registered for redaction

    with capture_logs() as logs:
        opened = await Connectors.open(configs, lookup_for, tolerant=True)
    try:
        assert isinstance(opened.by_name["broken"], Unusable)
        assert not isinstance(opened.by_name["fine"], Unusable)
        [warning] = logs
        assert (warning["event"], warning["connector"]) == ("connector not usable", "broken")
        assert "NOPE" in warning["error"]
    finally:
        await opened.aclose()


class Named:
    def __init__(self, name: str, kind: str) -> None:
        self.name, self.kind = name, kind


@pytest.mark.parametrize(
    ("connectors", "name", "allowed", "picked", "error"),
    [
        ([Named("j1", "jira")], None, None, "j1", ""),
        ([Named("j1", "jira"), Named("s", "splunk")], "j1", None, "j1", ""),
        ([], None, None, "", "the project has no jira connector in ghapplets.yaml"),
        (
            [Named("j1", "jira"), Named("j2", "jira")],
            None,
            None,
            "",
            "the project has more than one jira connector; name one with 'connector'",
        ),
        ([Named("j1", "splunk")], "j1", None, "", "the project has no jira connector named 'j1'"),
        ([Named("j1", "jira")], "j9", None, "", "the project has no jira connector named 'j9'"),
        (
            [Named("j1", "jira")],
            None,
            ["other"],
            "",
            "connector 'j1' is not in the applet's 'connectors:' list",
        ),
    ],
)
def test_the_connector_an_action_runs_on(
    connectors: list[Named], name: str | None, allowed: list[str] | None, picked: str, error: str
) -> None:
    registry = Connectors({c.name: c for c in connectors})
    if error:
        with pytest.raises(ConnectorNotAllowed) as refused:
            registry.pick("jira", name, allowed)
        assert refused.value.message == error
    else:
        assert registry.pick("jira", name, allowed).name == picked
