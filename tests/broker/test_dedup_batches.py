"""Publish dedup holds across the embedded broker's lookup chunks: it looks up the ids of a
publish batch 400 at a time (``_CHUNK``), so ids past the first 400 of a batch must be found
as well. NATS deduplicates on the server; the same contract holds there."""

from __future__ import annotations

from ghapplets.broker.base import Broker, OutboundMessage
from ghapplets.broker.sqlite import _CHUNK

N = _CHUNK + 50  # 450: one publish batch of two lookup chunks


def msg(i: int) -> OutboundMessage:
    return OutboundMessage("events", f"m-{i}", {"n": str(i)}, f"data-{i}".encode())


async def test_duplicates_past_the_first_chunk_of_a_batch_are_not_stored_again(
    broker: Broker,
) -> None:
    first = await broker.publish_many([msg(i) for i in range(N)])
    assert not any(a.duplicate for a in first)
    assert len({a.seq for a in first}) == N

    again = await broker.publish_many([msg(i) for i in range(N)])  # the same 450 ids
    assert [a.duplicate for a in again] == [True] * N
    assert [a.seq for a in again] == [a.seq for a in first]  # answered with the stored ones

    # 200 new ids, then the 450 old ones: known ids in both chunks, at other offsets
    mixed = [msg(i) for i in range(N, N + 200)] + [msg(i) for i in range(N)]
    acks = await broker.publish_many(mixed)
    assert [a.duplicate for a in acks] == [False] * 200 + [True] * N
    assert [a.seq for a in acks[200:]] == [a.seq for a in first]
    assert await broker.depth("events") == N + 200  # nothing stored twice
