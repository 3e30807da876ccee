"""The embedded broker's dedup window, by behaviour on a clock the test moves: a message id is
remembered as long as its row is kept, so a duplicate is dropped until retention has pruned
the settled message (``storage.retention_days`` after it was published), and accepted as a new
message after that. A message still pending is never pruned: its duplicates are always dropped.
(NATS's ``duplicate_window`` is the server's, not ours.)"""

from __future__ import annotations

from pathlib import Path

from ghapplets.broker.base import OutboundMessage
from ghapplets.broker.sqlite import SqliteBroker
from ghapplets.store.database import Database
from tests.conftest import LeaseClock

WINDOW = 30 * 86400.0  # the retention the test prunes with


def msg(name: str) -> OutboundMessage:
    return OutboundMessage("events", f"m-{name}", {}, name.encode())


async def test_a_duplicate_is_dropped_until_retention_prunes_its_settled_message(
    tmp_path: Path,
) -> None:
    clock = LeaseClock()
    db = Database(tmp_path / "b.db")
    broker = SqliteBroker(db, consume=True, poll_interval=0.05, clock=clock)
    await broker.start()
    try:
        published = clock.now
        names = ["acked", "dead", "pending"]
        first = await broker.publish_many([msg(n) for n in names])
        consumer = broker.consumer("events")
        got = {m.msg_id: m for m in await consumer.fetch(10, timeout=2)}
        assert sorted(got) == ["m-acked", "m-dead", "m-pending"]
        await consumer.ack(got["m-acked"])
        await consumer.term(got["m-dead"], "refused")
        await consumer.nak(got["m-pending"], 10 * WINDOW)  # waits for a (very) late retry

        clock.now = published + WINDOW - 1  # inside the window: every id is remembered
        await broker.prune(clock.now - WINDOW)  # as retention does
        within = await broker.publish_many([msg(n) for n in names])
        assert [(a.duplicate, a.seq) for a in within] == [(True, a.seq) for a in first]

        clock.now = published + WINDOW + 1  # past it: the settled messages are gone
        await broker.prune(clock.now - WINDOW)  # as retention does
        after = await broker.publish_many([msg(n) for n in names])
        assert [a.duplicate for a in after] == [False, False, True]
        assert after[0].seq > first[-1].seq and after[1].seq > first[-1].seq  # stored anew
        assert after[2].seq == first[2].seq  # the pending one is still the stored one
        assert await broker.depth("events") == 3
    finally:
        await broker.close()
        db.close()
