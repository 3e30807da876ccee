"""Charts as data for inline SVG: the geometry is computed here, the page's template draws it
(escaped, like any text), so no chart library and no script is needed. Every chart also has
its numbers as a table for screen readers and for anyone who wants the exact values."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

WIDTH = 600
HEIGHT = 200
PAD_LEFT = 44
PAD_RIGHT = 8
PAD_TOP = 10
PAD_BOTTOM = 26
PALETTE = 6  # series colours (CSS classes series-0 .. series-5)


@dataclass(frozen=True)
class Series:
    name: str
    points: str  # "x,y x,y ..." of an SVG polyline
    tone: int  # its colour, 0 .. PALETTE-1
    total: float


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    x: float
    y: float
    width: float
    height: float
    tone: int


@dataclass(frozen=True)
class Tick:
    at: float  # x or y in the SVG
    label: str


@dataclass
class Chart:
    """One chart: ``kind`` line or bar; ``rows`` the table of its values (a header row first)."""

    title: str
    description: str
    kind: str
    width: int = WIDTH
    height: int = HEIGHT
    series: list[Series] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    empty: bool = False


def nice_max(value: float) -> float:
    """A round upper bound for an axis: 1, 2 or 5 times a power of ten, at least ``value``."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}".rstrip("0")


def _y_ticks(top: float, scale: float) -> list[Tick]:
    bottom = HEIGHT - PAD_BOTTOM
    return [Tick(bottom - top * f * scale, number(top * f)) for f in (0.0, 0.5, 1.0)]


def line_chart(
    title: str,
    description: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    unit: str = "",
) -> Chart:
    """Lines over the ``labels`` (the x axis, e.g. minutes), one per entry of ``series``."""
    chart = Chart(title, description, "line")
    n = len(labels)
    chart.rows = [["", *series.keys()]] + [
        [label, *(number(values[i]) + unit for values in series.values())]
        for i, label in enumerate(labels)
    ]
    peak = max((v for values in series.values() for v in values), default=0.0)
    if n == 0 or not series:
        chart.empty = True
        return chart
    top = nice_max(peak)
    inner_w = WIDTH - PAD_LEFT - PAD_RIGHT
    inner_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    scale = inner_h / top
    step = inner_w / max(1, n - 1)
    for tone, (name, values) in enumerate(series.items()):
        coords = " ".join(
            f"{PAD_LEFT + i * step:.1f},{HEIGHT - PAD_BOTTOM - v * scale:.1f}"
            for i, v in enumerate(values)
        )
        chart.series.append(Series(name, coords, tone % PALETTE, float(sum(values))))
    every = max(1, math.ceil(n / 6))
    chart.x_ticks = [Tick(PAD_LEFT + i * step, labels[i]) for i in range(0, n, every)]
    chart.y_ticks = _y_ticks(top, scale)
    return chart


def bar_chart(title: str, description: str, values: Mapping[str, float | None]) -> Chart:
    """One bar per entry; a value of None (unknown) is drawn as no bar and shown as "n/a"."""
    chart = Chart(title, description, "bar")
    chart.rows = [["", "value"]] + [
        [k, "n/a" if v is None else number(v)] for k, v in values.items()
    ]
    if not values:
        chart.empty = True
        return chart
    top = nice_max(max((v or 0.0) for v in values.values()))
    inner_w = WIDTH - PAD_LEFT - PAD_RIGHT
    inner_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    scale = inner_h / top
    slot = inner_w / len(values)
    width = min(80.0, slot * 0.6)
    for i, (label, value) in enumerate(values.items()):
        height = (value or 0.0) * scale
        x = PAD_LEFT + i * slot + (slot - width) / 2
        chart.bars.append(
            Bar(label, value or 0.0, x, HEIGHT - PAD_BOTTOM - height, width, height, i % PALETTE)
        )
        chart.x_ticks.append(Tick(x + width / 2, label))
    chart.y_ticks = _y_ticks(top, scale)
    return chart
