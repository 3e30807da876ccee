"""The broker contract, run against every backend: SQLite (embedded) and NATS JetStream.

Every test here runs twice, through the ``backend`` / ``broker`` fixtures of this folder's
conftest; NATS tests get a fresh server each. Backend-specific behaviour lives in
test_sqlite_broker.py and test_nats_broker.py.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from structlog.testing import capture_logs

from ghapplets.broker.base import Broker, Consumer, Message, OutboundMessage
from ghapplets.exceptions import BrokerUnavailable
from tests.broker.conftest import Backend


def msg(i: int | str, stream: str = "events", **headers: str) -> OutboundMessage:
    return OutboundMessage(stream, f"m-{i}", {"n": str(i), **headers}, f"data-{i}".encode())


async def fetch_all(
    consumer: Consumer, want: int, timeout: float = 5.0, batch: int = 256
) -> list[Message]:
    """Fetch until ``want`` messages arrived or ``timeout`` passed."""
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got.extend(await consumer.fetch(batch, timeout=min(0.5, deadline - time.monotonic())))
    return got


async def test_publish_then_fetch_returns_the_message_intact(broker: Broker) -> None:
    headers = {
        "ce-id": "d3f1c1e0-1",
        "ce-type": "com.github.pull_request.opened",
        "ce-subject": "octo/repo#42",
        "content-type": "application/json",
        "ghapplets-vendor-headers": '{"x-github-event": "pull_request", "x-h": "a, b"}',
        "ghapplets-note": "Grüße — ünïcödé",
        "empty": "",
    }
    body = b'{"action": "opened", "bin": "\x00\x01\xff"}' + bytes(range(256))
    ack = await broker.publish(OutboundMessage("events", "github:d3f1c1e0-1", headers, body))
    assert not ack.duplicate
    empty = await broker.publish(OutboundMessage("events", "no-body", {}, b""))
    got = await fetch_all(broker.consumer("events"), 2)
    assert [m.msg_id for m in got] == ["github:d3f1c1e0-1", "no-body"]
    first, second = got
    assert first.stream == "events"
    assert first.seq == ack.seq and second.seq == empty.seq and ack.seq < empty.seq
    assert first.headers == headers  # nothing lost, nothing added (no broker-internal headers)
    assert first.data == body
    assert first.delivered == 1
    assert second.headers == {} and second.data == b""


async def test_publish_dedups_on_message_id(broker: Broker) -> None:
    first = await broker.publish(msg(1))
    again = await broker.publish(OutboundMessage("events", "m-1", {"n": "other"}, b"other"))
    assert not first.duplicate
    assert again.duplicate and again.seq == first.seq
    other = await broker.publish(msg(2))
    assert not other.duplicate and other.seq != first.seq
    consumer = broker.consumer("events")
    got = await fetch_all(consumer, 3, timeout=0.5)  # only two are there
    assert [(m.msg_id, m.data) for m in got] == [("m-1", b"data-1"), ("m-2", b"data-2")]
    assert await broker.depth("events") == 2


async def test_publish_many_with_new_and_duplicate_ids(broker: Broker) -> None:
    earlier = await broker.publish_many([msg(i) for i in range(100)])
    seq_of = {f"m-{i}": ack.seq for i, ack in enumerate(earlier)}
    assert len(set(seq_of.values())) == 100
    batch = [msg(i % 500) for i in range(1000)]  # ids 0..499 twice each; 0..99 already stored
    started = time.monotonic()
    acks = await broker.publish_many(batch)
    elapsed = time.monotonic() - started
    assert len(acks) == 1000
    by_id: dict[str, list[tuple[int, bool]]] = {}
    for m, ack in zip(batch, acks, strict=True):
        by_id.setdefault(m.msg_id, []).append((ack.seq, ack.duplicate))
    for msg_id, results in by_id.items():
        seqs = {seq for seq, _ in results}
        assert len(seqs) == 1, (msg_id, results)  # every copy answered with the stored one
        new = [dup for _, dup in results if not dup]
        if msg_id in seq_of:
            assert seqs == {seq_of[msg_id]} and not new
        else:
            assert len(new) == 1, (msg_id, results)  # exactly one copy was stored
    assert len({a.seq for a in acks}) == 500
    assert await broker.depth("events") == 500
    consumer = broker.consumer("events")
    got = await fetch_all(consumer, 500, timeout=3.0)
    assert sorted(m.msg_id for m in got) == sorted(f"m-{i}" for i in range(500))
    assert all(m.data == f"data-{m.msg_id[2:]}".encode() for m in got)
    await asyncio.gather(*(consumer.ack(m) for m in got))
    assert await consumer.fetch(10, timeout=0.2) == []
    assert await broker.depth("events") == 0
    assert elapsed < 10, elapsed  # concurrent, not a thousand round trips one after another


async def test_fetch_honours_batch_and_timeout(broker: Broker) -> None:
    consumer = broker.consumer("events")
    started = time.monotonic()
    assert await consumer.fetch(10, timeout=0.3) == []
    waited = time.monotonic() - started
    assert 0.25 <= waited < 1.5, waited
    await broker.publish_many([msg(i) for i in range(5)])
    first = await consumer.fetch(2, timeout=1)
    assert [m.msg_id for m in first] == ["m-0", "m-1"]
    assert [m.msg_id for m in await consumer.fetch(1, timeout=1)] == ["m-2"]
    rest = await fetch_all(consumer, 2, timeout=2)
    assert [m.msg_id for m in rest] == ["m-3", "m-4"]
    # a waiting fetch returns as soon as a message arrives, not at its timeout
    waiting = asyncio.create_task(consumer.fetch(10, timeout=3))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await broker.publish(msg("late"))
    late = await waiting
    assert [m.msg_id for m in late] == ["m-late"]
    assert time.monotonic() - started < 1.5


async def test_acked_messages_are_gone_for_good(backend: Backend) -> None:
    broker = await backend.open()
    await broker.publish_many([msg(i, "jobs") for i in range(3)])
    consumer = broker.consumer("jobs")
    got = await fetch_all(consumer, 3)
    assert len(got) == 3
    assert await broker.depth("jobs") == 3
    await consumer.ack(got[0])
    await consumer.ack(got[1])
    assert await broker.depth("jobs") == 1
    await backend.crash(broker)  # got[2] is still unacked
    broker = await backend.open()
    consumer = broker.consumer("jobs")
    again = await fetch_all(consumer, 1, timeout=backend.ack_wait + 1.5)
    assert [m.msg_id for m in again] == ["m-2"]  # not m-0 or m-1, which would be due as well
    await consumer.ack(again[0])
    assert await broker.depth("jobs") == 0
    await backend.crash(broker)
    broker = await backend.open()
    assert await broker.consumer("jobs").fetch(10, timeout=backend.redelivery_after + 0.5) == []


async def test_nak_redelivers_after_the_delay(broker: Broker) -> None:
    consumer = broker.consumer("events")
    await broker.publish(msg(1))
    [first] = await fetch_all(consumer, 1)
    naked_at = time.monotonic()
    await consumer.nak(first, 0.8)
    assert await consumer.fetch(10, timeout=0.4) == []  # not before the delay
    [again] = await fetch_all(consumer, 1, timeout=3)
    assert time.monotonic() - naked_at >= 0.75
    assert (again.msg_id, again.seq, again.data) == (first.msg_id, first.seq, first.data)
    assert again.delivered == 2
    await consumer.nak(again, 0)  # no delay: straight back
    [third] = await fetch_all(consumer, 1, timeout=2)
    assert third.delivered == 3
    await consumer.ack(third)
    assert await broker.depth("events") == 0


async def test_terminated_messages_never_come_back(backend: Backend) -> None:
    broker = await backend.open()
    consumer = broker.consumer("jobs")
    await broker.publish_many([msg(1, "jobs"), msg(2, "jobs")])
    got = await fetch_all(consumer, 2)
    await consumer.term(got[0], "PermanentError: the applet said no\nsecond line")
    assert await broker.depth("jobs") == 1
    await consumer.ack(got[1])
    assert await broker.depth("jobs") == 0
    assert await consumer.fetch(10, timeout=backend.redelivery_after + 0.5) == []  # past ack_wait
    await backend.crash(broker)
    broker = await backend.open()
    assert await broker.consumer("jobs").fetch(10, timeout=backend.redelivery_after + 0.5) == []


async def test_unacked_messages_are_redelivered_after_a_crash(backend: Backend) -> None:
    broker = await backend.open()
    consumer = broker.consumer("jobs")
    await broker.publish_many([msg(i, "jobs", kind="job") for i in range(3)])
    got = await fetch_all(consumer, 3)
    await consumer.ack(got[0])
    await backend.crash(broker)  # got[1] and got[2] fetched, never settled
    broker = await backend.open()
    started = time.monotonic()
    again = await fetch_all(broker.consumer("jobs"), 2, timeout=backend.ack_wait + 3)
    assert sorted(m.msg_id for m in again) == ["m-1", "m-2"]
    for m in again:
        original = got[int(m.msg_id[2:])]
        assert (m.seq, m.headers, m.data) == (original.seq, original.headers, original.data)
    assert time.monotonic() - started < backend.ack_wait + 2.5
    assert await broker.depth("jobs") == 2
    assert (await broker.publish(msg(0, "jobs"))).duplicate  # dedup survives the restart


async def test_delivery_count_survives_a_crash(backend: Backend) -> None:
    """A message whose handling kills the process must count towards its attempts, or a job
    that crashes its worker would be retried forever instead of reaching max_attempts."""
    broker = await backend.open()
    await broker.publish(msg(1, "jobs"))
    [first] = await fetch_all(broker.consumer("jobs"), 1)
    assert first.delivered == 1
    await backend.crash(broker)
    broker = await backend.open()
    [second] = await fetch_all(broker.consumer("jobs"), 1, timeout=backend.ack_wait + 3)
    assert second.seq == first.seq
    assert second.delivered == 2
    await backend.crash(broker)
    broker = await backend.open()
    [third] = await fetch_all(broker.consumer("jobs"), 1, timeout=backend.ack_wait + 3)
    assert third.delivered == 3


async def test_in_progress_holds_off_redelivery(backend: Backend) -> None:
    broker = await backend.open()
    consumer = broker.consumer("jobs")
    await broker.publish(msg(1, "jobs"))
    [working] = await fetch_all(consumer, 1)
    stop = asyncio.Event()

    async def heartbeat() -> None:
        while not stop.is_set():
            await consumer.in_progress(working)
            await asyncio.sleep(backend.ack_wait / 4)

    beating = asyncio.create_task(heartbeat())
    # well past ack_wait, the message is not handed out again while it is being worked on
    assert await fetch_all(consumer, 1, timeout=backend.redelivery_after * 2) == []
    stop.set()
    await beating
    if backend.redelivers_while_running:
        [again] = await fetch_all(consumer, 1, timeout=backend.ack_wait + 2)
        assert again.seq == working.seq and again.delivered == 2
        working = again
    await consumer.ack(working)
    assert await broker.depth("jobs") == 0


async def test_depth_counts_pending_and_unacked(broker: Broker) -> None:
    assert await broker.depth("jobs") == 0
    await broker.publish_many([msg(i, "jobs") for i in range(5)])
    assert await broker.depth("jobs") == 5
    consumer = broker.consumer("jobs")
    got = await consumer.fetch(3, timeout=1)
    assert len(got) == 3
    assert await broker.depth("jobs") == 5  # fetched but not settled still counts
    await consumer.ack(got[0])
    assert await broker.depth("jobs") == 4
    await consumer.nak(got[1], 30)  # waiting for redelivery still counts
    assert await broker.depth("jobs") == 4
    await consumer.term(got[2], "dead")
    assert await broker.depth("jobs") == 3
    assert await broker.depth("events") == 0


async def test_ping_and_unavailable_storage(backend: Backend) -> None:
    broker = await backend.open(publish_timeout=0.5)
    await broker.ping()
    consumer = broker.consumer("events")
    await backend.outage(broker)
    await asyncio.sleep(0.1)  # (a NATS client notices the closed connection)
    started = time.monotonic()
    why = {"sqlite": "the broker is closed", "nats": "not connected to NATS"}[backend.kind]
    with pytest.raises(BrokerUnavailable, match=f"^{why}$"):
        await broker.ping()
    assert time.monotonic() - started < 3
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        await broker.publish(msg(2))
    assert time.monotonic() - started < 0.5 + 1.5  # publish_timeout plus a margin
    with pytest.raises(BrokerUnavailable):
        await broker.publish_many([msg(3), msg(4)])
    # consumers do not blow up the dispatcher or worker loop: they just find nothing
    for _ in range(3):
        assert await consumer.fetch(10, timeout=0.2) == []


async def test_a_closed_broker_answers_ping_with_unavailable(broker: Broker) -> None:
    await broker.ping()
    await broker.close()
    with pytest.raises(BrokerUnavailable, match=r"^the (NATS )?broker is closed$"):
        await broker.ping()
    with pytest.raises(BrokerUnavailable, match=r"^the (NATS )?broker is closed$"):
        await broker.publish(msg(1))


async def test_next_batch_is_a_fetch_that_waits_out_a_failure(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = broker.consumer("events")
    await broker.publish(msg(1))
    got: list[Message] = []
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        got = await consumer.next_batch(10, timeout=0.5)
    assert [m.msg_id for m in got] == ["m-1"]

    async def broken(batch: int, timeout: float) -> list[Message]:
        raise RuntimeError("the broker is down")

    monkeypatch.setattr(consumer, "fetch", broken)
    started = time.monotonic()
    with capture_logs() as logs:
        assert await consumer.next_batch(10, timeout=0.3) == []  # no exception, no spin
    assert time.monotonic() - started >= 0.29
    assert [(e["event"], e["error"]) for e in logs] == [
        ("cannot fetch messages; trying again", "the broker is down")
    ]


async def test_next_batch_waits_for_the_first_message_as_long_as_it_is_told(
    broker: Broker,
) -> None:
    consumer = broker.consumer("events")

    async def publish_later() -> None:
        await asyncio.sleep(1.5)  # longer than a fetch's default wait
        await broker.publish(msg(1))

    later = asyncio.create_task(publish_later())
    got = await consumer.next_batch(10, timeout=10.0)
    await later
    assert [m.msg_id for m in got] == ["m-1"]


async def test_pruning_keeps_what_is_not_settled(broker: Broker) -> None:
    await broker.publish(msg(1))
    consumer = broker.consumer("events")
    assert await broker.prune(time.time() + 86400) == 0  # published before: but not settled
    got = await fetch_all(consumer, 1)
    assert [m.msg_id for m in got] == ["m-1"]


async def test_streams_are_separate(broker: Broker) -> None:
    await broker.publish(msg("e", "events"))
    await broker.publish(msg("j", "jobs"))
    await broker.publish(msg("x", "other"))  # a stream nobody declared: created on first use
    await broker.publish(msg("j", "other"))  # the same id in another stream is not a duplicate
    consumers = {s: broker.consumer(s) for s in ("events", "jobs", "other")}
    jobs = await fetch_all(consumers["jobs"], 1)
    events = await fetch_all(consumers["events"], 1)
    other = await fetch_all(consumers["other"], 2)
    assert [(m.stream, m.msg_id) for m in jobs] == [("jobs", "m-j")]
    assert [(m.stream, m.msg_id) for m in events] == [("events", "m-e")]
    assert [(m.stream, m.msg_id) for m in other] == [("other", "m-x"), ("other", "m-j")]
    for consumer in consumers.values():  # everything is stored already: nothing more comes
        assert await consumer.fetch(10, timeout=0.1) == []
    assert [await broker.depth(s) for s in ("events", "jobs", "other")] == [1, 1, 2]
