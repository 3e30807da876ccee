"""The overview's charts: round axes, points scaled to them, unknown values, and the p95."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, select_autoescape

from ghapplets.dashboard import charts
from ghapplets.dashboard.stats import p95


def test_axes_end_on_round_numbers() -> None:
    assert [charts.nice_max(v) for v in (0, 0.3, 1, 3, 7, 12, 101)] == [1, 0.5, 1, 5, 10, 20, 200]
    assert charts.nice_max(float("nan")) == 1


def test_a_line_chart_scales_its_points_to_the_axis() -> None:
    c = charts.line_chart("t", "d", ["a", "b", "c"], {"s": [0, 5, 10]})
    (s,) = c.series
    points = [tuple(map(float, p.split(","))) for p in s.points.split()]
    bottom, top = charts.HEIGHT - charts.PAD_BOTTOM, charts.PAD_TOP
    assert [y for _, y in points] == [bottom, (bottom + top) / 2, top]
    assert points[0][0] == charts.PAD_LEFT and points[-1][0] == charts.WIDTH - charts.PAD_RIGHT
    assert [t.label for t in c.y_ticks] == ["0", "5", "10"]
    assert c.rows == [["", "s"], ["a", "0"], ["b", "5"], ["c", "10"]]
    assert s.total == 15


def test_a_bar_chart_shows_an_unknown_value_as_none() -> None:
    c = charts.bar_chart("t", "d", {"events": 4, "jobs": None})
    assert [(b.label, b.height > 0) for b in c.bars] == [("events", True), ("jobs", False)]
    assert c.rows[2] == ["jobs", "n/a"]
    assert charts.bar_chart("t", "d", {}).empty


def test_p95_is_the_nearest_rank() -> None:
    assert p95([]) == 0
    assert p95([3.0]) == 3.0
    assert p95([float(i) for i in range(1, 101)]) == 95.0


def test_a_chart_is_drawn_as_accessible_escaped_svg() -> None:
    env = Environment(
        loader=PackageLoader("ghapplets.dashboard", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    macro = env.get_template("_charts.html").module.chart  # type: ignore[attr-defined]
    line = charts.line_chart("Events <per> minute", "d", ["10:00", "10:01"], {"<b>x</b>": [1, 2]})
    html = str(macro(line, "c1"))
    assert '<svg viewBox="0 0 600 200" role="img" aria-labelledby="c1-title c1-desc"' in html
    assert f'points="{line.series[0].points}"' in html
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert "Events &lt;per&gt; minute" in html
    assert "<table>" in html and '<th scope="row">10:01</th>' in html  # the values, as text
    bars = str(macro(charts.bar_chart("Queues", "d", {"jobs": 3, "events": None}), "c2"))
    assert bars.count("<rect ") == 2 and "<td>n/a</td>" in bars
    empty = str(macro(charts.bar_chart("Queues", "d", {}), "c3"))
    assert "<svg" not in empty and "No data." in empty
