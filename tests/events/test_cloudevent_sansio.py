"""The CloudEvent model without I/O: structured and binary round trips, required attributes."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ghapplets.events import CloudEvent

names = st.from_regex(r"[a-z][a-z0-9]{0,19}", fullmatch=True).filter(
    lambda n: (
        n
        not in {"id", "source", "type", "subject", "time", "datacontenttype", "data", "specversion"}
    )
)
texts = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF), min_size=1, max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
events = st.builds(
    CloudEvent,
    id=texts,
    source=texts.map(lambda s: "/" + s),
    type=texts,
    data=json_values,
    subject=st.none() | texts,
    time=st.just("2026-12-03T12:00:00Z"),
    extensions=st.dictionaries(names, texts, max_size=3),
)


@given(events)
def test_structured_round_trip_keeps_every_attribute(event: CloudEvent) -> None:
    assert CloudEvent.from_json(event.to_json()) == event


@given(events)
def test_binary_round_trip_keeps_every_attribute(event: CloudEvent) -> None:
    again = CloudEvent.from_binary(event.binary_headers(), event.data_bytes())
    assert again == event


def test_binary_headers_carry_the_attributes_and_extensions() -> None:
    event = CloudEvent(
        "d-1", "/github", "com.github.push", {"a": 1}, subject="o/r", extensions={"ghhost": "x"}
    )
    headers = event.binary_headers()
    assert headers["ce-id"] == "d-1" and headers["ce-type"] == "com.github.push"
    assert headers["ce-subject"] == "o/r" and headers["ce-ghhost"] == "x"
    assert headers["content-type"] == "application/json"
    assert "ce-data" not in headers
    assert orjson.loads(event.data_bytes()) == {"a": 1}


def test_binary_without_parse_leaves_data_out() -> None:
    event = CloudEvent("d-1", "/github", "t", {"a": 1})
    lazy = CloudEvent.from_binary(event.binary_headers(), b"not json at all", parse=False)
    assert lazy.data is None and lazy.id == "d-1"


def test_non_json_bodies_stay_bytes() -> None:
    event = CloudEvent("d-1", "/x", "t", b"raw", datacontenttype="text/plain")
    again = CloudEvent.from_binary(event.binary_headers(), event.data_bytes())
    assert again.data == b"raw" and again.datacontenttype == "text/plain"


@pytest.mark.parametrize("missing", ["id", "source", "type"])
def test_a_structured_event_without_a_required_attribute_is_refused(missing: str) -> None:
    doc = {"id": "1", "source": "/s", "type": "t", "data": None}
    doc.pop(missing)
    with pytest.raises(ValueError, match=missing):
        CloudEvent.from_dict(doc)


def test_a_structured_event_must_be_an_object() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        CloudEvent.from_json(b"[1, 2]")
