"""NATS JetStream only: server restarts, failing fetches, reconnects, stream setup, what a
term and a nak tell the server (a three-node cluster: test_nats_cluster.py)."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import nats
import orjson
import pytest
from nats.js import api
from nats.js.errors import APIError
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from ghapplets.broker.base import Message, OutboundMessage
from ghapplets.broker.nats import _SETUP_WAIT, NatsBroker
from ghapplets.exceptions import BrokerUnavailable
from tests.broker.test_conformance import fetch_all
from tests.servers import NatsServer, free_port


def msg(i: int | str, stream: str = "events") -> OutboundMessage:
    return OutboundMessage(stream, f"m-{i}", {"n": str(i)}, f"data-{i}".encode())


def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


async def open_broker(url: str, **options: object) -> NatsBroker:
    options.setdefault("prefix", prefix())
    options.setdefault("ack_wait", 2.0)
    broker = NatsBroker(url, **options)  # type: ignore[arg-type]
    await broker.start()
    return broker


async def test_publish_survives_a_server_restart(nats_server: NatsServer) -> None:
    broker = await open_broker(nats_server.url, publish_timeout=5.0)
    try:
        await broker.publish(msg(1))
        nats_server.stop()

        def start_again() -> None:
            time.sleep(1.0)
            nats_server.start()

        restarting = asyncio.create_task(asyncio.to_thread(start_again))
        started = time.monotonic()
        ack = await broker.publish(msg(2))  # retried until the server is back
        elapsed = time.monotonic() - started
        await restarting
        assert not ack.duplicate
        assert 0.9 < elapsed < 5.0, elapsed
        consumer = broker.consumer("events")
        got = await fetch_all(consumer, 2, timeout=1.0)
        assert [m.msg_id for m in got] == ["m-1", "m-2"]  # kept across the restart
        assert await consumer.fetch(10, timeout=0.2) == []  # and stored once
    finally:
        await broker.close()


async def test_consumer_keeps_fetching_across_server_restarts(nats_server: NatsServer) -> None:
    broker = await open_broker(nats_server.url, publish_timeout=5.0, ack_wait=1.0)
    consumer = broker.consumer("jobs")
    received: list[Message] = []

    async def work() -> None:  # what the worker's loop does; it must never see an exception
        while True:
            for message in await consumer.fetch(16, timeout=0.3):
                received.append(message)
                await consumer.ack(message)

    async def wait_for(msg_id: str, timeout: float = 8.0) -> None:
        deadline = time.monotonic() + timeout
        while msg_id not in [m.msg_id for m in received]:
            assert time.monotonic() < deadline, f"{msg_id} not received; got {received}"
            assert not worker.done(), worker
            await asyncio.sleep(0.05)

    worker = asyncio.create_task(work())
    try:
        await broker.publish(msg("before", "jobs"))
        await wait_for("m-before")
        for round_ in range(2):
            nats_server.stop()
            await asyncio.sleep(0.3)  # the worker keeps fetching while the server is away
            await asyncio.to_thread(nats_server.start)
            await broker.publish(msg(f"after-{round_}", "jobs"))
            await wait_for(f"m-after-{round_}")
        assert not worker.done()
        await asyncio.sleep(1.5)  # past ack_wait: nothing acked comes back
        assert [m.msg_id for m in received] == ["m-before", "m-after-0", "m-after-1"]
        assert await broker.depth("jobs") == 0
    finally:
        worker.cancel()
        await broker.close()


async def test_connection_errors_are_warned_once_per_outage(nats_server: NatsServer) -> None:
    broker = await open_broker(nats_server.url)
    try:
        with capture_logs() as logs:
            for outage in range(2):
                nats_server.stop()
                await asyncio.sleep(1.2)  # the client tries to reconnect every quarter second
                await asyncio.to_thread(nats_server.start)
                deadline = time.monotonic() + 10
                while sum(e["event"] == "reconnected to NATS" for e in logs) <= outage:
                    assert time.monotonic() < deadline, "the client did not reconnect"
                    await asyncio.sleep(0.02)
        lost = [e for e in logs if e["event"] == "disconnected from NATS; reconnecting"]
        assert [e["log_level"] for e in lost] == ["warning", "warning"]  # once per outage
        errors = [e for e in logs if e["event"] == "NATS connection error"]
        warned = [e for e in errors if e["log_level"] == "warning"]
        assert len(warned) == 2, errors  # one warning per outage, the other attempts in debug
        assert len(errors) > 2
        assert all(e["error"].endswith(")") and e["error"] != "None" for e in errors), errors
    finally:
        await broker.close()


async def test_a_publish_retries_what_may_pass_and_gives_up_at_once_on_a_refusal(
    nats_server: NatsServer,
) -> None:
    broker = await open_broker(nats_server.url, publish_timeout=1.0)
    try:
        await broker.publish(msg(0))  # the stream exists: only the publish itself fails below
        js = broker._js
        assert js is not None
        real = js.publish
        tries: list[float] = []
        failures: list[Exception] = []

        async def publish(*args: Any, **kwargs: Any) -> Any:
            tries.append(time.monotonic())
            if failures:
                raise failures.pop(0)
            return await real(*args, **kwargs)

        js.publish = publish  # type: ignore[method-assign]
        # no JetStream leader for a moment (503), a hiccup (500), a status without a code:
        # tried again, a twentieth of a second later, then twice that, and so on
        failures[:] = [APIError(code=503), APIError(code=500), APIError()]
        ack = await broker.publish(msg(1))
        assert not ack.duplicate and len(tries) == 4
        gaps = [b - a for a, b in itertools.pairwise(tries)]
        for gap, backoff in zip(gaps, (0.1, 0.2, 0.4), strict=True):
            assert backoff - 0.01 <= gap < backoff + 0.3, gaps
        # a refusal (4xx) is not retried
        tries.clear()
        failures[:] = [APIError(code=400, description="bad subject")]
        with pytest.raises(BrokerUnavailable, match="NATS refused the request"):
            await broker.publish(msg(2))
        assert len(tries) == 1
        # unavailable for good: tried until publish_timeout, backing off up to half a second
        tries.clear()
        failures[:] = [APIError(code=503)] * 100
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match="did not answer in time"):
            await broker.publish(msg(3))
        assert len(tries) in (3, 4), tries  # at 0, 0.1, 0.3 and 0.7 s (a slow machine: 3)
        assert 0.29 <= time.monotonic() - started < 1.5
    finally:
        await broker.close()


async def test_depth_when_jetstream_does_not_answer_or_refuses(nats_server: NatsServer) -> None:
    broker = await open_broker(nats_server.url)
    try:
        assert await broker.depth("never-used") == 0  # no stream, no consumer: nothing queued
        js = broker._js
        assert js is not None
        failure: list[Exception] = [APIError(code=503)]

        async def consumer_info(*args: Any, **kwargs: Any) -> Any:
            raise failure[0]

        js.consumer_info = consumer_info  # type: ignore[method-assign]
        with pytest.raises(BrokerUnavailable, match="JetStream does not answer"):
            await broker.depth("jobs")
        failure[0] = APIError(code=403, description="not allowed")
        with pytest.raises(APIError):  # not an outage: the caller sees what it is
            await broker.depth("jobs")
    finally:
        await broker.close()


async def test_fetch_recovers_when_the_stream_is_deleted(nats_server: NatsServer) -> None:
    broker = await open_broker(nats_server.url)
    admin = await nats.connect(nats_server.url)
    try:
        consumer = broker.consumer("jobs")
        await broker.publish(msg(1, "jobs"))
        assert [m.msg_id for m in await fetch_all(consumer, 1)] == ["m-1"]
        # an operator deletes the stream (and with it the durable consumer)
        await admin.jetstream().delete_stream(broker.stream_name("jobs"))
        assert await consumer.fetch(10, timeout=0.3) == []  # no exception either
        await broker.publish(msg(2, "jobs"))  # creates the stream again
        # ... and the failure has the next fetch set the durable consumer up again: within
        # three fetches (the first may just drain the old pull's answer), not after the three
        # failures in a row that replace the subscription
        got: list[Message] = []
        for _ in range(3):
            got = got or await consumer.fetch(10, timeout=2.0)
        assert [m.msg_id for m in got] == ["m-2"]
        await consumer.ack(got[0])
    finally:
        await admin.close()
        await broker.close()


async def test_a_pull_subscription_that_keeps_failing_is_replaced_and_the_failure_logged(
    nats_server: NatsServer,
) -> None:
    broker = await open_broker(nats_server.url)
    try:
        consumer = broker.consumer("jobs")
        await broker.publish(msg(1, "jobs"))
        [first] = await fetch_all(consumer, 1)
        await consumer.ack(first)
        failed: list[float] = []

        async def broken(*args: object, **kwargs: object) -> list[object]:
            failed.append(time.monotonic())
            raise ConnectionError("the pull failed")

        consumer._sub.fetch = broken  # type: ignore[attr-defined, method-assign]
        await broker.publish(msg(2, "jobs"))
        took: list[float] = []
        with capture_logs(processors=[merge_contextvars]) as logs:
            for _ in range(3):
                started = time.monotonic()
                assert await consumer.fetch(10, timeout=5.0) == []  # no exception either
                took.append(time.monotonic() - started)
            got = await consumer.fetch(10, timeout=5.0)  # on a new pull subscription
            failing = time.monotonic() - failed[0]  # from the first failure to the recovery
        assert [m.msg_id for m in got] == ["m-2"]
        assert len(failed) == 3  # replaced after the third failure in a row, not later
        for n, pause in enumerate((0.1, 0.2, 0.4)):  # backing off, doubling the pause
            assert pause - 0.01 <= took[n] < pause + 1.0, took
        warnings = [e for e in logs if e["log_level"] == "warning"]
        assert len(warnings) == 1, warnings  # once, not at every failure
        assert warnings[0]["event"] == "fetching from NATS failed; retrying"
        assert warnings[0]["stream"] == "jobs" and warnings[0]["failures"] == 1
        assert "the pull failed" in warnings[0]["error"]
        assert warnings[0]["failing_for"] == 0
        [back] = [e for e in logs if e["event"] == "fetching from NATS works again"]
        assert back["stream"] == "jobs"
        assert sum(took[1:]) - 0.05 <= back["after"] <= failing + 0.05  # seconds, to a tenth
    finally:
        await broker.close()


async def test_term_sends_its_reason_to_the_terminated_advisory(nats_server: NatsServer) -> None:
    broker = await open_broker(nats_server.url)
    admin = await nats.connect(nats_server.url)
    try:
        stream = broker.stream_name("jobs")
        advisories = await admin.subscribe(f"$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.{stream}.>")
        consumer = broker.consumer("jobs")
        for i in range(3):
            await broker.publish(msg(i, "jobs"))
        got = await fetch_all(consumer, 3)
        long = "why " * 100
        await consumer.term(got[0], "  the applet\n\tfailed   for good ")
        await consumer.term(got[1], long)
        await consumer.term(got[2], "")
        reasons = []
        for _ in range(3):
            advisory = orjson.loads((await advisories.next_msg(timeout=5)).data)
            reasons.append(advisory.get("reason", ""))
        assert reasons[0] == "the applet failed for good"  # white space folded
        assert reasons[1] == ("why " * 64).strip()  # at most 256 characters
        assert reasons[2] == ""
        assert await broker.depth("jobs") == 0  # terminated: gone, with or without a reason
    finally:
        await admin.close()
        await broker.close()


async def test_a_nak_with_a_delay_brings_the_message_back_after_it(
    nats_server: NatsServer,
) -> None:
    broker = await open_broker(nats_server.url, ack_wait=30.0)
    try:
        consumer = broker.consumer("jobs")
        await broker.publish(msg(1, "jobs"))
        [first] = await fetch_all(consumer, 1)
        naked = time.monotonic()
        await consumer.nak(first, 0.6)
        assert await consumer.fetch(10, timeout=0.3) == []  # not before its delay
        [again] = await fetch_all(consumer, 1, timeout=5.0)
        assert again.msg_id == "m-1" and again.delivered == 2
        assert 0.55 <= time.monotonic() - naked < 5
        await consumer.nak(again, 0)  # no delay: back at once
        [third] = await fetch_all(consumer, 1, timeout=2.0)
        assert third.delivered == 3
        await consumer.ack(third)
    finally:
        await broker.close()


async def test_after_reconnecting_to_an_emptied_server_the_consumer_sets_up_again_quietly(
    tmp_path: Path,
) -> None:
    server = NatsServer(tmp_path / "a")
    server.start()
    broker = await open_broker(server.url, ack_wait=2.0)
    try:
        consumer = broker.consumer("jobs")
        await broker.publish(msg(1, "jobs"))
        [first] = await fetch_all(consumer, 1)
        await consumer.ack(first)
        with capture_logs(processors=[merge_contextvars]) as logs:
            server.stop()
            server.store_dir = tmp_path / "b"  # back empty: a new volume, no stream, no consumer
            server.store_dir.mkdir()
            server.log_path = server.store_dir / "nats-server.log"
            await asyncio.to_thread(server.start)

            async def reconnected() -> bool:
                return any(e["event"] == "reconnected to NATS" for e in logs)

            deadline = time.monotonic() + 10
            while not await reconnected():
                assert time.monotonic() < deadline, "the client did not reconnect"
                await asyncio.sleep(0.02)
            await broker.publish(msg(2, "jobs"))  # sets the stream up again
            got = await fetch_all(consumer, 1, timeout=5.0)
        assert [m.msg_id for m in got] == ["m-2"]
        [back] = [e for e in logs if e["event"] == "reconnected to NATS"]
        assert back["server"] == f"127.0.0.1:{server.port}"
        failed = [e for e in logs if e["event"] == "fetching from NATS failed; retrying"]
        assert failed == []  # the consumer was set up again before its first fetch
    finally:
        await broker.close()
        server.stop()


async def test_a_stale_delivery_left_in_the_queue_is_not_handed_out(
    nats_server: NatsServer,
) -> None:
    broker = await open_broker(nats_server.url, ack_wait=1.0)
    admin = await nats.connect(nats_server.url)
    try:
        consumer = broker.consumer("jobs")
        assert await consumer.fetch(1, timeout=0.1) == []  # subscribes
        await broker.publish(msg(1, "jobs"))
        # A pull answered after its fetch had given up: the delivery waits in the subscription's
        # queue (simulated with a pull request sent to the subscription's inbox).
        inbox = consumer._sub._deliver  # type: ignore[attr-defined]
        stream, durable = broker.stream_name("jobs"), broker.durable_name("jobs")
        pull = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        await admin.publish(pull, b'{"batch": 1, "no_wait": true}', reply=inbox)
        # and a pull that waits: once ack_wait has run out, the server redelivers to it
        await admin.publish(pull, b'{"batch": 1, "expires": 10000000000}', reply=inbox)
        await admin.flush()
        js = admin.jetstream()
        deadline = time.monotonic() + 10
        while (await js.consumer_info(stream, durable)).num_redelivered < 1:
            assert time.monotonic() < deadline, "the server did not redeliver"
            await asyncio.sleep(0.05)
        got = await consumer.fetch(10, timeout=1.0)  # both copies are in the queue now
        assert [(m.msg_id, m.delivered) for m in got] == [("m-1", 2)]  # the newest copy only
        await consumer.ack(got[0])
        await consumer.ack(got[0])  # settling twice is harmless
        assert await consumer.fetch(10, timeout=0.3) == []
        assert await broker.depth("jobs") == 0
    finally:
        await admin.close()
        await broker.close()


async def test_streams_and_consumers_are_set_up_idempotently(nats_server: NatsServer) -> None:
    name = prefix()
    brokers = [NatsBroker(nats_server.url, prefix=name) for _ in range(5)]
    await asyncio.gather(*(b.start() for b in brokers))  # several processes starting at once
    await asyncio.gather(*(b.consumer("jobs").fetch(1, timeout=0.1) for b in brokers))
    changed = await open_broker(nats_server.url, prefix=name, duplicate_window=30.0, ack_wait=7.0)
    await changed.consumer("jobs").fetch(1, timeout=0.1)
    admin = await nats.connect(nats_server.url)
    try:
        js = admin.jetstream()
        info = await js.stream_info(f"{name}_JOBS".upper())  # the broker upper-cases it
        config = info.config
        assert config.subjects == [f"{name}.jobs"]
        assert config.retention == api.RetentionPolicy.WORK_QUEUE
        assert config.storage == api.StorageType.FILE
        assert config.num_replicas == 1
        assert config.duplicate_window == 30.0  # updated by the broker configured differently
        assert config.discard == api.DiscardPolicy.NEW  # refuse new rather than drop work
        consumer = await js.consumer_info(info.config.name or "", f"{name}-jobs")
        assert consumer.config.durable_name == f"{name}-jobs"  # not an ephemeral consumer
        assert consumer.config.ack_policy == api.AckPolicy.EXPLICIT
        assert consumer.config.deliver_policy == api.DeliverPolicy.ALL
        assert consumer.config.ack_wait == 7.0
        assert consumer.config.max_deliver == -1
        assert consumer.config.max_ack_pending == 1024
        assert consumer.config.filter_subject == f"{name}.jobs"
        names = await js.streams_info()
        assert sorted(s.config.name or "" for s in names) == [
            f"{name}_EVENTS".upper(),
            f"{name}_JOBS".upper(),
        ]
    finally:
        await admin.close()
        for b in [*brokers, changed]:
            await b.close()


async def test_start_fails_fast_without_a_server() -> None:
    broker = NatsBroker(f"nats://127.0.0.1:{free_port()}", connect_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="cannot connect") as err:
        await broker.start()
    assert time.monotonic() - started < 3
    # the reason is the client's last connection error, not the timeout that ended the wait
    assert "ConnectionRefused" in str(err.value), err.value
    with pytest.raises(BrokerUnavailable):
        await broker.publish(msg(1))


async def test_a_frozen_server_makes_each_call_fail_in_time_and_then_work_again(
    nats_server: NatsServer,
) -> None:
    """A server that holds the connection but answers nothing (stopped by SIGSTOP: a hung
    process, a full disk's stalled writes) makes ping, publish and ack each give up with
    BrokerUnavailable in their own time, and they work again once it answers."""
    broker = await open_broker(nats_server.url, publish_timeout=1.5)
    consumer = broker.consumer("jobs")
    assert nats_server.proc is not None
    try:
        await broker.publish(msg(1, "jobs"))
        [message] = await fetch_all(consumer, 1)
        nats_server.proc.send_signal(signal.SIGSTOP)
        stat = Path(f"/proc/{nats_server.proc.pid}/stat")
        while stat.read_text().rsplit(")", 1)[1].split()[0] != "T":  # stopped, for sure
            await asyncio.sleep(0.01)
        try:
            for call, timeout, says in (
                (broker.ping(), 2.0, "JetStream does not answer"),  # the probe's short timeout
                (broker.publish(msg(2, "jobs")), 1.5, "NATS did not answer in time"),
                (consumer.ack(message), 1.5, "NATS did not answer in time"),  # publish_timeout
            ):
                started = time.monotonic()
                with pytest.raises(BrokerUnavailable, match=f"^{says}: "):
                    await call
                assert timeout - 0.1 <= time.monotonic() - started <= timeout + 0.9
            # a fetch that must set its consumer up first gives that up after _SETUP_WAIT
            started = time.monotonic()
            assert await broker.consumer("events").fetch(10, timeout=0.2) == []
            assert time.monotonic() - started <= _SETUP_WAIT + 0.9
        finally:
            nats_server.proc.send_signal(signal.SIGCONT)
        await broker.ping()
        await consumer.ack(message)
        # the publish that gave up may have been stored all the same (one copy, by its id)
        assert (await broker.publish(msg(2, "jobs"))).seq == 2
    finally:
        await broker.close()


async def test_a_confirmation_waits_for_a_slow_answer_until_the_publish_timeout(
    nats_server: NatsServer,
) -> None:
    """An ack's confirmation that comes late (a busy server) is waited for, within
    publish_timeout, not given up on and sent again after the client's default timeout."""
    broker = await open_broker(nats_server.url, publish_timeout=3.0)
    answerer = await nats.connect(nats_server.url)
    asked: list[bytes] = []

    async def slow(request: Any) -> None:
        asked.append(request.data)
        await asyncio.sleep(0.8)
        await request.respond(b"")

    try:
        await answerer.subscribe("test.slow.ack", cb=slow)
        await answerer.flush()
        await broker._confirm("test.slow.ack", b"+ACK")
        assert asked == [b"+ACK"]  # once
    finally:
        await answerer.close()
        await broker.close()


async def test_publish_many_raises_the_first_failure_once_every_publish_is_done(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = await open_broker(nats_server.url)
    finished: list[str] = []
    publish = broker.publish

    async def publishing(message: OutboundMessage) -> Any:
        if message.msg_id == "m-bad":
            raise BrokerUnavailable("refused")
        await asyncio.sleep(0.3)
        ack = await publish(message)
        finished.append(message.msg_id)
        return ack

    monkeypatch.setattr(broker, "publish", publishing)
    try:
        with pytest.raises(BrokerUnavailable, match=r"^refused$"):
            await broker.publish_many([msg("bad", "jobs"), msg(1, "jobs"), msg(2, "jobs")])
        assert finished == ["m-1", "m-2"]  # not left running after the caller got the error
    finally:
        await broker.close()


async def test_a_working_subscription_is_not_set_up_again_at_each_fetch(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = await open_broker(nats_server.url)
    consumer = broker.consumer("jobs")
    try:
        assert await consumer.fetch(10, timeout=0.1) == []  # sets the stream and consumer up
        set_up: list[str] = []

        async def counted(stream: str) -> None:
            set_up.append(stream)

        monkeypatch.setattr(broker, "_ensure_consumer", counted)
        await broker.publish(msg(1, "jobs"))
        assert [m.msg_id for m in await fetch_all(consumer, 1)] == ["m-1"]
        assert await consumer.fetch(10, timeout=0.1) == []
        assert set_up == []  # no round trips to set up what works
    finally:
        await broker.close()


async def test_purge_empties_every_stream_and_counts_what_it_deleted(
    nats_server: NatsServer,
) -> None:
    broker = await open_broker(nats_server.url)
    try:
        assert await broker.purge() == 0
        admin = await nats.connect(nats_server.url)
        try:  # an operator deleted a stream: nothing of it to purge, and no error
            await admin.jetstream().delete_stream(broker.stream_name("events"))
        finally:
            await admin.close()
        assert await broker.purge() == 0
        await broker.publish_many([msg(1), msg(2), msg(3), msg(4, "jobs"), msg(5, "jobs")])
        assert await broker.purge() == 5
        assert await broker.depth("events") == 0 and await broker.depth("jobs") == 0
        await broker.publish(msg(6, "jobs"))  # the streams are still there, and work
        assert [m.msg_id for m in await fetch_all(broker.consumer("jobs"), 1)] == ["m-6"]
    finally:
        await broker.close()


async def test_start_says_where_it_connected_and_warns_of_a_small_max_payload(
    nats_server: NatsServer,
) -> None:
    with capture_logs() as logs:
        broker = await open_broker(nats_server.url, prefix="tlogs")
    try:
        [small] = [e for e in logs if e["log_level"] == "warning"]
        assert small["event"] == (
            "the NATS server's max_payload is below the gateway's default 25 MiB body limit: "
            "larger webhooks are refused with 413; raise max_payload on the servers to take them"
        )
        assert small["max_payload"] == 1024 * 1024  # the server's default
        [connected] = [e for e in logs if e["event"] == "connected to NATS JetStream"]
        assert connected == {
            "event": "connected to NATS JetStream",
            "log_level": "info",
            "server": f"127.0.0.1:{nats_server.port}",
            "prefix": "tlogs",
            "replicas": 1,
        }
        with capture_logs() as closing:
            await broker.close()
        assert closing == []  # a deliberate close is not a lost connection
    finally:
        await broker.close()


async def test_a_max_payload_of_the_gateways_body_limit_is_enough(tmp_path: Path) -> None:
    config = tmp_path / "nats.conf"
    server = NatsServer(tmp_path, config=config)
    config.write_text(
        f"listen: 127.0.0.1:{server.port}\n"
        f"http: 127.0.0.1:{server.monitor_port}\n"
        f"max_payload: {25 * 1024 * 1024}\n"
        f'jetstream {{ store_dir: "{tmp_path / "js"}" }}\n'
    )
    with server.start():
        with capture_logs() as logs:
            broker = await open_broker(server.url)
        await broker.close()
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == []


async def test_names_and_sizes_a_broker_refuses_say_why(nats_server: NatsServer) -> None:
    broker = await open_broker(nats_server.url)
    try:
        with pytest.raises(ValueError, match=r"^invalid stream name 'a b': use letters, digits"):
            broker.stream_name("a b")
        big = OutboundMessage("jobs", "m-big", {}, b"x" * (2 * 1024 * 1024))
        with pytest.raises(
            BrokerUnavailable, match=r"^message larger than the NATS server's max_payload: "
        ):
            await broker.publish(big)
    finally:
        await broker.close()


async def test_only_a_stored_event_reaches_the_gateways_crash_point(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    points: list[str] = []
    monkeypatch.setattr("ghapplets.broker.nats.reached", points.append)
    broker = await open_broker(nats_server.url)
    try:
        await broker.publish(msg(1, "jobs"))
        assert points == []
        await broker.publish(msg(2, "events"))
        assert points == ["gateway.stored"]
    finally:
        await broker.close()
