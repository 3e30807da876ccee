"""The embedded broker: dedup, group commit, ack/nak/term, leases, bounded memory, one consumer
process with any number of publisher processes, wakeups across processes, the writer lock.

Everything runs on real SQLite files; "another process" is a real one (``python -c``)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ghapplets.broker import sqlite as sqlite_broker
from ghapplets.broker.base import OutboundMessage
from ghapplets.broker.sqlite import BrokerBusy, SqliteBroker, wake_address
from ghapplets.exceptions import BrokerUnavailable
from ghapplets.store.database import Database


def msg(i: int | str, stream: str = "events") -> OutboundMessage:
    return OutboundMessage(stream, f"m-{i}", {"n": str(i)}, f"data-{i}".encode())


async def open_broker(
    path: Path, *, consume: bool = True, poll_interval: float = 0.05, ack_wait: float = 30.0
) -> SqliteBroker:
    broker = SqliteBroker(
        Database(path), consume=consume, poll_interval=poll_interval, ack_wait=ack_wait
    )
    await broker.start()
    return broker


async def close(broker: SqliteBroker) -> None:
    await broker.close()
    broker.db.close()


def rows(path: Path, where: str = "1") -> list[tuple[object, ...]]:
    db = Database(path)
    try:
        return db.read_sync(
            lambda c: c.exec_driver_sql(
                f"SELECT msg_id, state, delivered, holder FROM broker_messages WHERE {where} "
                "ORDER BY seq"
            ).fetchall()
        )
    finally:
        db.close()


# a child process: ``python -c PRELUDE + body`` with the database path as argv[1]
PRELUDE = """
import asyncio, os, sys, time
from pathlib import Path
from ghapplets.broker.base import OutboundMessage
from ghapplets.broker.sqlite import SqliteBroker
from ghapplets.store.database import Database
path = Path(sys.argv[1])
def say(*words):
    print(*words, flush=True)
