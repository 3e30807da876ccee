"""The overview's figures, from the admin API's own lists (so a viewer sees what the API shows
a viewer): the last hour's deliveries per minute and source, jobs that died per minute, the
95th percentile per minute of the applets' own time (each attempt's, from ``/applet-times``:
not the time a job waited in the queue), and the queues' depths now.

Bounded: at most :data:`MAX_RECORDS` deliveries and jobs are read per figure (the newest); the
overview says when a figure was capped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ghapplets.dashboard.charts import Chart, bar_chart, line_chart
from ghapplets.store.records import JobStatus

MINUTES = 60
MAX_RECORDS = 2000
PAGE = 200
Fetch = Callable[[str, dict[str, Any]], Awaitable[Any]]


@dataclass
class Overview:
    charts: list[Chart]
    capped: list[str]
    health: Any


def p95(values: Sequence[float]) -> float:
    """The 95th percentile (nearest rank) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def minute_labels(start: float, minutes: int) -> list[str]:
    return [datetime.fromtimestamp(start + 60 * i, UTC).strftime("%H:%M") for i in range(minutes)]


def bucket(at: float, start: float, minutes: int) -> int | None:
    i = int((at - start) // 60)
    return i if 0 <= i < minutes else None


async def _all(fetch: Fetch, name: str, query: dict[str, Any]) -> tuple[list[Any], bool]:
    """The items of a list route over its pages, up to :data:`MAX_RECORDS`; and whether more
    were left unread."""
    items: list[Any] = []
    cursor = None
    while True:
        page = await fetch(name, {**query, "limit": PAGE, **({"cursor": cursor} if cursor else {})})
        items.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return items, False
        if len(items) >= MAX_RECORDS:
            return items, True


async def overview(fetch: Fetch, now: float | None = None) -> Overview:
    now = time.time() if now is None else now
    start = (math.floor(now / 60) - MINUTES + 1) * 60.0
    labels = minute_labels(start, MINUTES)
    capped: list[str] = []
    deliveries, more = await _all(fetch, "list_deliveries", {"since": start})
    if more:
        capped.append("deliveries")
    per_source: dict[str, list[float]] = {}
    for d in deliveries:
        i = bucket(d.received_at, start, MINUTES)
        if i is not None:
            per_source.setdefault(d.source, [0.0] * MINUTES)[i] += 1
    jobs, more = await _all(fetch, "list_jobs", {"since": start})
    if more:
        capped.append("jobs")
    dead = [0.0] * MINUTES
    for j in jobs:
        i = bucket(j.updated_at, start, MINUTES)
        if i is not None and j.status == JobStatus.DEAD:
            dead[i] += 1
    ran = await fetch("applet_times", {"since": start, "limit": MAX_RECORDS})
    if ran.capped:
        capped.append("applet times")
    times: list[list[float]] = [[] for _ in range(MINUTES)]
    for t in ran.items:
        i = bucket(t.finished_at, start, MINUTES)
        if i is not None:
            times[i].append(t.seconds)
    health = await fetch("health", {})
    queues: dict[str, float | None] = {
        f"{k} queue": (None if v is None else float(v)) for k, v in health.queues.items()
    }
    queues["dead letters"] = None if health.dead_letters is None else float(health.dead_letters)
    charts = [
        line_chart(
            "Events per minute",
            "Webhooks received per minute over the last hour, one line per source.",
            labels,
            dict(sorted(per_source.items())),
        ),
        line_chart(
            "Failures per minute",
            "Jobs that went to the dead letters per minute over the last hour.",
            labels,
            {"dead jobs": dead},
        ),
        bar_chart(
            "Queue depth now",
            "Messages waiting in each queue, and the dead letters, now.",
            queues,
        ),
        line_chart(
            "p95 applet time (s)",
            "95th percentile of how long the applets' attempts ran (not the wait in the"
            " queue), per minute, in seconds.",
            labels,
            {"p95 seconds": [round(p95(t), 3) for t in times]},
        ),
    ]
    return Overview(charts, capped, health)
