"""The DSL's durations: the object form, ISO 8601 strings, what is refused, and back."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ghapplets.blueprints.durations import MAX_SECONDS, format_duration, parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ({"hours": 2, "minutes": 15, "seconds": 30}, 8130.0),  # the reference's example
        ({"seconds": 10}, 10.0),
        ({"seconds": 3}, 3.0),
        ({"days": 1}, 86400.0),
        ({"minutes": 1}, 60.0),
        ({"milliseconds": 1}, 0.001),
        ({"milliseconds": 1500}, 1.5),
        ({"days": 1, "hours": 1, "minutes": 1, "seconds": 1, "milliseconds": 1}, 90061.001),
        ({"seconds": 0}, 0.0),
        ({"days": 2, "milliseconds": 250}, 172800.25),
    ],
)
def test_the_object_form(value: dict[str, int], seconds: float) -> None:
    assert parse_duration(value) == seconds
    assert isinstance(parse_duration(value), float)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("PT5S", 5.0),
        ("P1DT2H", 93600.0),
        ("PT2H15M30S", 8130.0),
        ("PT1.5S", 1.5),
        ("PT0.001S", 0.001),
        ("PT0.25S", 0.25),
        ("P1D", 86400.0),
        ("PT1M", 60.0),
        ("PT90M", 5400.0),
        ("P2W", 1209600.0),
        ("P1W2D", 777600.0),
        ("P1.5D", 129600.0),
        ("PT0S", 0.0),
        ("P0D", 0.0),
        ("P1DT0.5H", 88200.0),
    ],
)
def test_iso_8601_strings(value: str, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("P1Y", "years or months"),
        ("P1M", "years or months"),
        ("P0Y", "years or months"),
        ("P0M", "years or months"),
        ("P0Y0M1D", "years or months"),
        ("P1Y2M3DT4H", "years or months"),
        ("P1.5M", "years or months"),
        ("-P1D", "not an ISO 8601 duration"),
        ("-PT5S", "not an ISO 8601 duration"),
        ("P", "not an ISO 8601 duration"),
        ("PT", "not an ISO 8601 duration"),
        ("P1DT", "not an ISO 8601 duration"),
        ("", "not an ISO 8601 duration"),
        ("5S", "not an ISO 8601 duration"),
        ("pt5s", "not an ISO 8601 duration"),
        ("PT5s", "not an ISO 8601 duration"),
        ("PT1,5S", "not an ISO 8601 duration"),
        (" PT5S", "not an ISO 8601 duration"),
        ("PT5S\n", "not an ISO 8601 duration"),
        ("PT\u0665S", "not an ISO 8601 duration"),  # an Arabic-Indic five: not an ASCII digit
        ("PT5H5S5M", "not an ISO 8601 duration"),
        ("${ .delay }", "not an ISO 8601 duration"),
        ("5 seconds", "not an ISO 8601 duration"),
        ("P999999999999D", "longer than"),
        ("PT99999999999999999999S", "longer than"),
    ],
)
def test_refused_strings(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({}, "at least one of days, hours, minutes, seconds, milliseconds"),
        ({"seconds": -1}, "seconds cannot be negative"),
        ({"hours": 1, "minutes": -5}, "minutes cannot be negative"),
        ({"seconds": 1.5}, "seconds must be an integer"),
        ({"seconds": "5"}, "seconds must be an integer"),
        ({"seconds": True}, "seconds must be an integer"),
        ({"seconds": None}, "seconds must be an integer"),
        ({"weeks": 1}, "no property 'weeks'"),
        ({"Seconds": 1}, "no property 'Seconds'"),
        ({"years": 1}, "no property 'years'"),
        ({"seconds": 1, "extra": 0}, "no property 'extra'"),
        ({1: 1}, "no property 1"),
        ({"days": 10**20}, "longer than"),
    ],
)
def test_refused_objects(value: dict[Any, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(value)


@pytest.mark.parametrize("value", [5, 5.0, None, True, ["PT5S"], b"PT5S"])
def test_refused_types(value: Any) -> None:
    with pytest.raises(ValueError, match="a duration is an object"):
        parse_duration(value)


def test_the_longest_duration_is_accepted() -> None:
    assert parse_duration("P999999999D") == 999999999 * 86400
    assert parse_duration({"days": 999999999}) == 999999999 * 86400
    assert MAX_SECONDS == 999999999 * 86400 + 86399.999999
    assert parse_duration({"milliseconds": int(MAX_SECONDS * 1000)}) <= MAX_SECONDS
    with pytest.raises(ValueError, match="longer than"):
        parse_duration({"days": 1_000_000_000, "seconds": 1})


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "PT0S"),
        (0.0, "PT0S"),
        (5, "PT5S"),
        (90, "PT1M30S"),
        (3600, "PT1H"),
        (86400, "P1D"),
        (93600, "P1DT2H"),
        (8130, "PT2H15M30S"),
        (1.5, "PT1.5S"),
        (0.001, "PT0.001S"),
        (0.000001, "PT0.000001S"),
        (0.1 + 0.2, "PT0.3S"),
        (259201.25, "P3DT1.25S"),
        (86400 + 0.5, "P1DT0.5S"),
        (3660, "PT1H1M"),
        (86460, "P1DT1M"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "says"),
    [
        (-1, "finite and not negative, not -1"),
        (-0.001, "finite and not negative, not -0.001"),
        (float("nan"), "finite and not negative, not nan"),
        (float("inf"), "finite and not negative, not inf"),
        ("5", "a number, not '5'"),
        (None, "a number, not None"),
        (True, "a number, not True"),
    ],
)
def test_format_duration_refuses(seconds: Any, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        format_duration(seconds)


@given(st.integers(min_value=0, max_value=10**12))
def test_milliseconds_round_trip(milliseconds: int) -> None:
    seconds = parse_duration({"milliseconds": milliseconds})
    assert seconds == milliseconds / 1000
    assert parse_duration(format_duration(seconds)) == seconds


@given(
    st.fixed_dictionaries(
        {},
        optional={
            unit: st.integers(min_value=0, max_value=10_000)
            for unit in ("days", "hours", "minutes", "seconds", "milliseconds")
        },
    ).filter(bool)
)
def test_both_forms_agree(value: dict[str, int]) -> None:
    seconds = parse_duration(value)
    milliseconds = (
        value.get("days", 0) * 86_400_000
        + value.get("hours", 0) * 3_600_000
        + value.get("minutes", 0) * 60_000
        + value.get("seconds", 0) * 1000
        + value.get("milliseconds", 0)
    )
    assert seconds == milliseconds / 1000
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({}, "a duration object needs at least one of days, hours, minutes, seconds, milliseconds"),
        (
            {"weeks": 1},
            "a duration has no property 'weeks'"
            " (it has days, hours, minutes, seconds, milliseconds)",
        ),
        (
            {"days": 10**20},
            "the duration {'days': 100000000000000000000} is longer than this runtime can wait",
        ),
        (
            "5S",
            "'5S' is not an ISO 8601 duration such as 'PT5S' or 'P1DT2H'"
            " (a 'P', then components with ASCII digits, a '.' for fractions; no sign)",
        ),
        (
            "P1M",
            "the duration 'P1M' has years or months, whose length depends on the date:"
            " write it in weeks, days, hours, minutes or seconds",
        ),
        ("P999999999999D", "the duration 'P999999999999D' is longer than this runtime can wait"),
    ],
)
def test_a_refused_duration_says_why_in_full(value: Any, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(value)
    assert str(caught.value) == message