"""


def child(body: str, path: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", PRELUDE + textwrap.dedent(body), str(path), *args]


async def spawn(body: str, path: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *child(body, path, *args),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def line(proc: asyncio.subprocess.Process, timeout: float = 30) -> str:
    assert proc.stdout is not None
    raw = await asyncio.wait_for(proc.stdout.readline(), timeout)
    if not raw:
        err = await proc.stderr.read() if proc.stderr else b""
        raise AssertionError(f"child said nothing; stderr:\n{err.decode()}")
    return raw.decode().strip()


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[SqliteBroker]:
    b = await open_broker(tmp_path / "b.db")
    yield b
    await close(b)


# -- publishing ------------------------------------------------------------------------------
async def test_publish_dedups_on_message_id(broker: SqliteBroker) -> None:
    acks = await asyncio.gather(*(broker.publish(msg(i % 10)) for i in range(30)))
    assert sum(not a.duplicate for a in acks) == 10
    assert len({a.seq for a in acks}) == 10
    assert await broker.depth("events") == 10
    later = await broker.publish(msg(3))
    assert later.duplicate


async def test_concurrent_publishes_share_commits(broker: SqliteBroker) -> None:
    before = broker.db.commits
    await asyncio.gather(*(broker.publish(msg(i)) for i in range(500)))
    assert broker.db.commits - before < 50  # group commit, not one transaction each


async def test_a_failed_neighbour_write_does_not_lose_a_publish(broker: SqliteBroker) -> None:
    consumer = broker.consumer("jobs")

    def slow(conn) -> None:  # keeps the writer busy so the next writes share one transaction
        time.sleep(0.2)

    def broken(conn) -> None:
        conn.exec_driver_sql("INSERT INTO no_such_table VALUES (1)")

    busy = asyncio.create_task(broker.db.write(slow))
    await asyncio.sleep(0.05)
    # queued behind it: a publish, then a write that fails, so the first try of their shared
    # transaction is rolled back and each is tried again on its own
    own = asyncio.create_task(broker.publish(msg("own", "jobs")))
    await asyncio.sleep(0.05)
    failing = asyncio.create_task(broker.db.write(broken))
    await busy
    assert not (await own).duplicate
    with pytest.raises(Exception, match="no_such_table"):
        await failing
    got = await consumer.fetch(10, timeout=2)
    assert [m.msg_id for m in got] == ["m-own"]
    assert [r[0] for r in rows(broker.db.path)] == ["m-own"]


# -- consuming -------------------------------------------------------------------------------
async def test_fetch_ack_nak_term(broker: SqliteBroker) -> None:
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
    stored = rows(broker.db.path)
    assert [(r[0], r[1]) for r in stored] == [("m-0", 1), ("m-1", 2), ("m-2", 1)]
    data = broker.db.read_sync(
        lambda c: c.exec_driver_sql("SELECT msg_id, data FROM broker_messages").fetchall()
    )
    assert dict(data) == {"m-0": None, "m-1": b"data-1", "m-2": None}  # acked: body dropped


async def test_nak_delays_are_honoured_in_due_order_without_polling(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path / "b.db", poll_interval=5.0)  # the poll never fires
    consumer = broker.consumer("jobs")
    for name in "abc":
        await broker.publish(msg(name, "jobs"))
    got = {m.msg_id: m for m in await consumer.fetch(10, timeout=1)}
    assert sorted(got) == ["m-a", "m-b", "m-c"]
    start = time.monotonic()
    await consumer.nak(got["m-a"], 0.45)
    await consumer.nak(got["m-b"], 0.15)
    await consumer.nak(got["m-c"], 0.3)
    commits = broker.db.commits
    seen: list[tuple[str, float]] = []
    while len(seen) < 3 and time.monotonic() - start < 3:
        for m in await consumer.fetch(10, timeout=3):
            seen.append((m.msg_id, time.monotonic() - start))
            assert m.delivered == 2
            await consumer.ack(m)
    assert [name for name, _ in seen] == ["m-b", "m-c", "m-a"]
    for (_, at), due in zip(seen, (0.15, 0.3, 0.45), strict=True):
        assert due - 0.01 <= at < due + 0.3, seen  # woken at the due time, not the 5 s poll
    # each wakeup is one look at the database (a lease and an ack), not a busy loop
    assert broker.db.commits - commits < 20
    await close(broker)


async def test_lease_runs_out_and_the_message_is_delivered_again(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path / "b.db", ack_wait=0.5)
    consumer = broker.consumer("jobs")
    await broker.publish_many([msg(1, "jobs"), msg(2, "jobs")])
    before = time.monotonic()  # the lease starts after this
    first = await consumer.fetch(10, timeout=1)
    assert [(m.msg_id, m.delivered) for m in first] == [("m-1", 1), ("m-2", 1)]
    leased = rows(broker.db.path)
    assert {r[3] for r in leased} == {broker.token}  # the holder is this consumer
    assert await consumer.fetch(10, timeout=0.1) == []  # leased: not delivered twice at once
    # m-1 is still being worked on: its lease is extended; m-2's runs out
    await asyncio.sleep(0.1)
    await consumer.in_progress(first[0])
    again = await consumer.fetch(10, timeout=2)
    assert [(m.msg_id, m.delivered) for m in again] == [("m-2", 2)]
    assert 0.5 <= time.monotonic() - before < 1.0  # not before the lease ran out
    # the late first delivery can no longer nak it (only the current delivery's lease counts)
    await consumer.nak(first[1], 0)
    assert await consumer.fetch(10, timeout=0.05) == []
    await consumer.ack(again[0])
    later = await consumer.fetch(10, timeout=2)  # m-1's extended lease runs out too
    assert [(m.msg_id, m.delivered) for m in later] == [("m-1", 2)]
    await close(broker)


async def test_unacked_messages_are_redelivered_after_restart(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path / "b.db")
    consumer = broker.consumer("jobs")
    for i in range(4):
        await broker.publish(msg(i, "jobs"))
    got = await consumer.fetch(10, timeout=1)
    await consumer.ack(got[0])
    await consumer.nak(got[1], 3600)  # far in the future
    # no ack for the rest; the broker closes without settling them
    await close(broker)
    broker = await open_broker(tmp_path / "b.db")
    again = await broker.consumer("jobs").fetch(10, timeout=0.2)  # at once, not after 30 s
    assert sorted((m.msg_id, m.delivered) for m in again) == [("m-2", 2), ("m-3", 2)]
    assert await broker.depth("jobs") == 3  # m-1 still waits for its delay
    assert (await broker.publish(msg(0, "jobs"))).duplicate  # dedup survives restarts
    await close(broker)


async def test_a_restart_after_kill_9_releases_the_dead_consumers_leases_at_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "b.db"
    publisher = await open_broker(path, consume=False)
    await publisher.publish_many([msg(i, "jobs") for i in range(8)])
    proc = await spawn(
        """
        async def main():
            broker = SqliteBroker(Database(path), consume=True, ack_wait=3600)
            await broker.start()
            got = await broker.consumer("jobs").fetch(5, timeout=5)
            say("leased", len(got))
            await asyncio.sleep(3600)  # working on them... until kill -9
        asyncio.run(main())
        """,
        path,
    )
    assert await line(proc) == "leased 5"
    os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()
    held = rows(path, "holder IS NOT NULL")
    assert len(held) == 5 and all(r[2] == 1 for r in held)

    broker = await open_broker(path)  # the new worker holds the lock: the old one is dead
    started = time.monotonic()
    got = await broker.consumer("jobs").fetch(10, timeout=1)
    assert time.monotonic() - started < 2  # not after the 3,600 s lease
    assert sorted((m.msg_id, m.delivered) for m in got) == sorted(
        [(f"m-{i}", 2) for i in range(5)] + [(f"m-{i}", 1) for i in range(5, 8)]
    )
    assert [m.msg_id for m in got[:5]] == [f"m-{i}" for i in range(5)]  # back in their place
    await close(broker)
    await close(publisher)


async def test_fetch_holds_at_most_a_batch_of_a_big_backlog_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    publisher = await open_broker(path, consume=False)
    total = 50_000
    for start in range(0, total, 5_000):
        chunk = range(start, start + 5_000)
        await publisher.publish_many(
            [OutboundMessage("jobs", f"m-{i}", {"n": str(i)}, b"x" * 200) for i in chunk]
        )
    await close(publisher)

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        broker = await open_broker(path)  # a fresh worker on a 50,000-message backlog
        consumer = broker.consumer("jobs")
        got = await consumer.fetch(100, timeout=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [m.msg_id for m in got] == [f"m-{i}" for i in range(100)]
    assert len(rows(path, "holder IS NOT NULL")) == 100  # leased: only what was fetched
    # 50,000 messages as Message objects would take tens of MB; a batch of 100 takes little
    assert peak - before < 3_000_000, peak - before
    assert await broker.depth("jobs") == total
    await close(broker)


async def insert_settled(broker: SqliteBroker, rows: list[tuple[str, float, int]]) -> None:
    """Messages as the broker leaves them: (id, published at, state: 0 pending, 1 acked,
    2 terminated)."""

    def insert(conn):  # type: ignore[no-untyped-def]
        for msg_id, at, state in rows:
            conn.exec_driver_sql(
                "INSERT INTO broker_messages (stream, msg_id, headers, data, created_at,"
                " available_at, delivered, state) VALUES ('jobs', ?, '{}', x'', ?, ?, 0, ?)",
                (msg_id, at, at, state),
            )

    await broker.db.write(insert)


def msg_ids(broker: SqliteBroker) -> list[str]:
    return broker.db.read_sync(
        lambda c: sorted(r[0] for r in c.exec_driver_sql("SELECT msg_id FROM broker_messages"))
    )


async def test_ping_says_what_the_database_answered(
    broker: SqliteBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    await broker.ping()

    async def broken(fn: object) -> object:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(broker.db, "read", broken)
    with pytest.raises(BrokerUnavailable, match=r"^disk I/O error$"):
        await broker.ping()


async def test_prune_removes_old_settled_messages_only(broker: SqliteBroker) -> None:
    old, new = time.time() - 100 * 86400, time.time()
    rows = [("old-acked", old, 1), ("old-dead", old, 2), ("old-pending", old, 0), ("new", new, 1)]
    await insert_settled(broker, rows)
    assert await broker.prune(time.time() - 30 * 86400) == 2
    assert msg_ids(broker) == ["new", "old-pending"]
    assert await broker.prune(time.time() - 30 * 86400) == 0


async def test_prune_goes_a_chunk_per_transaction(
    broker: SqliteBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_broker, "PRUNE_CHUNK", 3)
    old, new = time.time() - 100 * 86400, time.time()
    # the oldest message is still pending (a long retry delay), and old4 too: they do not
    # stop the rest, and each chunk starts after the last one looked at
    rows = [("pending", old, 0)]
    rows += [(f"old{i}", old + i, 0 if i == 4 else 1 + i % 2) for i in range(10)]
    rows += [(f"new{i}", new, 1) for i in range(3)]
    await insert_settled(broker, rows)
    commits = broker.db.commits
    assert await broker.prune(time.time() - 30 * 86400) == 9
    assert msg_ids(broker) == ["new0", "new1", "new2", "old4", "pending"]
    # 11 old messages and the first new one, 3 a transaction: 4 transactions, then it stops
    assert broker.db.commits - commits == 4


async def test_prune_keeps_a_message_published_at_the_cutoff(broker: SqliteBroker) -> None:
    cutoff = time.time() - 30 * 86400
    await insert_settled(broker, [("at-cutoff", cutoff, 1), ("before", cutoff - 0.001, 1)])
    assert await broker.prune(cutoff) == 1
    assert msg_ids(broker) == ["at-cutoff"]


async def test_the_due_messages_query_uses_its_index(broker: SqliteBroker) -> None:
    await broker.publish_many([msg(i) for i in range(100)])

    def plan(sql: str, *args: object) -> str:
        return " | ".join(
            str(r[-1])
            for r in broker.db.read_sync(
                lambda c: c.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", args).fetchall()
            )
        )

    due = plan(
        "SELECT seq FROM broker_messages WHERE state = 0 AND stream = ? AND available_at <= ? "
        "ORDER BY available_at, seq LIMIT 10",
        "events",
        time.time(),
    )
    assert "ix_broker_due" in due and "TEMP B-TREE" not in due, due
    depth = plan("SELECT count(*) FROM broker_messages WHERE state = 0 AND stream = ?", "events")
    assert "COVERING INDEX ix_broker_due" in depth, depth


# -- one consumer, many publishers -----------------------------------------------------------
async def test_a_publisher_only_broker_never_consumes(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    publisher = await open_broker(path, consume=False)
    with pytest.raises(RuntimeError, match="only publishes"):
        publisher.consumer("events")
    await publisher.publish(msg(1))
    assert rows(path) == [("m-1", 0, 0, None)]
    # and does not stand in the way of the worker
    worker = await open_broker(path)
    assert [m.msg_id for m in await worker.consumer("events").fetch(10, timeout=1)] == ["m-1"]
    await close(worker)
    await close(publisher)


async def test_a_second_consumer_process_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    worker = await open_broker(path)
    code = """
        async def main():
            try:
                await SqliteBroker(Database(path), consume=True).start()
            except Exception as exc:
                say(type(exc).__name__, exc)
            else:
                say("started")
        asyncio.run(main())
        """
    proc = await spawn(code, path)
    answer = await line(proc)
    await proc.wait()
    assert answer.startswith("BrokerBusy another Ghapplets worker is already running"), answer
    assert str(tmp_path) in answer
    # in this process too, and through another path to the same file
    alias = tmp_path / "alias.db"
    alias.symlink_to(path)
    for other in (path, alias):
        refused = SqliteBroker(Database(other), consume=True)
        with pytest.raises(BrokerBusy):
            await refused.start()
        refused.db.close()
    await close(worker)
    proc = await spawn(code, path)  # once the worker is gone, another may start
    assert await line(proc) == "started"
    await proc.wait()


PUBLISH_ON_GO = """
async def main():
    broker = SqliteBroker(Database(path), consume=False)
    await broker.start()
    say("ready")
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    sent = time.time()
    await broker.publish(OutboundMessage("jobs", "from-" + str(os.getpid()), {}, b"x"))
    say(sent)
    await broker.close()
