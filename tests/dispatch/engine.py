"""The worker side of one data folder on real components, on a clock the test moves by hand.

:class:`Engine` builds what :meth:`ghapplets.platform.Platform` builds for the worker role: the
embedded broker and a history store on one SQLite file, the dispatcher, and the worker with the
runtimes of a project's applets. Two things differ, for the tests:

- the broker's clock (creation times, retry due times, leases) is a
  :class:`~tests.conftest.LeaseClock`, so a test moves time past a backoff instead of waiting
  for it, and can stop just short of a due time to see that nothing runs early;
- every look the broker takes for due messages (:meth:`SqliteBroker._lease`) is recorded in
  :attr:`Engine.polls`, with the clock it saw and when it happened, to tell a consumer that
  waits from one that spins.

The applets of :func:`runs_logged` append a line per run to a file (:func:`runs`), the side
effect the tests count.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from ghapplets.applets.loader import discover
from ghapplets.applets.matching import Matcher
from ghapplets.applets.runtime import Runtime, build_runtime
from ghapplets.broker.base import Message
from ghapplets.broker.sqlite import SqliteBroker
from ghapplets.dispatch import messages as m
from ghapplets.dispatch.bodies import BodyCache
from ghapplets.dispatch.dispatcher import Dispatcher
from ghapplets.dispatch.worker import Worker
from ghapplets.events import CloudEvent
from ghapplets.exceptions import NotFound
from ghapplets.store.database import Database
from ghapplets.store.records import JobRecord
from ghapplets.store.sqlite import SqliteHistoryStore
from tests.conftest import LeaseClock, ProjectBuilder

T = TypeVar("T")
EVENT_TYPE = "com.github.issues.opened"
POLL_INTERVAL = 0.05  # an idle consumer looks at the database this often (real seconds)

# an applet that logs each run (job key and attempt) to a file, then fails while the attempt is
# below ``succeed_at`` (retryably) or returns "ok"
RUNS_LOGGED = """
from ghapplets import Applet, Context, RetryableError
app = Applet({name!r})

@app.on({event!r})
async def handle(ctx: Context) -> str:
    with open({runs!r}, "a") as f:
        f.write(f"{{ctx.idempotency_key}} {{ctx.attempt}}\\n")
    if ctx.attempt < {succeed_at}:
        raise RetryableError("not yet", type="NotYet")
    return "ok"
"""


def runs_logged(
    project: ProjectBuilder, name: str, runs: Path, *, succeed_at: int = 1, manifest: str = ""
) -> None:
    """Add the applet ``name`` that logs its runs to ``runs`` (see :data:`RUNS_LOGGED`)."""
    code = RUNS_LOGGED.format(name=name, event=EVENT_TYPE, runs=str(runs), succeed_at=succeed_at)
    project.python_applet(name, code, manifest)


def runs(path: Path) -> list[tuple[str, int]]:
    """The runs an applet of :func:`runs_logged` logged: (job id, attempt) each."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        job, attempt = line.rsplit(" ", 1)
        out.append((job, int(attempt)))
    return out


