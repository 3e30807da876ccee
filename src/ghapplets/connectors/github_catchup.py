"""GitHub catch-up: redeliver the App's webhooks that never reached the store.

GitHub never retries a failed webhook delivery: when the gateway was down, unreachable or slow,
the event is lost unless someone asks GitHub to deliver it again. The App's deliveries API
lists every attempt (``GET /app/hook/deliveries``, newest first, paged with a ``cursor``), and
``POST /app/hook/deliveries/{id}/attempts`` redelivers one, both with the App's JWT.

:func:`catch_up` lists the deliveries of the last ``since`` seconds and, for each webhook (a
``guid``, shared by its attempts) that no attempt delivered (no 2xx) and that the store does
not hold (GitHub may time out on an answer the gateway did store), asks for one redelivery of
its newest attempt. The redelivered webhook reaches the gateway as any other, under the same
``X-GitHub-Delivery``, so a webhook that arrives twice is stored once.

The pure part (parsing, the choice) is apart from the I/O: :func:`parse_delivery`,
:func:`next_cursor`, :func:`to_redeliver`. ``ghapplets github catch-up`` runs it by hand; the
worker runs it every ``catch_up_every`` seconds, under a lease, so that one replica does.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ghapplets.exceptions import ActionFailed, ActionUnavailable

if TYPE_CHECKING:
    from ghapplets.connectors.github import GitHub

DELIVERIES = "/app/hook/deliveries"
PER_PAGE = 100
MAX_PAGES = 50  # 5,000 attempts at most per run: GitHub keeps three days of them
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="next"')
_CURSOR = re.compile(r"[?&]cursor=([A-Za-z0-9_=-]+)")

HeldCheck = Callable[[str], Awaitable[bool]]  # guid -> does the store hold that delivery?


@dataclass(frozen=True, slots=True)
class HookDelivery:
    """One delivery attempt, as the deliveries API lists it."""

    id: int
    guid: str
    delivered_at: float  # epoch seconds
    status_code: int  # 0: no answer at all
    event: str
    action: str | None = None
    redelivery: bool = False

    @property
    def delivered(self) -> bool:
        return 200 <= self.status_code < 300


@dataclass
class CatchUpReport:
    """What one run saw and did."""

    listed: int = 0  # attempts listed in the window
    failed: int = 0  # webhooks no attempt delivered
    held: list[str] = field(default_factory=list)  # of those, guids the store holds anyway
    redelivered: list[str] = field(default_factory=list)  # guids asked again
    errors: list[str] = field(default_factory=list)  # redeliveries GitHub refused

    def to_json(self) -> dict[str, Any]:
        return {
            "listed": self.listed,
            "failed": self.failed,
            "held": self.held,
            "redelivered": self.redelivered,
            "errors": self.errors,
        }


def parse_delivery(doc: Any) -> HookDelivery:
    """One entry of the deliveries list; ``ValueError`` when it is not one."""
    if not isinstance(doc, dict):
        raise ValueError("a delivery is not an object")
    try:
        delivered_at = datetime.fromisoformat(str(doc["delivered_at"])).timestamp()
        status_code = doc.get("status_code") or 0
        action = doc.get("action")
        return HookDelivery(
            id=int(doc["id"]),
            guid=str(doc["guid"]),
            delivered_at=delivered_at,
            status_code=int(status_code),
            event=str(doc["event"]),
            action=action if isinstance(action, str) else None,
            redelivery=bool(doc.get("redelivery", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"a delivery without a valid {exc}") from None


def next_cursor(link: str | None) -> str | None:
    """The ``cursor`` of the ``rel="next"`` page in a ``Link`` header, if any."""
    if not link:
        return None
    found = _NEXT.search(link)
    if found is None:
        return None
    cursor = _CURSOR.search(found[1])
    return cursor[1] if cursor else None


def to_redeliver(attempts: Iterable[HookDelivery]) -> list[HookDelivery]:
    """For each webhook that none of its attempts delivered, its newest attempt (oldest webhook
    first)."""
    newest: dict[str, HookDelivery] = {}
    delivered: set[str] = set()
    for attempt in attempts:
        if attempt.delivered:
            delivered.add(attempt.guid)
        current = newest.get(attempt.guid)
        if current is None or attempt.id > current.id:
            newest[attempt.guid] = attempt
    failed = [a for guid, a in newest.items() if guid not in delivered]
    return sorted(failed, key=lambda a: (a.delivered_at, a.id))


async def list_deliveries(github: GitHub, since: float) -> list[HookDelivery]:
    """The attempts delivered at ``since`` (epoch seconds) or later, newest first."""
    found: list[HookDelivery] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        path = f"{DELIVERIES}?per_page={PER_PAGE}" + (f"&cursor={cursor}" if cursor else "")
        response = await github.send("GET", path)
        page = response.json()
        if not isinstance(page, list):
            raise ActionUnavailable("GitHub's deliveries list is not a list", status=502)
        try:
            attempts = [parse_delivery(doc) for doc in page]
        except ValueError as exc:
            raise ActionUnavailable(f"GitHub's deliveries list: {exc}", status=502) from None
        found.extend(a for a in attempts if a.delivered_at >= since)
        cursor = next_cursor(response.headers.get("link"))
        if cursor is None or not attempts or attempts[-1].delivered_at < since:
            break
    return found


async def catch_up(
    github: GitHub, held: HeldCheck, *, since: float, dry_run: bool = False
) -> CatchUpReport:
    """Redeliver the webhooks of the window that neither GitHub delivered nor the store holds.
    A redelivery GitHub refuses (the attempt is gone, say) is reported, not raised; listing
    errors are raised (:class:`ActionFailed`, :class:`ActionUnavailable`)."""
    attempts = await list_deliveries(github, since)
    report = CatchUpReport(listed=len(attempts))
    failed: Sequence[HookDelivery] = to_redeliver(attempts)
    report.failed = len(failed)
    for attempt in failed:
        if await held(attempt.guid):
            report.held.append(attempt.guid)
            continue
        if not dry_run:
            try:
                await github.call("POST", f"{DELIVERIES}/{attempt.id}/attempts")
            except ActionFailed as exc:
                report.errors.append(f"{attempt.guid}: {exc.message}")
                continue
        report.redelivered.append(attempt.guid)
    return report
