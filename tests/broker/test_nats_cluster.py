"""A three-node NATS JetStream cluster under the broker: losing the stream's leader (SIGKILL,
an election to wait out) and a leader stopping cleanly (a rolling upgrade: no wait)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.broker.test_conformance import fetch_all
from tests.broker.test_nats_broker import msg, open_broker
from tests.servers import NatsCluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    c = NatsCluster(3, tmp_path / "cluster")
    try:
        yield c.start()
    finally:
        c.close()


@pytest.mark.slow
async def test_cluster_keeps_working_when_the_stream_leader_dies(cluster: NatsCluster) -> None:
    # After a SIGKILL the followers wait 4 to 9 s (nats-server's Raft election timeout) before
    # electing a new leader, so this publish_timeout is longer than the default
    broker = await open_broker(
        cluster.urls, replicas=3, publish_timeout=15.0, ack_wait=2.0, connect_timeout=20.0
    )
    try:
        consumer = broker.consumer("events")
        await broker.publish_many([msg(i) for i in range(30)])
        # publish_many sends concurrently, and a send retried while the new cluster settles
        # lands later in the stream: which ten come first is not fixed, that they are 10 is
        first = await fetch_all(consumer, 10, batch=10)
        assert len(first) == 10 and {m.msg_id for m in first} <= {f"m-{i}" for i in range(30)}
        await asyncio.gather(*(consumer.ack(m) for m in first))

        leader = cluster.wait_stream_leader(broker.stream_name("events"))
        published: list[str] = []
        slowest = 0.0

        async def keep_publishing() -> None:
            nonlocal slowest
            for i in range(30, 90):
                started = time.monotonic()
                await broker.publish(msg(i))  # must not raise: the retries ride out the election
                slowest = max(slowest, time.monotonic() - started)
                published.append(f"m-{i}")
                await asyncio.sleep(0.02)

        publisher = asyncio.create_task(keep_publishing())
        while len(published) < 10:
            await asyncio.sleep(0.01)
        cluster.kill(leader)  # SIGKILL the node that leads the stream
        await publisher
        new_leader = cluster.wait_stream_leader(broker.stream_name("events"))
        assert new_leader != leader

        # every message published and not acked is there, once acked it is gone
        seen: dict[str, int] = {}
        deadline = time.monotonic() + 20
        want = {f"m-{i}" for i in range(90)} - {m.msg_id for m in first}
        while set(seen) != want and time.monotonic() < deadline:
            for m in await consumer.fetch(64, timeout=0.5):
                seen[m.msg_id] = seen.get(m.msg_id, 0) + 1
                await consumer.ack(m)
        assert set(seen) == want, sorted(want - set(seen))
        await asyncio.sleep(2.5)  # past ack_wait: nothing acked is delivered again
        assert await consumer.fetch(64, timeout=0.5) == []
        assert await broker.depth("events") == 0
        print(
            f"slowest publish during the failover: {slowest:.2f}s; redeliveries: "
            f"{sum(seen.values()) - len(seen)}"
        )
    finally:
        await broker.close()


async def test_cluster_hands_over_at_once_when_the_leader_stops_cleanly(
    cluster: NatsCluster,
) -> None:
    broker = await open_broker(cluster.urls, replicas=3, publish_timeout=15.0)
    try:
        await broker.publish(msg(0))
        leader = cluster.wait_stream_leader(broker.stream_name("events"))
        cluster.stop(leader)  # SIGTERM, as in a rolling upgrade: the leader steps down first
        started = time.monotonic()
        acks = [await broker.publish(msg(i)) for i in range(1, 21)]
        assert time.monotonic() - started < 3  # no election timeout to wait out
        assert not any(a.duplicate for a in acks)
        consumer = broker.consumer("events")
        got = await fetch_all(consumer, 21)
        assert sorted(m.msg_id for m in got) == sorted(f"m-{i}" for i in range(21))
    finally:
        await broker.close()
