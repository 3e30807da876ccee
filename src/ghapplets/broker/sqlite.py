"""The embedded broker: JetStream-like streams persisted in the SQLite database.

Messages live in ``broker_messages``. This process keeps the pending ones in memory, so a fetch
costs no I/O; every state change (publish, ack, nak, term) is written through the database's
group-committing writer before it is acknowledged to the caller. On start, every message that
was not acked or terminated is loaded again: that is redelivery after a crash.

Other processes (the CLI's ``replay``) may insert messages into the same file. Every insert made
here first sweeps rows that appeared since the last one seen, and a periodic sweep picks them up
when this process is idle; sweeps run in the writer thread, so each row is loaded exactly once.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.engine import Connection

from ghapplets.broker.base import Broker, Consumer, Message, OutboundMessage, PublishAck
from ghapplets.exceptions import BrokerUnavailable, StoreUnavailable
from ghapplets.store.database import Database

PENDING, ACKED, TERMINATED = 0, 1, 2
_CHUNK = 400

_SELECT_NEW = (
    "SELECT seq, stream, msg_id, headers, data, available_at, delivered FROM broker_messages "
    "WHERE seq > ? AND state = 0 ORDER BY seq"
)
_SETTLE = (
    "UPDATE broker_messages SET state = ?, reason = ?, delivered = ?, "
    "data = CASE WHEN ? = 1 THEN NULL ELSE data END WHERE seq = ?"
)


@dataclass
class _Stream:
    ready: deque[Message] = field(default_factory=deque)
    delayed: list[tuple[float, int, Message]] = field(default_factory=list)
    inflight: dict[int, Message] = field(default_factory=dict)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    def depth(self) -> int:
        return len(self.ready) + len(self.delayed) + len(self.inflight)


@dataclass
class _Swept:
    rows: list[tuple[Any, ...]]


class SqliteBroker(Broker):
    def __init__(self, db: Database, *, poll_interval: float = 0.5) -> None:
        self.db = db
        self.poll_interval = poll_interval
        self._streams: dict[str, _Stream] = {}
        self._pending: list[tuple[OutboundMessage, asyncio.Future[PublishAck]]] = []
        self._flush_scheduled = False
        # acks and terms made in one event-loop turn are written as one executemany
        self._settles: list[tuple[tuple[Any, ...], asyncio.Future[None]]] = []
        self._settle_scheduled = False
        # the highest seq seen, and that value as of the last commit; writer thread only
        self._floor = self._committed_floor = 0
        db.add_transaction_listener(self._floor_committed, self._floor_rolled_back)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = True

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        if not self.db.is_open:
            self.db.open()
        self._closed = False
        swept = await self.db.write(self._sweep)
        self._absorb(swept)
        self._poller = asyncio.create_task(self._poll_loop(), name="broker-poll")

    async def close(self) -> None:
        self._closed = True
        if self._poller:
            self._poller.cancel()
        if self._timer:
            self._timer.cancel()
        for stream in self._streams.values():
            stream.wakeup.set()

    def _stream(self, name: str) -> _Stream:
        stream = self._streams.get(name)
        if stream is None:
            stream = self._streams[name] = _Stream()
        return stream

    # -- writer-thread functions -------------------------------------------------------------
    def _floor_committed(self) -> None:
        self._committed_floor = self._floor

    def _floor_rolled_back(self) -> None:  # rows swept or inserted in it were not kept
        self._floor = self._committed_floor

    def _sweep(self, conn: Connection, top: int | None = None) -> _Swept:
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        if top is None:
            top = cur.execute("SELECT COALESCE(MAX(seq), 0) FROM broker_messages").fetchone()[0]
        if top <= self._floor:
            return _Swept([])
        rows = cur.execute(_SELECT_NEW, (self._floor,)).fetchall()
        self._floor = max(self._floor, top)
        return _Swept(rows)

    def _insert(
        self, items: Sequence[OutboundMessage], conn: Connection
    ) -> tuple[list[PublishAck], _Swept]:
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        top = cur.execute("SELECT COALESCE(MAX(seq), 0) FROM broker_messages").fetchone()[0]
        swept = self._sweep(conn, top)
        seen: dict[tuple[str, str], int] = {}
        by_stream: dict[str, list[str]] = {}
        for m in items:
            by_stream.setdefault(m.stream, []).append(m.msg_id)
        for stream, ids in by_stream.items():
            unique = list(dict.fromkeys(ids))
            for i in range(0, len(unique), _CHUNK):
                chunk = unique[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                query = "SELECT seq, msg_id FROM broker_messages WHERE stream = ? AND msg_id IN "
                for seq, msg_id in cur.execute(f"{query}({marks})", (stream, *chunk)):
                    seen[(stream, msg_id)] = seq
        now = time.time()
        acks: list[PublishAck] = []
        rows: list[tuple[Any, ...]] = []
        seq = top
        for m in items:
            key = (m.stream, m.msg_id)
            if key in seen:
                acks.append(PublishAck(seen[key], duplicate=True))
                continue
            seq += 1
            seen[key] = seq
            headers = orjson.dumps(m.headers).decode()
            rows.append((seq, m.stream, m.msg_id, headers, m.data, now, now))
            acks.append(PublishAck(seq, duplicate=False))
        if rows:
            cur.executemany(
                "INSERT INTO broker_messages (seq, stream, msg_id, headers, data, created_at, "
                "available_at, delivered, state) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0)",
                rows,
            )
            self._floor = max(self._floor, seq)
        return acks, swept

    # -- in-memory queues --------------------------------------------------------------------
    def _absorb(self, swept: _Swept) -> None:
        now = time.time()
        for seq, stream, msg_id, headers, data, available_at, delivered in swept.rows:
            msg = Message(stream, seq, msg_id, orjson.loads(headers), data or b"", delivered)
            self._enqueue(msg, max(0.0, available_at - now))

    def _enqueue(self, msg: Message, delay: float = 0.0) -> None:
        stream = self._stream(msg.stream)
        if delay > 0:
            heapq.heappush(stream.delayed, (time.time() + delay, msg.seq, msg))
            self._arm_timer()
        else:
            stream.ready.append(msg)
            stream.wakeup.set()

    def _arm_timer(self) -> None:
        due = [s.delayed[0][0] for s in self._streams.values() if s.delayed]
        if not due:
            return
        when = min(due)
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(loop.time() + max(0.0, when - time.time()), self._release_due)

    def _release_due(self) -> None:
        self._timer = None
        now = time.time()
        for stream in self._streams.values():
            released = False
            while stream.delayed and stream.delayed[0][0] <= now:
                stream.ready.append(heapq.heappop(stream.delayed)[2])
                released = True
            if released:
                stream.wakeup.set()
        self._arm_timer()

    async def _poll_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.poll_interval)
            try:
                self._absorb(await self.db.write(self._sweep))
            except StoreUnavailable:
                return

    # -- publishing --------------------------------------------------------------------------
    async def publish(self, message: OutboundMessage) -> PublishAck:
        if self._closed:
            raise BrokerUnavailable("the broker is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[PublishAck] = loop.create_future()
        self._pending.append((message, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await future

    async def publish_many(self, messages: Sequence[OutboundMessage]) -> list[PublishAck]:
        return list(await asyncio.gather(*(self.publish(m) for m in messages)))

    def _flush(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        task = asyncio.create_task(self._write_batch(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_batch(
        self, batch: list[tuple[OutboundMessage, asyncio.Future[PublishAck]]]
    ) -> None:
        items = [m for m, _ in batch]
        try:
            acks, swept = await self.db.write(lambda conn: self._insert(items, conn))
        except Exception as exc:
            err = BrokerUnavailable(f"could not store messages: {exc}")
            for _, future in batch:
                if not future.done():
                    future.set_exception(err)
            return
        self._absorb(swept)
        for (m, future), ack in zip(batch, acks, strict=True):
            if not ack.duplicate:
                self._enqueue(Message(m.stream, ack.seq, m.msg_id, m.headers, m.data, 0))
            if not future.done():
                future.set_result(ack)

    # -- state changes -----------------------------------------------------------------------
    async def _settle(self, msg: Message, state: int, reason: str | None) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._settles.append(((state, reason, msg.delivered, state, msg.seq), future))
        if not self._settle_scheduled:
            self._settle_scheduled = True
            loop.call_soon(self._flush_settles)
        await future
        self._stream(msg.stream).inflight.pop(msg.seq, None)

    def _flush_settles(self) -> None:
        self._settle_scheduled = False
        batch, self._settles = self._settles, []
        task = asyncio.create_task(self._write_settles(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_settles(
        self, batch: list[tuple[tuple[Any, ...], asyncio.Future[None]]]
    ) -> None:
        rows = [row for row, _ in batch]

        def op(conn: Connection) -> None:
            cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            cur.executemany(_SETTLE, rows)

        try:
            await self.db.write(op)
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for _, future in batch:
            if not future.done():
                future.set_result(None)

    async def _requeue(self, msg: Message, delay: float) -> None:
        available = time.time() + delay

        def op(conn: Connection) -> None:
            conn.exec_driver_sql(
                "UPDATE broker_messages SET available_at = ?, delivered = ? WHERE seq = ?",
                (available, msg.delivered, msg.seq),
            )

        await self.db.write(op)
        self._stream(msg.stream).inflight.pop(msg.seq, None)
        self._enqueue(msg, delay)

    def consumer(self, stream: str) -> Consumer:
        return _SqliteConsumer(self, stream)

    async def ping(self) -> None:
        if self._closed or not self.db.is_open:
            raise BrokerUnavailable("the broker is closed")
        try:
            await self.db.read(lambda c: c.exec_driver_sql("SELECT 1").scalar())
        except Exception as exc:
            raise BrokerUnavailable(str(exc)) from exc

    async def depth(self, stream: str) -> int:
        return self._stream(stream).depth()


class _SqliteConsumer(Consumer):
    def __init__(self, broker: SqliteBroker, stream: str) -> None:
        self.broker = broker
        self.name = stream
        self.stream = broker._stream(stream)

    async def fetch(self, batch: int = 64, timeout: float = 1.0) -> list[Message]:
        if self.broker._closed:
            raise BrokerUnavailable("the broker is closed")
        stream = self.stream
        if not stream.ready and not self.broker._closed:
            stream.wakeup.clear()
            try:
                await asyncio.wait_for(stream.wakeup.wait(), timeout)
            except TimeoutError:
                return []
        out: list[Message] = []
        while stream.ready and len(out) < batch:
            msg = stream.ready.popleft()
            msg.delivered += 1
            stream.inflight[msg.seq] = msg
            out.append(msg)
        return out

    async def ack(self, message: Message) -> None:
        await self.broker._settle(message, ACKED, None)

    async def nak(self, message: Message, delay: float) -> None:
        await self.broker._requeue(message, max(0.0, delay))

    async def term(self, message: Message, reason: str) -> None:
        await self.broker._settle(message, TERMINATED, reason)

    async def in_progress(self, message: Message) -> None:
        """Nothing to do: an inflight message is redelivered only after this process restarts."""