async def until(probe: Callable[[], Awaitable[T]], what: str, *, timeout: float = 10.0) -> T:
    """Call ``probe`` until it returns something truthy; that value (or fail after
    ``timeout`` seconds, naming ``what`` was awaited and the last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"gave up waiting for {what}; last: {value!r}"
        await asyncio.sleep(0.01)


@dataclass(frozen=True, slots=True)
class Poll:
    """One look of the broker for due messages."""

    stream: str
    clock: float  # the broker's clock when it looked
    leased: int  # messages it handed out
    at: float  # real time (time.monotonic) it returned


class Engine:
    """Dispatcher, worker and embedded broker of the project at ``root`` on ``db_path``."""

    def __init__(
        self,
        root: Path,
        db_path: Path,
        clock: LeaseClock,
        *,
        applets: Sequence[str] | None = None,
        store_class: type[SqliteHistoryStore] = SqliteHistoryStore,
        max_inflight: int = 256,
        ack_wait: float = 30.0,
    ) -> None:
        self.clock = clock
        self.db = Database(db_path)
        self.broker = SqliteBroker(
            self.db, consume=True, poll_interval=POLL_INTERVAL, ack_wait=ack_wait, clock=clock
        )
        self.store = store_class(self.db)
        self.specs = [
            s for s in discover([root / "applets"]) if applets is None or s.name in applets
        ]
        self.matcher = Matcher(self.specs)
        self.runtimes: dict[str, Runtime] = {}
        self.max_inflight = max_inflight
        self.ack_wait = ack_wait
        self.polls: list[Poll] = []
        self.dispatcher: Dispatcher | None = None
        self.worker: Worker | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self, *, worker: bool = True) -> None:
        await asyncio.to_thread(self.db.open)
        await self.broker.start()
        self._count_polls()
        for spec in self.specs:
            runtime = build_runtime(spec)
            await runtime.start()
            self.runtimes[spec.name] = runtime
        bodies = BodyCache(self.store)
        self.dispatcher = Dispatcher(self.broker, self.store, self.matcher, bodies=bodies)
        self.worker = Worker(
            self.broker,
            self.store,
            self.runtimes,
            bodies=bodies,
            max_inflight=self.max_inflight,
            lease_refresh=self.ack_wait / 3,
        )
        self._tasks.append(asyncio.create_task(self.dispatcher.run(), name="dispatcher"))
        if worker:
            self.start_worker()

    def start_worker(self) -> None:
        assert self.worker is not None
        self._tasks.append(asyncio.create_task(self.worker.run(), name="worker"))

    async def stop(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.stop()
        if self.worker is not None:
            await self.worker.drain(5.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for runtime in self.runtimes.values():
            with contextlib.suppress(Exception):
                await runtime.close()
        await self.broker.close()
        await asyncio.to_thread(self.db.close)

    def _count_polls(self) -> None:
        lease = self.broker._lease

        async def counted(stream: str, batch: int) -> tuple[list[Message], float | None]:
            seen = self.clock()
            messages, next_due = await lease(stream, batch)
            self.polls.append(Poll(stream, seen, len(messages), time.monotonic()))
            return messages, next_due

        self.broker._lease = counted  # type: ignore[method-assign]

    # -- driving it ---------------------------------------------------------------------------
    async def publish_event(self, delivery_id: str, number: int = 1) -> None:
        """Store a GitHub ``issues.opened`` event, as the gateway would."""
        data: dict[str, Any] = {
            "action": "opened",
            "issue": {"number": number, "title": f"issue {number}"},
            "repository": {"full_name": "o/r"},
        }
        event = CloudEvent(
            id=delivery_id, source="https://github.com/o/r", type=EVENT_TYPE, data=data
        )
        body = orjson.dumps(data)
        ack = await self.broker.publish(m.event_message("github", event, body, {}, time.time()))
        assert not ack.duplicate

    async def job(self, job_id: str) -> JobRecord | None:
        try:
            return await self.store.get_job(job_id)
        except NotFound:
            return None

    async def settled(self, job_id: str, attempts: int) -> JobRecord:
        """Wait until attempt ``attempts`` of the job is recorded and the worker holds no job
        (its outcome is settled with the broker too: acked, nakked with its delay, or
        terminated)."""

        async def probe() -> JobRecord | None:
            job = await self.job(job_id)
            assert self.worker is not None
            if job is None or self.worker.inflight:
                return None
            recorded = await self.store.list_attempts(job_id)
            return job if len(recorded) >= attempts and job.status != "running" else None

        return await until(probe, f"attempt {attempts} of {job_id} settled")

    async def quiet_looks(self, stream: str, count: int) -> list[Poll]:
        """Wait until the broker has looked for due ``stream`` messages ``count`` times at the
        clock's current time (after the test last moved it); those looks."""
        now = self.clock()

        async def probe() -> list[Poll]:
            looks = [p for p in self.polls if p.stream == stream and p.clock >= now]
            return looks if len(looks) >= count else []

        return await until(probe, f"{count} looks for {stream} messages at {now}")


@contextlib.asynccontextmanager
async def running(engine: Engine, *, worker: bool = True) -> AsyncIterator[Engine]:
    await engine.start(worker=worker)
    try:
        yield engine
    finally:
        await engine.stop()
