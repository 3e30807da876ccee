"""The embedded broker: JetStream-like streams persisted in the SQLite database.

Messages live in ``broker_messages`` and nowhere else: this process keeps no queue in memory.
Many processes may publish into the same file (the gateway processes, the CLI's ``replay``);
exactly one process consumes (the worker: dispatcher and applet workers).

- **Publish.** Publishes made in one event-loop turn are inserted with one ``executemany``
  through the database's group-committing writer; the call returns once the transaction has
  committed. A known ``(stream, msg_id)`` is a duplicate. After the commit the publisher wakes the
  consumer: directly when it is this process, otherwise with a one-byte datagram to the Unix
  socket ``<database file>.wake`` that the consuming process binds (see :func:`wake_address`).
- **Fetch** reads due messages: ``state = pending AND stream = ? AND available_at <= now``, in
  ``(available_at, seq)`` order, at most ``batch`` of them (a range scan of ``ix_broker_due``
  however long the backlog). In the same transaction it *leases* them, as JetStream's AckWait:
  ``available_at = now + ack_wait``, ``delivered + 1``, ``holder`` = this process's token. A
  lease runs out unless the consumer acks, naks, terminates or extends it (``in_progress``);
  then the message is due again and delivered again.
- **Waiting.** An idle fetch waits for a wakeup (a publish, a datagram, a nak that makes
  something due sooner), for the earliest ``available_at`` of the stream's pending messages
  (nak delays, leases), or ``poll_interval`` at most, whichever comes first. The poll makes up
  for a lost datagram; nothing spins.
- **One consumer.** A broker built with ``consume=True`` holds an exclusive ``flock`` on
  ``<database file>.consumer.lock`` while it runs (a second one fails with
  :class:`BrokerBusy`). Holding it proves every other holder is dead, so on start it releases
  every lease another token holds: after a ``kill -9`` the messages in flight are delivered
  again at once, not when their leases run out.
- **Pruning.** Settled (acked or terminated) messages stay in the table, as the record of
  the ids seen (a duplicate is refused for as long as it is there), until retention
  (:meth:`SqliteBroker.prune`) deletes those published before its cut-off, a chunk per
  transaction; pending ones stay, whatever their age.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import functools
import hashlib
import itertools
import math
import os
import socket
import sys
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.engine import Connection

from ghapplets.broker.base import (
    EVENTS,
    Broker,
    Consumer,
    Message,
    OutboundMessage,
    PublishAck,
)
from ghapplets.crashpoints import CrashPoint, reached
from ghapplets.exceptions import BrokerUnavailable, StoreUnavailable
from ghapplets.logging import get_logger
from ghapplets.store.database import Database

log = get_logger("ghapplets.broker")

PENDING, ACKED, TERMINATED = 0, 1, 2
_CHUNK = 400
_SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes, NUL included

_DUE = (
    "SELECT seq, msg_id, headers, data, delivered FROM broker_messages"
    " WHERE state = 0 AND stream = ? AND available_at <= ?"
    " ORDER BY available_at, seq LIMIT ?"
)
_NEXT_DUE = "SELECT MIN(available_at) FROM broker_messages WHERE state = 0 AND stream = ?"
_LEASE = (
    "UPDATE broker_messages SET available_at = ?, delivered = delivered + 1, holder = ?"
    " WHERE seq = ?"
)
_DEPTH = "SELECT count(*) FROM broker_messages WHERE state = 0 AND stream = ?"
_STREAM_AFTER = "SELECT MIN(stream) FROM broker_messages WHERE state = 0 AND stream > ?"
# a lease that is still running (available_at ahead) of a dead holder: due again, in its place
_RELEASE = (
    "UPDATE broker_messages SET holder = NULL, available_at = created_at"
    " WHERE state = 0 AND stream = ? AND available_at > ? AND holder IS NOT NULL AND holder != ?"
)
# the first settlement wins; the body of an acked message is not kept (the store has it)
_SETTLE = (
    "UPDATE broker_messages SET state = ?, reason = ?,"
    " data = CASE WHEN ? = 1 THEN NULL ELSE data END WHERE seq = ? AND state = 0"
)
# only the current delivery (the lease it came with) may nak or extend it
_NAK = (
    "UPDATE broker_messages SET available_at = ?, holder = NULL"
    " WHERE seq = ? AND state = 0 AND delivered = ?"
)
_EXTEND = (
    "UPDATE broker_messages SET available_at = ?"
    " WHERE seq = ? AND state = 0 AND delivered = ? AND holder = ?"
)

PRUNE_CHUNK = 1000  # messages looked at per pruning transaction
# the oldest messages first, by the primary key: messages are numbered as they are published,
# so ``seq`` order is (all but) ``created_at`` order and no other index is needed
_OLDEST = "SELECT seq, state, created_at FROM broker_messages WHERE seq > ? ORDER BY seq LIMIT ?"
_DELETE = "DELETE FROM broker_messages WHERE seq = ?"


def prune_chunk(
    conn: Connection, older_than: float, after: int, limit: int
) -> tuple[int, int | None]:
    """Delete the settled (acked or dead) messages among the ``limit`` oldest after ``after``
    published before ``older_than``: how many, and where the next chunk starts (None once a
    newer message is reached, or none is left). Pending ones stay, whatever their age."""
    rows = conn.exec_driver_sql(_OLDEST, (after, limit)).all()
    done = [r for r in rows if r.state != 0 and r.created_at < older_than]
    if done:
        conn.exec_driver_sql(_DELETE, [(r.seq,) for r in done])
    newer = any(r.created_at >= older_than for r in rows)
    return len(done), None if newer or len(rows) < limit else rows[-1].seq


class BrokerBusy(BrokerUnavailable):
    """Another live process already consumes this database (one worker per data folder)."""


def wake_address(db_path: Path) -> str | bytes:
    """The Unix datagram address the consumer of ``db_path`` listens on for wakeups.

    ``<database file>.wake`` next to the file, or, when that path does not fit in a socket
    address, a name in Linux's abstract namespace derived from a hash of the file's path.
    """
    real = os.path.realpath(db_path)
    path = real + ".wake"
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        return path
    digest = hashlib.sha256(os.fsencode(real)).hexdigest()[:40]
    return b"\0ghapplets-wake-" + digest.encode()


def _take_consumer_lock(db_path: Path) -> int:
    """The file descriptor holding the consumer lock of ``db_path``, or :class:`BrokerBusy`."""
    path = os.path.realpath(db_path) + ".consumer.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise BrokerBusy(
                f"another Ghapplets worker is already running on the data folder "
                f"{Path(db_path).parent} (a process holds {path}): stop it first, or use "
                "another data folder"
            ) from None
        raise
    return fd


def _cursor(conn: Connection) -> Any:
    return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]


class _Op:
    """A queued single-row change (ack, term, nak, extend) and who waits for it."""

    __slots__ = ("due", "future", "params", "sql", "stream")

    def __init__(
        self,
        sql: str,
        params: tuple[Any, ...],
        stream: str,
        due: float | None,
        future: asyncio.Future[None],
    ) -> None:
        self.sql = sql
        self.params = params
        self.stream = stream
        self.due = due
        self.future = future


class SqliteBroker(Broker):
    def __init__(
        self,
        db: Database,
        *,
        consume: bool,
        poll_interval: float = 0.5,
        ack_wait: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``consume``: this process is the (only) consumer; otherwise it only publishes.
        ``poll_interval``: an idle fetch looks at the database at least this often.
        ``ack_wait``: how long a fetched message stays leased without an ack or extension.
        ``clock``: the wall clock (epoch seconds) of creation times, due times and leases;
        tests replace it to move time by hand."""
        self.db = db
        self.clock = clock
        self.consume = consume
        self.poll_interval = poll_interval
        self.ack_wait = ack_wait
        self.token = uuid.uuid4().hex  # this broker's leases, across close() and start()
        self._closed = True
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[tuple[OutboundMessage, asyncio.Future[PublishAck]]] = []
        self._flush_scheduled = False
        self._ops: list[_Op] = []
        self._ops_scheduled = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._consumers: dict[str, weakref.WeakSet[_SqliteConsumer]] = {}
        self._lock_fd: int | None = None
        self._wake_in: socket.socket | None = None
        self._wake_out: socket.socket | None = None
        self._wake_path: str | None = None  # a socket file we bound and must remove
        self._wake_address: str | bytes = b""

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        if not self._closed:
            return
        if not self.db.is_open:
            await asyncio.to_thread(self.db.open)
        self._loop = asyncio.get_running_loop()
        address = wake_address(self.db.path)
        if self.consume:
            self._lock()
            try:
                self._listen(address)
                released = await self.db.write(self._release_dead_leases)
            except BaseException:
                self._stop_listening()
                self._unlock()
                raise
            if released:
                log.info("leases of a previous worker released", messages=released)
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
            self._wake_out = sock
        self._wake_address = address
        self._closed = False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for consumers in self._consumers.values():
            for consumer in consumers:
                consumer.wakeup.set()
        if self._wake_out is not None:
            self._wake_out.close()
            self._wake_out = None
        self._stop_listening()
        self._unlock()

    def _lock(self) -> None:
        self._lock_fd = _take_consumer_lock(self.db.path)

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def _listen(self, address: str | bytes) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            if isinstance(address, str):
                # left behind by a consumer that died; we hold the lock, so it is not in use
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(address)
            sock.bind(address)
            if isinstance(address, str):
                os.chmod(address, 0o600)  # only the owner's processes may wake us
        except OSError as exc:  # e.g. no abstract namespace (not Linux): polling only
            sock.close()
            log.warning(
                "no wakeup socket; other processes' messages wait for the poll",
                address=repr(address),
                error=str(exc),
                poll_interval=self.poll_interval,
                linux=sys.platform.startswith("linux"),
            )
            return
        self._wake_in = sock
        self._wake_path = address if isinstance(address, str) else None
        assert self._loop is not None
        self._loop.add_reader(sock.fileno(), self._on_datagram)

    def _stop_listening(self) -> None:
        sock, self._wake_in = self._wake_in, None
        if sock is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(sock.fileno())
        sock.close()
        if self._wake_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._wake_path)
            self._wake_path = None

    def _on_datagram(self) -> None:
        sock = self._wake_in
        if sock is None:
            return
        while True:  # one wakeup for however many arrived
            try:
                sock.recv(16)
            except OSError:  # BlockingIOError: none left
                break
        for stream in self._consumers:
            self._due_at(stream, 0.0)

    def _send_wake(self) -> None:
        sock = self._wake_out
        if sock is None:
            return
        # no consumer (ENOENT, ECONNREFUSED) or its queue is full (EAGAIN: it is awake anyway);
        # a lost wakeup only costs the consumer's next poll
        with contextlib.suppress(OSError):
            sock.sendto(b"\1", self._wake_address)

    def _due_at(self, stream: str, due: float) -> None:
        """Wake this process's consumers of ``stream`` that sleep past ``due`` (wall clock)."""
        for consumer in self._consumers.get(stream, ()):
            if due < consumer.sleep_until:
                consumer.wakeup.set()

    # -- writer-thread functions -------------------------------------------------------------
    def _release_dead_leases(self, conn: Connection) -> int:
        cur = _cursor(conn)
        now = self.clock()
        released = 0
        stream = ""
        while True:  # each stream with pending messages, by the index
            stream = cur.execute(_STREAM_AFTER, (stream,)).fetchone()[0]
            if stream is None:
                return released
            released += cur.execute(_RELEASE, (stream, now, self.token)).rowcount

    def _insert(self, items: Sequence[OutboundMessage], conn: Connection) -> list[PublishAck]:
        cur = _cursor(conn)
        top = cur.execute("SELECT COALESCE(MAX(seq), 0) FROM broker_messages").fetchone()[0]
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
        now = self.clock()
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
        return acks

    def _lease_due(
        self, conn: Connection, stream: str, batch: int
    ) -> tuple[list[tuple[Any, ...]], float | None]:
        """Lease up to ``batch`` due messages; with none due, the next due time (if any)."""
        cur = _cursor(conn)
        now = self.clock()
        rows = cur.execute(_DUE, (stream, now, batch)).fetchall()
        if not rows:
            return [], cur.execute(_NEXT_DUE, (stream,)).fetchone()[0]
        until = now + self.ack_wait
        cur.executemany(_LEASE, [(until, self.token, row[0]) for row in rows])
        return rows, None

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
        self._spawn(self._write_batch(batch))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_batch(
        self, batch: list[tuple[OutboundMessage, asyncio.Future[PublishAck]]]
    ) -> None:
        items = [m for m, _ in batch]
        try:
            acks = await self.db.write(lambda conn: self._insert(items, conn))
        except Exception as exc:
            err = BrokerUnavailable(f"could not store messages: {exc}")
            for _, future in batch:
                if not future.done():
                    future.set_exception(err)
            return
        if any(m.stream == EVENTS for m in items):
            reached(CrashPoint.GATEWAY_STORED)
        streams = {m.stream for m, a in zip(items, acks, strict=True) if not a.duplicate}
        if streams and self.consume:
            for stream in streams:
                self._due_at(stream, 0.0)
        elif streams:
            self._send_wake()
        for (_, future), ack in zip(batch, acks, strict=True):
            if not future.done():
                future.set_result(ack)

    # -- consuming: single-row changes, batched per event-loop turn --------------------------
    async def _change(
        self, sql: str, params: tuple[Any, ...], stream: str, due: float | None = None
    ) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._ops.append(_Op(sql, params, stream, due, future))
        if not self._ops_scheduled:
            self._ops_scheduled = True
            loop.call_soon(self._flush_ops)
        await future

    def _flush_ops(self) -> None:
        self._ops_scheduled = False
        batch, self._ops = self._ops, []
        self._spawn(self._write_ops(batch))

    async def _write_ops(self, batch: list[_Op]) -> None:
        def op(conn: Connection) -> None:
            cur = _cursor(conn)
            for sql, ops in itertools.groupby(batch, key=lambda o: o.sql):
                cur.executemany(sql, [o.params for o in ops])

        try:
            await self.db.write(op)
        except Exception as exc:
            for o in batch:
                if not o.future.done():
                    o.future.set_exception(exc)
            return
        for o in batch:
            if o.due is not None:
                self._due_at(o.stream, o.due)
            if not o.future.done():
                o.future.set_result(None)

    async def _lease(self, stream: str, batch: int) -> tuple[list[Message], float | None]:
        rows, next_due = await self.db.write(lambda conn: self._lease_due(conn, stream, batch))
        messages = [
            Message(stream, seq, msg_id, orjson.loads(headers), data or b"", delivered + 1)
            for seq, msg_id, headers, data, delivered in rows
        ]
        return messages, next_due

    def consumer(self, stream: str) -> Consumer:
        if not self.consume:
            raise RuntimeError(
                "this broker only publishes (consume=False): only the worker process consumes"
            )
        consumer = _SqliteConsumer(self, stream)
        self._consumers.setdefault(stream, weakref.WeakSet()).add(consumer)
        return consumer

    # -- health and depth --------------------------------------------------------------------
    async def ping(self) -> None:
        if self._closed or not self.db.is_open:
            raise BrokerUnavailable("the broker is closed")
        try:
            await self.db.read(lambda c: c.exec_driver_sql("SELECT 1").scalar())
        except Exception as exc:
            raise BrokerUnavailable(str(exc)) from exc

    async def depth(self, stream: str) -> int:
        count: int = await self.db.read(lambda c: c.exec_driver_sql(_DEPTH, (stream,)).scalar_one())
        return count

    async def prune(self, older_than: float) -> int:
        """Delete the settled messages published before ``older_than``, a chunk per
        transaction so publishes go on between them; how many."""
        pruned = 0
        after: int | None = 0
        while after is not None:
            chunk = functools.partial(
                prune_chunk, older_than=older_than, after=after, limit=PRUNE_CHUNK
            )
            deleted, after = await self.db.write(chunk)
            pruned += deleted
            reached(CrashPoint.RETENTION_BATCH)
        return pruned


