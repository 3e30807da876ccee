"""The overview's figures (:func:`ghapplets.dashboard.stats.overview`) from the API's answers,
without I/O: deliveries per minute and source, dead jobs per minute, the p95 of the applets' own
time per minute, the queues now, and which figures were capped."""

from __future__ import annotations

from types import SimpleNamespace as NS
from typing import Any

from ghapplets.dashboard.stats import MAX_RECORDS, overview
from ghapplets.store.records import JobStatus

NOW = 1_800_000_000.0 + 30  # half a minute into a minute
LAST = NOW - 30  # the start of the last minute of the hour


def page(items: list[Any], more: bool = False) -> NS:
    return NS(items=items, next_cursor="next" if more else None)


def answers(**overrides: Any) -> tuple[list[tuple[str, dict[str, Any]]], Any]:
    asked: list[tuple[str, dict[str, Any]]] = []
    values = {
        "list_deliveries": page(
            [
                NS(source="github", received_at=LAST + 1),
                NS(source="github", received_at=LAST + 2),
                NS(source="jira", received_at=LAST - 60),
                NS(source="jira", received_at=NOW - 7200),  # outside the hour: not counted
            ]
        ),
        "list_jobs": page(
            [
                NS(status=JobStatus.DEAD, updated_at=LAST + 5),
                NS(status=JobStatus.SUCCEEDED, updated_at=LAST + 5),
            ]
        ),
        "applet_times": NS(
            items=[NS(finished_at=LAST + 1, seconds=s) for s in range(1, 21)]
            + [NS(finished_at=LAST - 60, seconds=0.5)],
            capped=False,
        ),
        "health": NS(queues={"events": 3, "jobs": None}, dead_letters=4),
        **overrides,
    }

    async def fetch(name: str, query: dict[str, Any]) -> Any:
        asked.append((name, query))
        return values[name]

    return asked, fetch


def column(chart: Any, name: str) -> list[str]:
    index = chart.rows[0].index(name)
    return [row[index] for row in chart.rows[1:]]


async def test_the_figures_of_the_last_hour() -> None:
    asked, fetch = answers()
    found = await overview(fetch, now=NOW)
    events, dead, queues, times = found.charts
    assert column(events, "github")[-1] == "2" and column(events, "jira")[-2] == "1"
    assert sum(float(v) for v in column(events, "jira")) == 1
    assert column(dead, "dead jobs")[-1] == "1" and sum(map(float, column(dead, "dead jobs"))) == 1
    assert times.title == "p95 applet time (s)"
    assert column(times, "p95 seconds")[-1] == "19"  # the nearest rank of 1..20
    assert column(times, "p95 seconds")[-2] == "0.5"
    assert queues.rows[1:] == [["events queue", "3"], ["jobs queue", "n/a"], ["dead letters", "4"]]
    assert found.capped == []
    start = LAST - 59 * 60
    assert ("applet_times", {"since": start, "limit": MAX_RECORDS}) in asked
    assert ("list_deliveries", {"since": start, "limit": 200}) in asked


async def test_a_capped_figure_says_so() -> None:
    _, fetch = answers(
        list_deliveries=page([NS(source="github", received_at=LAST)] * MAX_RECORDS, more=True),
        applet_times=NS(items=[], capped=True),
    )
    found = await overview(fetch, now=NOW)
    assert found.capped == ["deliveries", "applet times"]
