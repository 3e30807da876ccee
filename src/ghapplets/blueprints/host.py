"""What the engine asks of the world around a run, and the in-memory answers.

The engine (:mod:`ghapplets.blueprints.engine`) does no I/O of its own. A :class:`Host` gives it:

- a journal: the step records of the run so far, and a durable ``checkpoint`` of each new one
  (with the events the step emits, which are published only once the step is durable);
- a clock, which a test can make virtual;
- the effects tasks have: calling an applet or a connector action, an HTTP request, a process,
  the events a listener receives, another blueprint to run as a subflow, the secrets.

A host may answer "not now" by raising :class:`Suspended` (a long wait, a listener with no event
yet): the engine unwinds, and the run goes on later by being run again from its journal.

:class:`MemoryJournal`, :class:`VirtualClock`, :class:`RealClock` and :class:`Inbox` are the
in-process pieces that ``ghapplets run`` and the test fixture build their hosts from.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ghapplets.blueprints.program import Program
from ghapplets.blueprints.records import StepRecord


class Suspended(Exception):
    """The run cannot go on now; it resumes at ``wake_at`` or when an event reaches one of
    ``listeners`` (step keys), whichever comes first."""

    def __init__(self, wake_at: float | None = None, listeners: Sequence[str] = ()) -> None:
        super().__init__(wake_at, tuple(listeners))
        self.wake_at = wake_at
        self.listeners = tuple(listeners)

    def merge(self, other: Suspended) -> Suspended:
        times = [t for t in (self.wake_at, other.wake_at) if t is not None]
        return Suspended(min(times) if times else None, self.listeners + other.listeners)


@dataclass(frozen=True)
class HttpRequest:
    method: str
    uri: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: Any = None  # JSON-compatible (sent as JSON, or as text when a str), or bytes
    form: Mapping[str, str] | None = None  # sent form-encoded instead of a body
    timeout: float | None = None
    follow_redirects: bool = False


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    content: bytes


@dataclass(frozen=True)
class ProcessSpec:
    argv: Sequence[str]
    stdin: bytes | None
    environment: Mapping[str, str]
    timeout: float | None
    wait: bool = True  # ``await: false`` starts it and goes on


@dataclass(frozen=True)
class ProcessResult:
    code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Listener:
    """A listen task's registration: the events it wants, as evaluated when it started."""

    key: str
    filters: Sequence[Mapping[str, Any]]  # event filters (``with`` and ``correlate``)
    wants_all: bool  # ``listen.to.any: []``: every event


class Host(Protocol):
    run_id: str

    # -- journal
    def recorded(self, key: str) -> StepRecord | None: ...

    async def checkpoint(self, record: StepRecord, emit: Sequence[Mapping[str, Any]] = ()) -> None:
        """Make ``record`` durable (replacing one of the same key), and then publish ``emit``."""

    # -- clock
    def now(self) -> float: ...

    async def sleep_until(self, when: float) -> None: ...

    # -- effects
    async def call_applet(self, name: str, data: Any, *, key: str) -> Any: ...

    async def call_action(self, name: str, data: Any, *, key: str) -> Any: ...

    async def send_http(self, request: HttpRequest) -> HttpResponse: ...

    async def run_process(self, spec: ProcessSpec) -> ProcessResult: ...

    async def listen(self, listener: Listener) -> None:
        """Start delivering the events that match ``listener`` (idempotent)."""

    async def receive(self, key: str, index: int) -> Mapping[str, Any]:
        """The ``index``-th event (0-based) delivered to the listener ``key``, the same one each
        time it is asked; waits (or raises :class:`Suspended`) until there is one. (A listen
        task's timeout is applied around the whole task, by the engine.)"""

    async def unlisten(self, key: str) -> None:
        """Stop delivering events to the listener ``key``."""

    def subflow(self, namespace: str, name: str, version: str) -> Program:
        """Another blueprint of the project (raise LookupError when there is none)."""

    async def secrets(self, names: Sequence[str]) -> Mapping[str, Any]: ...


class MemoryJournal:
    """A journal in a dict: what a run in process keeps (and a test crashes and resumes)."""

    def __init__(self) -> None:
        self.steps: dict[str, StepRecord] = {}
        self.order: list[str] = []
        self.emitted: list[Mapping[str, Any]] = []

    def recorded(self, key: str) -> StepRecord | None:
        return self.steps.get(key)

    def write(self, record: StepRecord, emit: Sequence[Mapping[str, Any]]) -> None:
        if record.key not in self.steps:
            self.order.append(record.key)
        self.steps[record.key] = record
        self.emitted.extend(emit)

    def records(self) -> list[StepRecord]:
        """Every step, in the order each was first recorded."""
        return [self.steps[k] for k in self.order]


class RealClock:
    def now(self) -> float:
        return time.time()

    async def sleep_until(self, when: float) -> None:
        delay = when - time.time()
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass(order=True)
class _Sleeper:
    when: float
    seq: int
    future: asyncio.Future[None] = field(compare=False)


class VirtualClock:
    """A clock that jumps: when every task of the run is asleep, time moves to the next wake-up.

    ``advance`` moves it by hand; ``idle`` (called by whoever drives the run) lets the earliest
    sleeper go. Timers, retry delays and timeouts pass at once, in the right order.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._sleepers: list[_Sleeper] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep_until(self, when: float) -> None:
        if when <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, _Sleeper(when, next(self._seq), future))
        try:
            await future
        finally:
            if not future.done():
                future.cancel()

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._wake()

    def next_wake(self) -> float | None:
        self._sleepers = [s for s in self._sleepers if not s.future.done()]
        heapq.heapify(self._sleepers)
        return self._sleepers[0].when if self._sleepers else None

    def jump(self) -> bool:
        """Move to the next wake-up, if any sleeper waits; whether one was woken."""
        when = self.next_wake()
        if when is None:
            return False
        self._now = max(self._now, when)
        self._wake()
        return True

    def _wake(self) -> None:
        while self._sleepers and self._sleepers[0].when <= self._now:
            sleeper = heapq.heappop(self._sleepers)
            if not sleeper.future.done():
                sleeper.future.set_result(None)


class Inbox:
    """Events for the listeners of runs in process: a queue each, in arrival order."""

    def __init__(self) -> None:
        self.listeners: dict[str, Listener] = {}
        self.delivered: dict[str, list[Mapping[str, Any]]] = {}
        self._changed = asyncio.Event()

    def add_listener(self, listener: Listener) -> None:
        self.listeners.setdefault(listener.key, listener)
        self.delivered.setdefault(listener.key, [])

    def remove_listener(self, key: str) -> None:
        self.listeners.pop(key, None)

    def offer(self, event: Mapping[str, Any], accepts: Any) -> int:
        """Deliver ``event`` to each listening key for which ``accepts(listener, event)``;
        how many took it."""
        taken = 0
        for key, listener in self.listeners.items():
            if accepts(listener, event):
                self.delivered[key].append(event)
                taken += 1
        self._changed.set()
        return taken

    def get(self, key: str, index: int) -> Mapping[str, Any] | None:
        events = self.delivered.get(key, [])
        return events[index] if index < len(events) else None

    async def changed(self) -> None:
        self._changed.clear()
        await self._changed.wait()
