"""The broker contract: durable streams with publish-dedup and ack / nak / term consumption.

It follows NATS JetStream's semantics so the embedded SQLite broker and a JetStream broker are
interchangeable: ``publish`` is idempotent on ``msg_id`` (``Nats-Msg-Id``); a consumer ``fetch``es
messages, then ``ack``s (done), ``nak``s with a delay (redeliver later), or ``term``inates them
(dead letter). A message that was fetched but never acked is delivered again after a crash.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from ghapplets.logging import get_logger

log = get_logger("ghapplets.broker")


EVENTS = "events"  # verified webhooks, published by the gateway
JOBS = "jobs"  # one message per (event, applet), published by the dispatcher
STREAMS = (EVENTS, JOBS)


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    stream: str
    msg_id: str
    headers: dict[str, str]
    data: bytes


@dataclass(frozen=True, slots=True)
class PublishAck:
    seq: int
    duplicate: bool


@dataclass(slots=True)
class Message:
    """A message handed to a consumer; ``delivered`` counts deliveries including this one."""

    stream: str
    seq: int
    msg_id: str
    headers: dict[str, str]
    data: bytes
    delivered: int


class Consumer(ABC):
    """A durable consumer of one stream."""

    @abstractmethod
    async def fetch(self, batch: int, timeout: float) -> list[Message]:
        """Wait up to ``timeout`` seconds for at least one message; return up to ``batch``.
        While the broker is closed or unreachable, raise
        :class:`~ghapplets.exceptions.BrokerUnavailable` or wait out ``timeout`` and return
        nothing (both backends wait); never return at once with nothing, or a consumer loop
        would spin."""

    async def next_batch(self, batch: int, timeout: float) -> list[Message]:
        """:meth:`fetch`, except that a failing broker pauses the caller for ``timeout``
        seconds and returns nothing, so a consumer loop neither dies nor spins while it is down."""
        try:
            return await self.fetch(batch, timeout)
        except Exception as exc:
            log.warning("cannot fetch messages; trying again", error=str(exc))
            await asyncio.sleep(timeout)
            return []

    @abstractmethod
    async def ack(self, message: Message) -> None: ...

    @abstractmethod
    async def nak(self, message: Message, delay: float) -> None:
        """Deliver ``message`` again, not before ``delay`` seconds."""

    @abstractmethod
    async def term(self, message: Message, reason: str) -> None:
        """Never deliver ``message`` again (it goes to the dead letters)."""

    @abstractmethod
    async def in_progress(self, message: Message) -> None:
        """Say that ``message`` is still being worked on: restart its redelivery timer.

        A message that is fetched but neither acked, nakked nor terminated is delivered again once
        the broker's ack wait has passed (JetStream's ``AckWait``), even while its consumer still
        works on it. A consumer working longer than that calls this (JetStream's ``+WPI``) well
        within every ack wait, as often as needed; the message stays unsettled.
        """


class Broker(ABC):
    #: does a publish of a known message id answer "duplicate" for as long as the store keeps
    #: what it carried (the embedded broker keeps every id in its table), or only for a window
    #: (JetStream's ``duplicate_window``)? The gateway asks the store itself in the latter case.
    remembers_ids: bool = True

    @property
    def max_message_bytes(self) -> int | None:
        """The largest message body the broker takes now, or None for no limit of its own."""
        return None

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def publish(self, message: OutboundMessage) -> PublishAck:
        """Store ``message`` durably before returning; a known ``msg_id`` is a duplicate."""

    @abstractmethod
    async def publish_many(self, messages: Sequence[OutboundMessage]) -> list[PublishAck]:
        """:meth:`publish` each of ``messages`` (together, as the broker can); their acks."""

    @abstractmethod
    def consumer(self, stream: str) -> Consumer: ...

    @abstractmethod
    async def ping(self) -> None:
        """Raise :class:`BrokerUnavailable` unless the broker is usable."""

    @abstractmethod
    async def depth(self, stream: str) -> int:
        """Messages in ``stream`` not yet acked or terminated."""

    async def prune(self, older_than: float) -> int:
        """Delete settled messages published before ``older_than`` (retention), where the
        broker keeps them; how many. JetStream's work-queue streams drop a message once it is
        acked or terminated, so there is nothing to do there."""
        return 0