asyncio.run(main())
"""


@pytest.mark.parametrize("long_path", [False, True], ids=["socket-file", "abstract-socket"])
async def test_a_publish_in_another_process_wakes_the_consumer_at_once(
    tmp_path: Path, long_path: bool
) -> None:
    folder = tmp_path / ("deep-" * 25 if long_path else "d")
    path = folder / "b.db"
    address = wake_address(path)
    if long_path:  # too long for a socket file: Linux's abstract namespace
        assert isinstance(address, bytes) and address.startswith(b"\0ghapplets-wake-")
        assert address == wake_address(folder / ".." / folder.name / "b.db")  # same file
    else:
        assert address == str(path.resolve()) + ".wake"
    broker = await open_broker(path, poll_interval=10)  # only a wakeup can be prompt
    consumer = broker.consumer("jobs")
    for _ in range(3):  # a few rounds, so one lucky poll cannot pass it
        proc = await spawn(PUBLISH_ON_GO, path)
        assert await line(proc) == "ready"
        fetch = asyncio.create_task(consumer.fetch(10, timeout=5))
        await asyncio.sleep(0.1)  # the consumer is idle, waiting
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
        got = await fetch
        received = time.time()
        sent = float(await line(proc))
        await proc.wait()
        assert [m.msg_id for m in got] == [f"from-{proc.pid}"]
        assert received - sent < 0.1, received - sent
        await consumer.ack(got[0])
    if not long_path:
        assert Path(str(address)).exists()
    await close(broker)
    if not long_path:
        assert not Path(str(address)).exists()  # the worker removes its socket


async def test_a_publish_by_another_broker_on_the_file_wakes_the_idle_consumer_once(
    tmp_path: Path,
) -> None:
    # the same datagram as from another process, with both ends in this one (where the
    # wakeup is also checked not to leave the socket readable: a loop that spins on it)
    path = tmp_path / "b.db"
    worker = await open_broker(path, poll_interval=10)  # only a wakeup can be prompt
    publisher = await open_broker(path, consume=False)
    consumer = worker.consumer("jobs")
    try:
        for i in range(3):
            fetch = asyncio.create_task(consumer.fetch(10, timeout=5))
            await asyncio.sleep(0.1)  # the consumer is idle, waiting
            sent = time.monotonic()
            await publisher.publish(msg(i, "jobs"))
            got = await fetch
            assert [m.msg_id for m in got] == [f"m-{i}"]
            assert time.monotonic() - sent < 1.0
            await consumer.ack(got[0])
        busy = time.process_time()
        await asyncio.sleep(0.5)  # idle: nothing left to read on the wake socket
        assert time.process_time() - busy < 0.25
    finally:
        await close(publisher)
        await close(worker)


async def test_a_nak_wakes_the_idle_consumer_when_the_message_is_due(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path / "b.db", poll_interval=10)
    consumer = broker.consumer("jobs")
    try:
        await broker.publish(msg(1, "jobs"))
        [first] = await consumer.fetch(10, timeout=1)
        fetch = asyncio.create_task(consumer.fetch(10, timeout=5))
        await asyncio.sleep(0.1)  # idle, asleep until its timeout: nothing else is due
        naked = time.monotonic()
        await consumer.nak(first, 0.3)
        got = await fetch
        assert [(m.msg_id, m.delivered) for m in got] == [("m-1", 2)]
        assert 0.25 <= time.monotonic() - naked < 2.0  # at its due time, not the fetch's end
        await consumer.ack(got[0])
    finally:
        await close(broker)


async def test_wakeups_without_a_listening_consumer_are_harmless(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    publisher = await open_broker(path, consume=False)
    await publisher.publish(msg(1))  # no socket file: ENOENT
    Path(str(wake_address(path))).touch()  # a stale file, nobody bound: ECONNREFUSED
    await publisher.publish(msg(2))
    assert len(rows(path)) == 2
    worker = await open_broker(path)  # replaces the stale file with its socket
    got = await worker.consumer("events").fetch(10, timeout=1)
    assert [m.msg_id for m in got] == ["m-1", "m-2"]
    await close(worker)
    await close(publisher)


WRITER = """
async def main():
    # no busy handler: were two writers ever in SQLite's lock at once, one would fail at once
    broker = SqliteBroker(Database(path, busy_timeout_ms=0), consume=False)
    await broker.start()
    name, count = sys.argv[2], int(sys.argv[3])
    say("ready")
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    errors = []
    async def lane(k):
        for i in range(k, count, 20):  # 20 lanes: many small group commits
            try:
                await broker.publish(OutboundMessage("jobs", f"{name}-{i}", {}, b"x" * 512))
            except Exception as exc:
                errors.append(str(exc))
    await asyncio.gather(*(lane(k) for k in range(20)))
    say(len(errors), errors[:1])
    await broker.close()
asyncio.run(main())
"""


async def test_writer_processes_take_turns_through_the_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    db = Database(path)  # created and migrated before the writers race
    db.open()
    db.close()
    procs = [await spawn(WRITER, path, name, "2000") for name in ("a", "b")]
    for proc in procs:
        assert await line(proc) == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    results = [await line(proc, timeout=120) for proc in procs]
    for proc in procs:
        assert await proc.wait() == 0
    assert results == ["0 []", "0 []"]
    stored = {r[0] for r in rows(path)}
    assert stored == {f"{n}-{i}" for n in "ab" for i in range(2000)}


def test_child_processes_can_import_the_broker(tmp_path: Path) -> None:
    """The helpers above run real processes; make a broken child fail loudly here first."""
    out = subprocess.run(
        child("say('ok')", tmp_path / "b.db"), capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "ok", out.stderr
