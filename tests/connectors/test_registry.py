"""Which GitHub App installation an event came from (sans I/O): only a whole number in the
payload's ``installation.id`` is one."""

from __future__ import annotations

from typing import Any

import pytest

from ghapplets.connectors.registry import installation_of
from ghapplets.events.cloudevent import CloudEvent


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
