"""The embedded broker: dedup, ack/nak/term, redelivery after a crash, other writers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from ghapplets.broker.base import OutboundMessage
from ghapplets.broker.sqlite import SqliteBroker
from ghapplets.store.database import Database


def msg(i: int | str, stream: str = "events") -> OutboundMessage:
    return OutboundMessage(stream, f"m-{i}", {"n": str(i)}, f"data-{i}".encode())


async def open_broker(path: Path) -> SqliteBroker:
    broker = SqliteBroker(Database(path), poll_interval=0.05)
    await broker.start()
    return broker


async def close(broker: SqliteBroker) -> None:
    await broker.close()
    broker.db.close()


async def test_publish_dedups_on_message_id(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path / "b.db")
    acks = await asyncio.gather(*(broker.publish(msg(i % 10)) for i in range(30)))
    assert sum(not a.duplicate for a in acks) == 10
    assert len({a.seq for a in acks}) == 10
    assert await broker.depth("events") == 10
    later = await broker.publish(msg(3))
    assert later.duplicate
    await close(broker)


async def test_concurrent_publishes_share_commits(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path / "b.db")
    before = broker.db.commits
    await asyncio.gather(*(broker.publish(msg(i)) for i in range(500)))
    assert broker.db.commits - before < 50  # group commit, not one transaction each
    await close(broker)


async def test_fetch_ack_nak_term(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path / "b.db")
    consumer = broker.consumer("events")
    for i in range(3):
        await broker.publish(msg(i))
    got = await consumer.fetch(10, timeout=1)
    assert [m.msg_id for m in got] == ["m-0", "m-1", "m-2"]
    assert all(m.delivered == 1 for m in got)
    await consumer.ack(got[0])
    await consumer.term(got[1], "broken")
    started = time.monotonic()
    await consumer.nak(got[2], 0.2)
    again = await consumer.fetch(10, timeout=2)
    assert [m.msg_id for m in again] == ["m-2"]
    assert again[0].delivered == 2
    assert time.monotonic() - started >= 0.19
    assert await consumer.fetch(10, timeout=0.1) == []
    await consumer.ack(again[0])
    assert await broker.depth("events") == 0
    await close(broker)


async def test_unacked_messages_are_redelivered_after_restart(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path / "b.db")
    consumer = broker.consumer("jobs")
    for i in range(4):
        await broker.publish(msg(i, "jobs"))
    got = await consumer.fetch(10, timeout=1)
    await consumer.ack(got[0])
    await consumer.nak(got[1], 3600)  # far in the future
    # crash: no ack for the rest, no clean close of the consumer
    await close(broker)
    broker = await open_broker(tmp_path / "b.db")
    again = await broker.consumer("jobs").fetch(10, timeout=1)
    assert sorted(m.msg_id for m in again) == ["m-2", "m-3"]
    assert await broker.depth("jobs") == 3  # m-1 still waits for its delay
    assert (await broker.publish(msg(0, "jobs"))).duplicate  # dedup survives restarts
    await close(broker)


async def test_messages_inserted_by_another_process_are_picked_up(tmp_path: Path) -> None:
    server = await open_broker(tmp_path / "b.db")
    consumer = server.consumer("jobs")
    other = await open_broker(tmp_path / "b.db")  # e.g. the CLI's replay
    await other.publish(msg("from-cli", "jobs"))
    await server.publish(msg("own", "jobs"))
    seen: list[str] = []
    deadline = time.monotonic() + 3
    while len(seen) < 2 and time.monotonic() < deadline:
        seen.extend(m.msg_id for m in await consumer.fetch(10, timeout=0.2))
    assert sorted(seen) == ["m-from-cli", "m-own"]
    await asyncio.sleep(0.2)
    assert await consumer.fetch(10, timeout=0.2) == []  # each exactly once
    await close(other)
    await close(server)


async def test_ping_fails_when_closed(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path / "b.db")
    await broker.ping()
    await close(broker)
    try:
        await broker.ping()
    except Exception as exc:
        assert "closed" in str(exc)
    else:
        raise AssertionError("ping succeeded on a closed broker")


async def test_a_failed_neighbour_write_does_not_lose_swept_messages(tmp_path: Path) -> None:
    server = await open_broker(tmp_path / "b.db")
    consumer = server.consumer("jobs")
    other = await open_broker(tmp_path / "b.db")
    await other.publish(msg("external", "jobs"))

    def slow(conn) -> None:  # keeps the writer busy so the next writes share one transaction
        time.sleep(0.2)

    def broken(conn) -> None:
        conn.exec_driver_sql("INSERT INTO no_such_table VALUES (1)")

    busy = asyncio.create_task(server.db.write(slow))
    await asyncio.sleep(0.05)
    # queued behind it, in this order: the publish (which sweeps the external row), then a
    # write that fails, so the first try of their shared transaction is rolled back
    own = asyncio.create_task(server.publish(msg("own", "jobs")))
    await asyncio.sleep(0.05)
    failing = asyncio.create_task(server.db.write(broken))
    await busy
    assert not (await own).duplicate
    with pytest.raises(Exception, match="no_such_table"):
        await failing
    seen: list[str] = []
    deadline = time.monotonic() + 3
    while len(seen) < 2 and time.monotonic() < deadline:
        seen.extend(m.msg_id for m in await consumer.fetch(10, timeout=0.2))
    assert sorted(seen) == ["m-external", "m-own"]
    await close(other)
    await close(server)
