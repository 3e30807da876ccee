"""The DSL's durations (the reference's "Duration"): reading one into seconds, writing seconds.

A duration is written either as an object of non-negative integers (``days``, ``hours``,
``minutes``, ``seconds``, ``milliseconds``; at least one) or as an ISO 8601 duration string
(``PT5S``, ``P1DT2H``, ``PT0.25S``), the form the schema's ``DurationLiteral`` pattern allows.
A runtime expression that yields a duration is evaluated by the engine first; its result is
read here.

Years and months are refused: their length depends on the calendar date they start from, which
a wait, timeout or retry delay does not have. Weeks are 7 days. Negative durations are refused
(the schema has no sign). Durations longer than :data:`MAX_SECONDS` (Python's largest
``timedelta``, some 2.7 million years) are refused too, so every accepted duration is a finite
float a timer can take.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Any

import isodate

__all__ = ["MAX_SECONDS", "format_duration", "parse_duration"]

MAX_SECONDS = timedelta.max.total_seconds()
"""The longest duration accepted, in seconds."""

_UNITS_MS = {
    "days": 86_400_000,
    "hours": 3_600_000,
    "minutes": 60_000,
    "seconds": 1_000,
    "milliseconds": 1,
}

# The schema's DurationLiteral pattern, with ASCII digits only; the groups name the components.
_ISO = re.compile(
    r"P(?!$)(?P<Y>\d+(?:\.\d+)?Y)?(?P<M>\d+(?:\.\d+)?M)?(?:\d+(?:\.\d+)?W)?(?:\d+(?:\.\d+)?D)?"
    r"(?:T(?=\d)(?:\d+(?:\.\d+)?H)?(?:\d+(?:\.\d+)?M)?(?:\d+(?:\.\d+)?S)?)?",
    re.ASCII,
)


def parse_duration(value: Any) -> float:
    """The duration ``value`` describes, in seconds.

    ``value`` is an object (``{"hours": 2, "minutes": 15}``) or an ISO 8601 string
    (``"PT2H15M"``). Anything else, an unknown or negative or non-integer property, an empty
    object, a string that is not an ISO 8601 duration, years or months, is a ValueError
    saying which.
    """
    if isinstance(value, str):
        return _parse_iso(value)
    if isinstance(value, dict):
        return _parse_object(value)
    raise ValueError(
        f"a duration is an object (days, hours, minutes, seconds, milliseconds) or an ISO 8601 "
        f"string such as 'PT5S', not {value!r}"
    )


def _parse_object(value: dict[Any, Any]) -> float:
    if not value:
        raise ValueError(
            "a duration object needs at least one of days, hours, minutes, seconds, milliseconds"
        )
    total_ms = 0
    for name, amount in value.items():
        unit = _UNITS_MS.get(name) if isinstance(name, str) else None
        if unit is None:
            raise ValueError(
                f"a duration has no property {name!r} "
                "(it has days, hours, minutes, seconds, milliseconds)"
            )
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise ValueError(f"a duration's {name} must be an integer, not {amount!r}")
        if amount < 0:
            raise ValueError(f"a duration's {name} cannot be negative ({amount})")
        total_ms += amount * unit
    if total_ms > MAX_SECONDS * 1000:
        raise _too_long(value)
    return total_ms / 1000


def _parse_iso(value: str) -> float:
    match = _ISO.fullmatch(value)
    if match is None:
        raise ValueError(
            f"{value!r} is not an ISO 8601 duration such as 'PT5S' or 'P1DT2H' "
            "(a 'P', then components with ASCII digits, a '.' for fractions; no sign)"
        )
    if match["Y"] or match["M"]:
        raise ValueError(
            f"the duration {value!r} has years or months, whose length depends on the date: "
            "write it in weeks, days, hours, minutes or seconds"
        )
    try:
        delta = isodate.parse_duration(value)
    except OverflowError as exc:
        raise _too_long(value) from exc
    except (isodate.ISO8601Error, ValueError) as exc:  # pragma: no cover - the pattern is stricter
        raise ValueError(f"{value!r} is not an ISO 8601 duration: {exc}") from exc
    if not isinstance(delta, timedelta):  # pragma: no cover - years and months refused above
        raise ValueError(f"the duration {value!r} has years or months")
    return delta.total_seconds()


def _too_long(value: Any) -> ValueError:
    return ValueError(f"the duration {value!r} is longer than this runtime can wait")


def format_duration(seconds: float) -> str:
    """``seconds`` as an ISO 8601 duration, in days, hours, minutes and seconds (to the
    microsecond, no trailing zeros): 90 is ``PT1M30S``, 93600 ``P1DT2H``, 0 ``PT0S``."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ValueError(f"a duration in seconds is a number, not {seconds!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration is finite and not negative, not {seconds!r}")
    total_us = round(seconds * 1_000_000)
    days, rest = divmod(total_us, 86_400_000_000)
    hours, rest = divmod(rest, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    whole, micros = divmod(rest, 1_000_000)
    text = "P" + (f"{days}D" if days else "")
    time = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if micros:
        time += f"{whole}.{micros:06d}".rstrip("0") + "S"
    elif whole or not (days or time):
        time += f"{whole}S"
    return text + ("T" + time if time else "")
