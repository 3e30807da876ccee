"""Both broker backends behind one interface, for the conformance suite.

A :class:`Backend` opens brokers over the same durable storage (one SQLite file, or one NATS
server and stream prefix), so a test can "crash" a broker and open another where it left off,
and can take that storage away (close the database, stop the server).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ghapplets.broker.base import Broker
from ghapplets.broker.nats import NatsBroker
from ghapplets.broker.sqlite import SqliteBroker
from ghapplets.store.database import Database
from tests.servers import NatsServer


class Backend:
    kind: str
    # whether a fetched message comes back after ack_wait while its broker is still running
    redelivers_while_running: bool
    ack_wait = 1.0  # short, so tests of redelivery after a crash stay quick

    @property
    def redelivery_after(self) -> float:
        """How long an unsettled message may stay away before it is handed out again."""
        return self.ack_wait if self.redelivers_while_running else 0.2

    def __init__(self) -> None:
        self.opened: list[Broker] = []

    async def open(self, **options: Any) -> Broker:
        broker = self.make(**options)
        await broker.start()
        self.opened.append(broker)
        return broker

    def make(self, **options: Any) -> Broker:
        raise NotImplementedError

    async def crash(self, broker: Broker) -> None:
        """Lose ``broker`` as a crash would: nothing settled, no goodbye to the consumers."""
        raise NotImplementedError

    async def outage(self, broker: Broker) -> None:
        """Take the storage away under ``broker`` (a stopped server, a closed database)."""
        raise NotImplementedError

    async def close_all(self) -> None:
        for broker in self.opened:
            await broker.close()


class SqliteBackend(Backend):
    kind = "sqlite"
    redelivers_while_running = True  # a fetch leases the message for ack_wait

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def make(self, **options: Any) -> Broker:
        ack_wait = options.get("ack_wait", self.ack_wait)
        return SqliteBroker(
            Database(self.path), consume=True, poll_interval=0.05, ack_wait=ack_wait
        )

    async def crash(self, broker: Broker) -> None:
        assert isinstance(broker, SqliteBroker)
        await broker.close()
        broker.db.close()

    async def outage(self, broker: Broker) -> None:
        assert isinstance(broker, SqliteBroker)
        broker.db.close()

    async def close_all(self) -> None:
        await super().close_all()
        for broker in self.opened:
            assert isinstance(broker, SqliteBroker)
            broker.db.close()


class NatsBackend(Backend):
    kind = "nats"
    redelivers_while_running = True

    def __init__(self, server: NatsServer) -> None:
        super().__init__()
        self.server = server
        self.prefix = f"t{uuid.uuid4().hex[:10]}"

    def make(self, **options: Any) -> Broker:
        options.setdefault("ack_wait", self.ack_wait)
        options.setdefault("publish_timeout", 2.0)
        options.setdefault("connect_timeout", 5.0)
        return NatsBroker(self.server.url, prefix=self.prefix, **options)

    async def crash(self, broker: Broker) -> None:
        # the connection goes away with messages unacked: the server redelivers them once
        # their ack_wait has passed
        await broker.close()

    async def outage(self, broker: Broker) -> None:
        self.server.stop()


@pytest.fixture(params=["sqlite", "nats"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        b: Backend = SqliteBackend(tmp_path / "broker.db")
    else:
        b = NatsBackend(request.getfixturevalue("nats_server"))
    try:
        yield b
    finally:
        await b.close_all()


@pytest.fixture
async def broker(backend: Backend) -> Broker:
    """A started broker of each kind: SQLite on a fresh file, NATS on a fresh server."""
    return await backend.open()