class _SqliteConsumer(Consumer):
    def __init__(self, broker: SqliteBroker, stream: str) -> None:
        self.broker = broker
        self.name = stream
        self.wakeup = asyncio.Event()
        # the wall-clock time an idle fetch sleeps until (infinite while it is not asleep:
        # anything that becomes due then must wake it, as it may have looked before)
        self.sleep_until = math.inf

    async def fetch(self, batch: int, timeout: float) -> list[Message]:
        broker = self.broker
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        try:
            while True:
                self.sleep_until = math.inf
                self.wakeup.clear()
                remaining = deadline - loop.time()
                if broker._closed:  # do not let a fetch loop spin while the broker is down
                    await asyncio.sleep(max(0.0, remaining))
                    return []
                try:
                    messages, next_due = await broker._lease(self.name, max(1, batch))
                except (StoreUnavailable, BrokerUnavailable):
                    await asyncio.sleep(max(0.0, remaining))
                    return []
                except Exception as exc:
                    log.warning("fetch failed", stream=self.name, error=str(exc))
                    await asyncio.sleep(max(0.0, min(remaining, broker.poll_interval)))
                    return []
                if messages:
                    return messages
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return []
                wait = min(remaining, broker.poll_interval)
                if next_due is not None:
                    wait = min(wait, max(0.001, next_due - broker.clock()))
                self.sleep_until = broker.clock() + wait
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), wait)
        finally:
            self.sleep_until = math.inf

    async def ack(self, message: Message) -> None:
        await self.broker._change(_SETTLE, (ACKED, None, ACKED, message.seq), self.name)

    async def term(self, message: Message, reason: str) -> None:
        params = (TERMINATED, reason, TERMINATED, message.seq)
        await self.broker._change(_SETTLE, params, self.name)

    async def nak(self, message: Message, delay: float) -> None:
        due = self.broker.clock() + max(0.0, delay)
        params = (due, message.seq, message.delivered)
        await self.broker._change(_NAK, params, self.name, due)

    async def in_progress(self, message: Message) -> None:
        until = self.broker.clock() + self.broker.ack_wait
        params = (until, message.seq, message.delivered, self.broker.token)
        await self.broker._change(_EXTEND, params, self.name)
