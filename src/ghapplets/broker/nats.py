"""The JetStream broker: the :class:`~ghapplets.broker.base.Broker` contract on NATS JetStream.

Each broker stream ``name`` is a JetStream stream ``{PREFIX}_{NAME}`` (upper-cased) holding the one
subject ``{prefix}.{name}``, with work-queue retention: an acked or terminated message is removed,
so the disk stays bounded and the stream's message count is the backlog. Dead letters are recorded
by the store, not kept in the broker. Publishing sets ``Nats-Msg-Id`` to the message id, so the
server drops a duplicate within ``duplicate_window`` and answers with the first one's sequence.

Every stream has one durable pull consumer ``{prefix}-{name}`` shared by all processes (explicit
ack, ``ack_wait``, ``max_ack_pending``, unlimited deliveries: the worker decides when to give up).
Acks, naks, terms and progress reports are all sent as requests and wait for the server's
confirmation, so an ack that returned is not undone by a crash of this process.

Failures of the server or the network are absorbed where the contract allows: ``publish`` retries
the same message id (dedup makes that safe) until ``publish_timeout`` and only then raises
:class:`BrokerUnavailable`; ``fetch`` logs, backs off, makes sure the stream and consumer still
exist (replacing its pull subscription if failures go on) and returns no messages, so the
dispatcher and worker loops simply go round again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import socket
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from ghapplets.broker.base import (
    EVENTS,
    STREAMS,
    Broker,
    Consumer,
    Message,
    OutboundMessage,
    PublishAck,
)
from ghapplets.crashpoints import CrashPoint, reached
from ghapplets.exceptions import BrokerUnavailable
from ghapplets.logging import get_logger

log = get_logger("ghapplets.broker.nats")
T = TypeVar("T")

MSG_ID = "Nats-Msg-Id"
_PREFIX_RE = re.compile(r"[A-Za-z0-9_-]+")
_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")
# JetStream API error code: a stream of that name exists with another configuration
_STREAM_NAME_IN_USE = 10058
_API_TIMEOUT = 5.0  # stream and consumer management requests
_PING_TIMEOUT = 2.0
_PUBLISH_TRY = 2.0  # one publish attempt waits this long for its PubAck before a retry
_SETUP_WAIT = 1.0  # at least this long for a fetch to (re)create its stream and consumer
_WARN_EVERY = 10.0  # a failure that goes on is logged as a warning at most this often
_RENEW_AFTER = 3  # consecutive failed fetches after which the pull subscription is replaced
_MIN_WEBHOOK_PAYLOAD = 25 * 1024 * 1024  # the gateway's default body limit
_HEADER_ROOM = 128 * 1024  # a message's headers: CloudEvent attributes and vendor headers
# created at start; any other stream is created on its first publish or consumer

# Errors after which the same request may succeed: the server is restarting, a stream or
# consumer leader is being elected, the connection is being re-established.
_TRANSIENT: tuple[type[BaseException], ...] = (
    TimeoutError,  # also nats.errors.TimeoutError and FetchTimeoutError
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.FlushTimeoutError,
    nats.errors.NoServersError,
    OSError,
)


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, nats.js.errors.APIError):
        # 503: no JetStream leader yet; 500: a server-side hiccup; None: a status with no code
        return exc.code is None or exc.code >= 500
    return isinstance(exc, _TRANSIENT)


def _backoff(attempt: int) -> float:
    return float(min(0.5, 0.05 * 2**attempt))


class NatsBroker(Broker):
    """Durable streams on NATS JetStream; see the module docstring for the layout.

    ``url`` is one server or a comma-separated list (``nats://h1:4222,nats://h2:4222``): the
    client connects to one of them, learns the rest of the cluster from it and reconnects to
    another when it fails, forever.
    """

    def __init__(
        self,
        url: str,
        *,
        replicas: int = 1,
        prefix: str = "ghapplets",
        duplicate_window: float = 120.0,
        ack_wait: float = 30.0,
        max_ack_pending: int = 1024,
        publish_timeout: float = 8.0,
        storage: str = "file",
        connect_timeout: float = 10.0,
    ) -> None:
        servers = [s.strip() for s in url.split(",") if s.strip()]
        if not servers:
            raise ValueError("no NATS server URL given")
        if not _PREFIX_RE.fullmatch(prefix):
            raise ValueError(f"the stream prefix {prefix!r} may only hold letters, digits, _ and -")
        if storage not in ("file", "memory"):
            raise ValueError(f"storage must be 'file' or 'memory', not {storage!r}")
        if replicas < 1 or ack_wait <= 0 or max_ack_pending < 1 or publish_timeout <= 0:
            raise ValueError("replicas, ack_wait, max_ack_pending and publish_timeout must be > 0")
        self.servers = servers
        self.replicas = replicas
        self.prefix = prefix
        self.duplicate_window = duplicate_window
        self.ack_wait = ack_wait
        self.max_ack_pending = max_ack_pending
        self.publish_timeout = publish_timeout
        self.storage = api.StorageType.FILE if storage == "file" else api.StorageType.MEMORY
        self.connect_timeout = connect_timeout
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._closed = True
        self._streams: set[str] = set()  # broker stream names known to exist on the server
        self._stream_locks: dict[str, asyncio.Lock] = {}
        self._consumers: weakref.WeakSet[_NatsConsumer] = weakref.WeakSet()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._error_warned_at = 0.0
        self._last_error: Exception | None = None

    # -- names -------------------------------------------------------------------------------
    def stream_name(self, stream: str) -> str:
        if not _NAME_RE.fullmatch(stream):
            raise ValueError(f"invalid stream name {stream!r}: use letters, digits, _ and -")
        return f"{self.prefix}_{stream}".upper()

    def subject(self, stream: str) -> str:
        return f"{self.prefix}.{stream}"

    def durable_name(self, stream: str) -> str:
        return f"{self.prefix}-{stream}"

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect, then create or update the ``events`` and ``jobs`` streams.

        Raises :class:`BrokerUnavailable` if that has not worked within ``connect_timeout``.
        Once connected, the client reconnects by itself forever.
        """
        if not self._closed:
            return
        nc = NatsClient()
        options: dict[str, Any] = {
            "servers": self.servers,
            "name": f"ghapplets {socket.gethostname()} pid {os.getpid()}",
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,  # forever
            "reconnect_time_wait": 0.25,
            "connect_timeout": 2,
            # a dead peer (half-open TCP, network partition) is noticed within ~15 s
            "ping_interval": 5,
            "max_outstanding_pings": 3,
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
        }
        deadline = time.monotonic() + self.connect_timeout
        self._last_error = None
        try:
            await asyncio.wait_for(nc.connect(**options), self.connect_timeout)
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            with contextlib.suppress(Exception):
                await nc.close()
            cause = self._last_error or exc
            raise BrokerUnavailable(
                f"cannot connect to NATS at {','.join(self.servers)}: {cause!r}"
            ) from exc
        self._nc = nc
        self._js = nc.jetstream(timeout=_API_TIMEOUT)
        self._closed = False
        if nc.max_payload < _MIN_WEBHOOK_PAYLOAD:
            log.warning(
                "the NATS server's max_payload is below the gateway's default 25 MiB body "
                "limit: larger webhooks are refused with 413; raise max_payload on the "
                "servers to take them",
                max_payload=nc.max_payload,
            )
        try:
            for stream in STREAMS:
                await self._retry_until(deadline, functools.partial(self._ensure_stream, stream))
        except BaseException:
            await self.close()
            raise
        log.info(
            "connected to NATS JetStream",
            server=str(nc.connected_url.netloc) if nc.connected_url else None,
            prefix=self.prefix,
            replicas=self.replicas,
        )

    async def close(self) -> None:
        """Flush what was sent and close the connection; unacked messages will come back.

        Not ``nc.drain()``: it waits for every subscription's queue to be consumed, which a
        pull subscription's never is, so it would only ever end by timing out.
        """
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        nc, self._nc = self._nc, None
        self._js = None
        if nc is None or nc.is_closed:
            return
        try:
            if nc.is_connected:
                await nc.flush(timeout=1)
        except Exception as exc:
            log.debug("NATS flush before close failed", error=repr(exc))
        finally:
            with contextlib.suppress(Exception):
                await nc.close()

    async def _on_error(self, exc: Exception) -> None:
        # while reconnecting, every failed attempt reports here: warn now and then, not each time
        self._last_error = exc
        if self._closed:
            return
        now = time.monotonic()
        if now - self._error_warned_at >= _WARN_EVERY:
            self._error_warned_at = now
            log.warning("NATS connection error", error=repr(exc))
        else:
            log.debug("NATS connection error", error=repr(exc))

    async def _on_disconnected(self) -> None:
        if not self._closed:
            log.warning("disconnected from NATS; reconnecting")

    async def _on_reconnected(self) -> None:
        nc = self._nc
        url = nc.connected_url.netloc if nc is not None and nc.connected_url else None
        log.info("reconnected to NATS", server=url)
        self._error_warned_at = 0.0
        # A server that came back empty (a memory store, a new volume) has lost the streams and
        # consumers: check them again on the next use. The pull subscriptions themselves are
        # kept: nats-py subscribes their inboxes again, and messages already delivered into
        # them must not be dropped (they would wait out ack_wait before coming back).
        self._streams.clear()
        for consumer in self._consumers:
            consumer._check = True

    def _jetstream(self) -> JetStreamContext:
        if self._closed or self._js is None:
            raise BrokerUnavailable("the NATS broker is closed")
        return self._js

    def _client(self) -> NatsClient:
        if self._closed or self._nc is None:
            raise BrokerUnavailable("the NATS broker is closed")
        return self._nc

    def _connected(self) -> NatsClient:
        """The client, if it is connected now; else a transient error, to be retried.

        Requests are not sent while the client is reconnecting: nats-py would buffer them and
        send them after the reconnect, long after this caller has given up on them.
        """
        nc = self._client()
        if not nc.is_connected:
            raise nats.errors.ConnectionReconnectingError()
        return nc

    # -- streams and consumers ---------------------------------------------------------------
    def _stream_config(self, stream: str) -> api.StreamConfig:
        return api.StreamConfig(
            name=self.stream_name(stream),
            subjects=[self.subject(stream)],
            retention=api.RetentionPolicy.WORK_QUEUE,
            storage=self.storage,
            num_replicas=self.replicas,
            duplicate_window=self.duplicate_window,
            # no limits are set; should an operator add some, refuse new messages (the gateway
            # answers 503 and the vendor retries) rather than silently drop unprocessed ones
            discard=api.DiscardPolicy.NEW,
        )

    def _consumer_config(self, stream: str) -> api.ConsumerConfig:
        durable = self.durable_name(stream)
        return api.ConsumerConfig(
            name=durable,
            durable_name=durable,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_deliver=-1,
            max_ack_pending=self.max_ack_pending,
            filter_subject=self.subject(stream),
        )

    async def _ensure_stream(self, stream: str) -> None:
        """Create the stream, or update it to this configuration; idempotent, cached."""
        if stream in self._streams:
            return
        lock = self._stream_locks.setdefault(stream, asyncio.Lock())
        async with lock:
            if stream in self._streams:
                return
            js = self._jetstream()
            config = self._stream_config(stream)
            try:
                # creating a stream that exists with the same configuration succeeds, so any
                # number of processes may start at once
                await js.add_stream(config)
            except nats.js.errors.BadRequestError as exc:
                if exc.err_code != _STREAM_NAME_IN_USE:
                    raise
                await js.update_stream(config)
                log.info("JetStream stream updated", stream=config.name)
            self._streams.add(stream)

    async def _ensure_consumer(self, stream: str) -> None:
        # CONSUMER.CREATE with a name creates the durable or, if it exists, updates it to this
        # configuration (idempotent when unchanged), so it is safe from every process
        await self._jetstream().add_consumer(
            self.stream_name(stream), self._consumer_config(stream)
        )

    async def _retry_until(self, deadline: float, op: Callable[[], Awaitable[T]]) -> T:
        """Run ``op`` until it succeeds, retrying transient failures until ``deadline``.

        Raises :class:`BrokerUnavailable` with the last error once the time is up, at once for
        an error that retrying cannot cure.
        """
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            try:
                async with asyncio.timeout(max(0.01, remaining)):
                    return await op()
            except BrokerUnavailable:
                raise
            except nats.errors.ConnectionClosedError as exc:
                raise BrokerUnavailable("the NATS connection is closed") from exc
            except nats.errors.MaxPayloadError as exc:
                raise BrokerUnavailable(
                    f"message larger than the NATS server's max_payload: {exc!r}"
                ) from exc
            except Exception as exc:
                if not _is_transient(exc):
                    raise BrokerUnavailable(f"NATS refused the request: {exc}") from exc
                last: Exception = exc
            attempt += 1
            delay = _backoff(attempt)
            if deadline - time.monotonic() <= delay:
                raise BrokerUnavailable(f"NATS did not answer in time: {last!r}") from last
            await asyncio.sleep(delay)

    # -- publishing --------------------------------------------------------------------------
    async def publish(self, message: OutboundMessage) -> PublishAck:
        """Store ``message`` and return once the stream has confirmed it (its PubAck).

        Timeouts, "no responders" while a stream leader is elected, and a reconnecting client
        are retried with the same ``Nats-Msg-Id`` (so at most one copy is stored) until
        ``publish_timeout`` has passed; then :class:`BrokerUnavailable`.
        """
        self._jetstream()  # raises if closed
        headers = {**message.headers, MSG_ID: message.msg_id}
        subject = self.subject(message.stream)
        name = self.stream_name(message.stream)
        deadline = time.monotonic() + self.publish_timeout
        # A PubAck normally takes milliseconds; a request lost in a failover is re-sent soon.
        per_try = min(_PUBLISH_TRY, self.publish_timeout)

        async def attempt() -> PublishAck:
            self._connected()
            await self._ensure_stream(message.stream)
            js = self._jetstream()
            timeout = max(0.01, min(per_try, deadline - time.monotonic()))
            try:
                ack = await js.publish(
                    subject, message.data, timeout=timeout, stream=name, headers=headers
                )
            except nats.js.errors.NoStreamResponseError:
                self._streams.discard(message.stream)  # deleted, or lost by a memory store
                raise
            return PublishAck(ack.seq, bool(ack.duplicate))

        acked = await self._retry_until(deadline, attempt)
        if message.stream == EVENTS:
            reached(CrashPoint.GATEWAY_STORED)
        return acked

    async def publish_many(self, messages: Sequence[OutboundMessage]) -> list[PublishAck]:
        """Publish all of ``messages`` concurrently; raise the first failure once all are done."""
        results = await asyncio.gather(*(self.publish(m) for m in messages), return_exceptions=True)
        acks: list[PublishAck] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            acks.append(result)
        return acks

    remembers_ids = False  # ids for duplicate_window seconds only

    @property
    def max_message_bytes(self) -> int | None:
        """The server's ``max_payload``, less room for the message's headers (the event's
        attributes and the vendor headers, which the gateway bounds)."""
        nc = self._nc
        if nc is None or not nc.max_payload:
            return None
        return max(0, nc.max_payload - _HEADER_ROOM)

    # -- consuming ---------------------------------------------------------------------------
    def consumer(self, stream: str) -> Consumer:
        self.stream_name(stream)  # validates the name
        consumer = _NatsConsumer(self, stream)
        self._consumers.add(consumer)
        return consumer

    async def _confirm(self, reply: str, payload: bytes) -> None:
        """Send an ack-type message and wait for the server to confirm it (a double ack)."""
        deadline = time.monotonic() + self.publish_timeout

        async def attempt() -> None:
            nc = self._connected()
            await nc.request(reply, payload, timeout=max(0.01, deadline - time.monotonic()))

        await self._retry_until(deadline, attempt)

    # -- health and depth --------------------------------------------------------------------
    async def ping(self) -> None:
        nc = self._client()
        if not nc.is_connected:
            raise BrokerUnavailable("not connected to NATS")
        try:
            await asyncio.wait_for(self._jetstream().account_info(), _PING_TIMEOUT)
        except BrokerUnavailable:
            raise
        except Exception as exc:
            raise BrokerUnavailable(f"JetStream does not answer: {exc!r}") from exc

    async def purge(self) -> int:
        """Delete every message of the streams (``restore --force``: the store that replaces
        the old one is the record, and its unfinished work is queued again); the count."""
        js = self._jetstream()
        purged = 0
        for stream in STREAMS:
            with contextlib.suppress(nats.js.errors.NotFoundError):  # never created: empty
                purged += int((await js.stream_info(self.stream_name(stream))).state.messages)
                await js.purge_stream(self.stream_name(stream))
        return purged

    async def depth(self, stream: str) -> int:
        """Messages not yet delivered plus those delivered but not yet acked or terminated."""
        js = self._jetstream()
        try:
            info = await js.consumer_info(self.stream_name(stream), self.durable_name(stream))
            value = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
        except nats.js.errors.NotFoundError:
            # no consumer yet: the work-queue stream itself holds exactly the backlog
            try:
                state = (await js.stream_info(self.stream_name(stream))).state
                value = int(state.messages)
            except nats.js.errors.NotFoundError:
                value = 0
        except Exception as exc:
            if _is_transient(exc):
                raise BrokerUnavailable(f"JetStream does not answer: {exc!r}") from exc
            raise
        return value


class _NatsConsumer(Consumer):
    """The durable pull consumer of one stream, as seen from this process."""

    def __init__(self, broker: NatsBroker, stream: str) -> None:
        self.broker = broker
        self.name = stream
        self._sub: JetStreamContext.PullSubscription | None = None
        self._check = False  # make sure the stream and consumer exist before the next fetch
        self._renew = False  # replace the pull subscription before the next fetch
        self._lock = asyncio.Lock()  # one fetch at a time: they share one inbox
        # the nats-py message behind each Message handed out and not yet settled, by stream
        # sequence; the server never has more than max_ack_pending of them out at once
        self._inflight: dict[int, Msg] = {}
        # sequences settled here lately, with the delivery count they were settled at:
        # settling one of them again is a no-op, and an older copy of it is not handed out
        self._settled: dict[int, int] = {}
        self._failing_since: float | None = None
        self._warned_at = 0.0
        self._failures = 0

    async def _subscription(self) -> JetStreamContext.PullSubscription:
        """The pull subscription, after making sure the stream and the durable consumer exist."""
        if self._sub is not None and not self._check and not self._renew:
            return self._sub
        broker = self.broker
        await broker._ensure_stream(self.name)
        await broker._ensure_consumer(self.name)
        self._check = False
        if self._sub is not None and self._renew:
            old, self._sub = self._sub, None
            with contextlib.suppress(Exception):
                await old.unsubscribe()
        if self._sub is None:
            self._sub = await broker._jetstream().pull_subscribe_bind(
                durable=broker.durable_name(self.name), stream=broker.stream_name(self.name)
            )
        self._renew = False
        return self._sub

    async def fetch(self, batch: int, timeout: float) -> list[Message]:
        """Up to ``batch`` messages, waiting up to ``timeout`` s for the first; never raises.

        A pull subscription can go silent after the server restarts or a leader moves: the
        server forgets the pull request it was holding and a reconnect does not send it again
        (nats-io/nats.py#504, nats-io/nats.go#890, nats-io/nats-server#3991, where the
        maintainers advise pulls with an expiry and re-subscribing). So every fetch is a short
        pull that expires with ``timeout``, never one long-lived pull, and after an error or a
        reconnect the pull subscription is re-created (and the stream and durable consumer
        with it, should the server have lost them). Errors are logged, not raised: the caller
        just sees an empty batch and comes back.
        """
        broker = self.broker
        timeout = max(timeout, 0.05)
        nc = broker._nc
        if broker._closed or nc is None or not nc.is_connected:
            # No hot loop for a caller that keeps fetching, and no pull requests buffered while
            # reconnecting: sent after the reconnect, they would pull far more messages into
            # this process than it asked for.
            await asyncio.sleep(timeout)
            return []
        async with self._lock:
            try:
                # While a consumer leader is being elected (seconds, after a node died) the
                # consumer's API does not answer; keep within about this fetch's timeout and
                # try again on the next one.
                sub = await asyncio.wait_for(self._subscription(), max(timeout, _SETUP_WAIT))
            except Exception as exc:
                await self._failed(exc, timeout)
                return []
            try:
                msgs = await sub.fetch(max(1, batch), timeout=timeout)
            except TimeoutError:  # nothing to deliver (a timeout is not a failure)
                self._recovered()
                return []
            except Exception as exc:
                await self._failed(exc, timeout)
                return []
        self._recovered()
        return [self._wrap(msg) for msg in self._newest(msgs)]

    def _newest(self, msgs: list[Msg]) -> list[Msg]:
        """``msgs`` without deliveries superseded by a later delivery of the same message.

        A delivery can sit in the subscription's queue (a pull that expired on our side just as
        the server answered it) until the next fetch, by which time its ack_wait may have run
        out and a redelivery may be in the same batch, or already handed out, or even settled.
        Only the newest delivery of a message is handed out, and only once.
        """
        newest: dict[int, Msg] = {}
        for msg in msgs:
            seq, count = msg.metadata.sequence.stream, msg.metadata.num_delivered
            held = self._inflight.get(seq)
            if held is not None and held.metadata.num_delivered >= count:
                continue
            if self._settled.get(seq, 0) >= count:
                continue
            if seq not in newest or count > newest[seq].metadata.num_delivered:
                newest[seq] = msg
        return list(newest.values())

    def _wrap(self, msg: Msg) -> Message:
        meta = msg.metadata
        seq = meta.sequence.stream
        raw = msg.headers or {}
        headers = {k: v for k, v in raw.items() if not k.lower().startswith("nats-")}
        self._settled.pop(seq, None)  # delivered again: it is not settled after all
        inflight = self._inflight
        inflight.pop(seq, None)  # a redelivery replaces the earlier delivery, as the newest
        inflight[seq] = msg
        # The server hands out at most max_ack_pending at once; entries beyond that were never
        # settled here (a nak that failed, say) and have been redelivered elsewhere since.
        while len(inflight) > 2 * self.broker.max_ack_pending:
            del inflight[next(iter(inflight))]
        return Message(self.name, seq, raw.get(MSG_ID, ""), headers, msg.data, meta.num_delivered)

    async def _failed(self, exc: Exception, timeout: float) -> None:
        if self.broker._closed:
            return
        now = time.monotonic()
        self._failures += 1
        # First suspect the server side (consumer lost or being moved to a new leader); when
        # failures go on, also replace the subscription. Messages still buffered in the old one
        # come back after ack_wait.
        self._check = True
        self._renew = self._renew or self._failures >= _RENEW_AFTER
        if self._failing_since is None:
            self._failing_since = now
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            log.warning(
                "fetching from NATS failed; retrying",
                stream=self.name,
                error=repr(exc),
                failures=self._failures,
                failing_for=round(now - self._failing_since, 1),
            )
        await asyncio.sleep(min(timeout, _backoff(self._failures)))

    def _recovered(self) -> None:
        if self._failing_since is not None:
            log.info(
                "fetching from NATS works again",
                stream=self.name,
                after=round(time.monotonic() - self._failing_since, 1),
            )
        self._failing_since = None
        self._failures = 0
        self._warned_at = 0.0

    def _msg(self, message: Message) -> Msg | None:
        """The delivery to settle ``message`` with; None if it was settled here already."""
        msg = self._inflight.get(message.seq)
        if msg is None:
            if message.seq in self._settled:
                # handed out twice (redelivered while the first copy was being worked on) and
                # settled through the other copy
                return None
            raise ValueError(f"message {message.stream}#{message.seq} was not fetched here")
        return msg

    async def _settle(self, message: Message, payload: bytes) -> None:
        msg = self._msg(message)
        if msg is None:
            return
        await self.broker._confirm(msg.reply, payload)
        if self._inflight.get(message.seq) is msg:
            del self._inflight[message.seq]
        settled = self._settled
        settled[message.seq] = msg.metadata.num_delivered
        while len(settled) > 2 * self.broker.max_ack_pending:
            del settled[next(iter(settled))]

    async def ack(self, message: Message) -> None:
        await self._settle(message, Msg.Ack.Ack)

    async def nak(self, message: Message, delay: float) -> None:
        payload = Msg.Ack.Nak
        if delay > 0:
            payload += b' {"delay": %d}' % int(delay * 1_000_000_000)
        await self._settle(message, payload)

    async def term(self, message: Message, reason: str) -> None:
        # the reason travels in the server's "terminated" advisory
        text = " ".join(reason.split())[:256].rstrip()
        await self._settle(message, Msg.Ack.Term + (b" " + text.encode() if text else b""))

    async def in_progress(self, message: Message) -> None:
        msg = self._msg(message)
        if msg is not None:
            await self.broker._confirm(msg.reply, Msg.Ack.Progress)
