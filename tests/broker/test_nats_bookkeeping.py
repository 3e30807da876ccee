"""The NATS consumer's bookkeeping of deliveries, sans I/O: which delivery of a message is handed
out, which one a settle goes to, and how much it remembers (bounded by max_ack_pending).

The deliveries are nats-py's own ``Msg``, made from the reply subject JetStream gives them;
only the settle's request to the server is recorded here instead of sent (the settles' effect on
a real server is in test_nats_broker.py and test_conformance.py).
"""

from __future__ import annotations

import pytest
from nats.aio.msg import Msg

from ghapplets.broker.nats import MSG_ID, NatsBroker, _backoff, _NatsConsumer


def delivery(seq: int, delivered: int, headers: dict[str, str] | None = None) -> Msg:
    """Delivery number ``delivered`` of the stream's message ``seq``, as the server sends it."""
    reply = f"$JS.ACK.T_JOBS.t-jobs.{delivered}.{seq}.{seq * 10 + delivered}.1700000000000000000.0"
    return Msg(_client=None, subject="t.jobs", reply=reply, data=b"d%d" % seq, headers=headers)  # type: ignore[arg-type]


class Recorder:
    """Stands in for the request a settle sends (the broker's ``_confirm``)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def __call__(self, reply: str, payload: bytes) -> None:
        self.sent.append((reply, payload))


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(NatsBroker, "_confirm", lambda self, *a: recorder(*a))
    return recorder


def consumer(max_ack_pending: int = 1024) -> _NatsConsumer:
    broker = NatsBroker("nats://127.0.0.1:4222", prefix="t", max_ack_pending=max_ack_pending)
    return _NatsConsumer(broker, "jobs")


def handed_out(c: _NatsConsumer, msgs: list[Msg]) -> list[tuple[int, int]]:
    return [(m.seq, m.delivered) for m in (c._wrap(x) for x in c._newest(msgs))]


def test_a_message_is_wrapped_with_its_id_and_headers_but_not_the_servers() -> None:
    c = consumer()
    headers = {MSG_ID: "m-7", "ce-type": "x", "NATS-Expected-Stream": "T_JOBS"}
    message = c._wrap(delivery(7, 3, headers))
    assert (message.stream, message.seq, message.msg_id, message.delivered) == ("jobs", 7, "m-7", 3)
    assert message.headers == {"ce-type": "x"}  # the server's headers stay with the server
    assert message.data == b"d7"
    assert c._wrap(delivery(8, 1)).msg_id == ""  # no id header: no id, and no headers
    assert c._wrap(delivery(8, 2)).headers == {}


def test_only_the_newest_delivery_of_a_message_in_a_batch_is_handed_out() -> None:
    c = consumer()
    batch = [delivery(1, 1), delivery(2, 1), delivery(1, 3), delivery(1, 2)]
    assert handed_out(c, batch) == [(1, 3), (2, 1)]


def test_a_delivery_no_newer_than_one_handed_out_is_not_handed_out_again() -> None:
    c = consumer()
    assert handed_out(c, [delivery(1, 2)]) == [(1, 2)]
    # left in the subscription's queue, the same or an older delivery turns up later
    assert handed_out(c, [delivery(1, 2), delivery(1, 1)]) == []
    assert handed_out(c, [delivery(1, 3)]) == [(1, 3)]  # a redelivery is new work


async def test_a_settled_message_is_not_handed_out_again_unless_redelivered(
    sent: Recorder,
) -> None:
    c = consumer()
    [message] = [c._wrap(m) for m in c._newest([delivery(4, 2)])]
    await c.ack(message)
    assert 4 not in c._inflight and c._settled == {4: 2}
    assert handed_out(c, [delivery(4, 1), delivery(4, 2)]) == []
    # ... and the rest of its batch is
    assert handed_out(c, [delivery(4, 2), delivery(8, 1)]) == [(8, 1)]
    assert handed_out(c, [delivery(4, 3)]) == [(4, 3)]  # the server sent it again after all
    assert 4 not in c._settled  # and so it is not settled any more


async def test_a_settle_goes_to_the_newest_delivery_once(sent: Recorder) -> None:
    c = consumer()
    first = c._wrap(delivery(5, 1))
    second = c._wrap(delivery(5, 2))  # redelivered while the first copy was worked on
    await c.ack(first)  # settles through the newest delivery, the one the server waits for
    assert sent.sent == [(delivery(5, 2).reply, b"+ACK")]
    await c.ack(second)  # the other copy: settled already, so nothing is sent
    await c.nak(first, 1.0)
    assert len(sent.sent) == 1
    assert c._settled == {5: 2} and c._inflight == {}


async def test_a_settle_of_what_was_not_fetched_here_is_an_error(sent: Recorder) -> None:
    c = consumer()
    stranger = consumer()._wrap(delivery(9, 1))
    with pytest.raises(ValueError, match="jobs#9 was not fetched here"):
        await c.ack(stranger)
    assert sent.sent == []


async def test_a_delivery_that_came_again_during_its_settle_stays_in_flight(
    sent: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = consumer()
    message = c._wrap(delivery(6, 1))

    async def redelivered_meanwhile(reply: str, payload: bytes) -> None:
        c._wrap(delivery(6, 2))

    monkeypatch.setattr(c.broker, "_confirm", redelivered_meanwhile)
    await c.ack(message)
    assert c._inflight[6].metadata.num_delivered == 2  # the new delivery is still to settle


async def test_nak_term_and_progress_send_what_jetstream_reads(sent: Recorder) -> None:
    c = consumer()
    await c.nak(c._wrap(delivery(1, 1)), 2.5)
    await c.nak(c._wrap(delivery(2, 1)), 0)
    await c.term(c._wrap(delivery(3, 1)), "  bad\n input \t")
    await c.term(c._wrap(delivery(4, 1)), " ")
    message = c._wrap(delivery(5, 1))
    await c.in_progress(message)
    await c.in_progress(message)  # still in flight: a progress report does not settle it
    await c.ack(message)
    await c.in_progress(message)  # settled: nothing more to report
    assert [payload for _, payload in sent.sent] == [
        b'-NAK {"delay": 2500000000}',
        b"-NAK",
        b"+TERM bad input",
        b"+TERM",
        b"+WPI",
        b"+WPI",
        b"+ACK",
    ]


def test_what_is_in_flight_is_bounded_by_twice_max_ack_pending_oldest_first() -> None:
    c = consumer(max_ack_pending=2)
    for seq in (1, 2, 3):
        c._wrap(delivery(seq, 1))
    c._wrap(delivery(1, 2))  # a redelivery counts as the newest
    c._wrap(delivery(4, 1))
    assert list(c._inflight) == [2, 3, 1, 4]
    c._wrap(delivery(5, 1))
    assert list(c._inflight) == [3, 1, 4, 5]  # the oldest (2) went first
    assert [m.metadata.num_delivered for m in c._inflight.values()] == [1, 2, 1, 1]


async def test_what_was_settled_is_remembered_for_twice_max_ack_pending(sent: Recorder) -> None:
    c = consumer(max_ack_pending=1)
    for seq in (1, 2, 3):
        await c.ack(c._wrap(delivery(seq, 1)))
    assert c._settled == {2: 1, 3: 1}  # the oldest forgotten
    # forgotten, a stale copy of it would be handed out again; remembered ones are not
    assert handed_out(c, [delivery(1, 1), delivery(2, 1), delivery(3, 1)]) == [(1, 1)]


def test_settled_counts_below_a_delivery_do_not_hide_it() -> None:
    c = consumer()
    c._settled[8] = 1
    assert handed_out(c, [delivery(8, 2)]) == [(8, 2)]


def test_the_pause_between_tries_doubles_up_to_half_a_second() -> None:
    assert [_backoff(n) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.5, 0.5, 0.5]
