"""Runs in this process: the host behind ``ghapplets run`` and the blueprint test fixture.

:class:`LocalHost` keeps the journal in memory, asks a clock (real, or virtual in tests) for
time, and takes its effects from callables given to it (the project's applets and connectors,
httpx, real processes; or a test's mocks). Events for listeners are injected with
:meth:`LocalHost.inject`. ``crash_after=N`` makes the host crash the run right after its N-th
completed task is checkpointed (:class:`Crashed`, which nothing in the engine catches), so a
test can run it again on the same journal and see it resume.

:func:`execute` runs a program to its end on a host and returns a :class:`Report`: the status,
the output or the error, and every task that ran, in order.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ghapplets.blueprints.errors import ErrorKind, raise_error
from ghapplets.blueprints.host import (
    HttpRequest,
    HttpResponse,
    Inbox,
    Listener,
    MemoryJournal,
    ProcessResult,
    ProcessSpec,
    RealClock,
    Suspended,
    VirtualClock,
)
from ghapplets.blueprints.listening import attributes_match
from ghapplets.blueprints.loader import pick_version
from ghapplets.blueprints.program import Program
from ghapplets.blueprints.records import RunStatus, StepRecord, TaskStatus
from ghapplets.blueprints.spawn import spawn
from ghapplets.exceptions import BlueprintError

Call = Callable[[str, Any, str], Awaitable[Any]]  # (name, data, idempotency key) -> output
Send = Callable[[HttpRequest], Awaitable[HttpResponse]]
Spawn = Callable[[ProcessSpec], Awaitable[ProcessResult]]


class Crashed(BaseException):
    """Injected crash: the run stops dead after a checkpoint, as if its process died."""


def accepts(listener: Listener, event: Mapping[str, Any]) -> bool:
    """Whether a host delivers ``event`` to ``listener``: its attributes match a filter's."""
    if listener.wants_all:
        return True
    return any(attributes_match(f.get("with") or {}, event) for f in listener.filters)


def _refuse(what: str) -> Call:
    async def refuse(name: str, data: Any, key: str) -> Any:
        raise raise_error(ErrorKind.CONFIGURATION, f"no {what} named {name!r} here")

    return refuse


async def _no_http(request: HttpRequest) -> HttpResponse:
    raise raise_error(ErrorKind.CONFIGURATION, f"no HTTP here for {request.method} {request.uri}")


class LocalHost:
    def __init__(
        self,
        *,
        run_id: str | None = None,
        journal: MemoryJournal | None = None,
        clock: RealClock | VirtualClock | None = None,
        applets: Call | None = None,
        actions: Call | None = None,
        http: Send | None = None,
        processes: Spawn = spawn,
        blueprints: Sequence[Program] = (),
        secrets: Mapping[str, Any] | None = None,
        on_step: Callable[[StepRecord], None] | None = None,
        crash_after: int | None = None,
        when_waiting: Callable[[], bool] | None = None,
    ) -> None:
        self.run_id = run_id or str(uuid.uuid4())
        self.journal = journal or MemoryJournal()
        self.clock = clock or RealClock()
        self.applets = applets or _refuse("applet")
        self.actions = actions or _refuse("action")
        self.http = http or _no_http
        self.processes = processes
        self.blueprints = list(blueprints)
        self.secret_values = dict(secrets or {})
        self.on_step = on_step
        self.crash_after = crash_after
        self.when_waiting = when_waiting  # may inject events when the run can only wait
        self.completed = 0
        self.inbox = Inbox()
        self.pending: list[Mapping[str, Any]] = []  # injected, for listeners to come
        self.inflight = 0  # effects under way (a virtual clock waits for them)
        self.sleeping = 0  # tasks waiting for the clock
        self.receiving = 0  # listeners waiting for an event

    # -- journal
    def recorded(self, key: str) -> StepRecord | None:
        return self.journal.recorded(key)

    async def checkpoint(self, record: StepRecord, emit: Sequence[Mapping[str, Any]] = ()) -> None:
        self.journal.write(record, emit)
        for event in emit:
            self.inject(event)
        if self.on_step is not None:
            self.on_step(record)
        if record.status in (TaskStatus.COMPLETED, TaskStatus.SKIPPED):
            self.completed += 1
            if self.crash_after is not None and self.completed >= self.crash_after:
                self.crash_after = None
                raise Crashed(record.key)

    # -- clock
    def now(self) -> float:
        return self.clock.now()

    async def sleep_until(self, when: float) -> None:
        self.sleeping += 1
        try:
            await self.clock.sleep_until(when)
        finally:
            self.sleeping -= 1

    # -- effects
    async def _effect(self, work: Awaitable[Any]) -> Any:
        self.inflight += 1
        try:
            return await work
        finally:
            self.inflight -= 1

    async def call_applet(self, name: str, data: Any, *, key: str) -> Any:
        return await self._effect(self.applets(name, data, key))

    async def call_action(self, name: str, data: Any, *, key: str) -> Any:
        return await self._effect(self.actions(name, data, key))

    async def send_http(self, request: HttpRequest) -> HttpResponse:
        response: HttpResponse = await self._effect(self.http(request))
        return response

    async def run_process(self, spec: ProcessSpec) -> ProcessResult:
        result: ProcessResult = await self._effect(self.processes(spec))
        return result

    def inject(self, event: Mapping[str, Any]) -> None:
        """An event arrives: listeners that want it get it; it waits for listeners to come."""
        self.pending.append(event)
        self.inbox.offer(event, accepts)

    async def listen(self, listener: Listener) -> None:
        if listener.key in self.inbox.listeners:
            return
        self.inbox.add_listener(listener)
        if not self.inbox.delivered[listener.key]:  # events that came before it listened
            self.inbox.delivered[listener.key].extend(
                e for e in self.pending if accepts(listener, e)
            )

    async def receive(self, key: str, index: int) -> Mapping[str, Any]:
        while True:
            event = self.inbox.get(key, index)
            if event is not None:
                return event
            self.receiving += 1
            try:
                await self.inbox.changed()
            finally:
                self.receiving -= 1

    async def unlisten(self, key: str) -> None:
        self.inbox.remove_listener(key)

    def subflow(self, namespace: str, name: str, version: str) -> Program:
        return pick_version(self.blueprints, namespace, name, version)

    async def secrets(self, names: Sequence[str]) -> Mapping[str, Any]:
        missing = [n for n in names if n not in self.secret_values]
        if missing:
            raise raise_error(
                ErrorKind.AUTHORIZATION,
                f"the secret {missing[0]!r} does not exist or may not be read",
                instance="/use/secrets",
            )
        return {n: self.secret_values[n] for n in names}


@dataclass
class Report:
    """How a run ended: ``status`` (completed, faulted, cancelled, or waiting when it was left
    waiting for an event), ``output``, ``error`` (the DSL's error object) and ``tasks``."""

    status: RunStatus
    output: Any = None
    error: dict[str, Any] | None = None
    tasks: list[StepRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "output": self.output,
            "error": self.error,
            "tasks": [
                {
                    "name": t.name,
                    "reference": t.reference,
                    "status": t.status.value,
                    "startedAt": t.started_at,
                    "endedAt": t.finished_at,
                    "input": t.input,
                    "output": t.output,
                    "error": t.error,
                }
                for t in self.tasks
            ],
        }


async def execute(
    program: Program,
    host: LocalHost,
    input: Any = None,
    *,
    started_at: float | None = None,
    runtime_version: str = "",
) -> Report:
    """Run ``program`` on ``host`` until it ends (or is left waiting for an event that does
    not come: with a virtual clock, once nothing else can happen)."""
    from ghapplets.blueprints.engine import Run

    started = host.now() if started_at is None else started_at
    try:
        secrets = await host.secrets(program.secret_names)
        run = Run(
            program,
            host,
            input={} if input is None else input,
            started_at=started,
            runtime_version=runtime_version,
            secrets=secrets,
        )
        work = asyncio.ensure_future(run.execute())
        await _drive(work, host)
        output = await work
    except BlueprintError as error:
        return Report(RunStatus.FAULTED, error=error.to_dict(), tasks=_ran(host))
    except Suspended:
        return Report(RunStatus.WAITING, tasks=_ran(host))
    return Report(RunStatus.COMPLETED, output=output, tasks=_ran(host))


def _ran(host: LocalHost) -> list[StepRecord]:
    return [r for r in host.journal.records() if r.status != TaskStatus.RUNNING]


async def _drive(work: asyncio.Future[Any], host: LocalHost) -> None:
    """Watch the run: on a virtual clock, let time pass whenever the run can only wait for it;
    on any clock, leave the run waiting (cancelled, reported as waiting) once it waits for
    events and nothing else is under way that could send one."""
    virtual = host.clock if isinstance(host.clock, VirtualClock) else None
    looked = False  # the run looked idle, with a timer set, the last time round
    while not work.done():
        for _ in range(20):  # let every ready task run until it blocks
            await asyncio.sleep(0)
            if work.done():
                return
        if host.inflight or (virtual is None and host.sleeping):
            looked = False
            await asyncio.wait({work}, timeout=0.01)  # an effect or a timer is under way
            continue
        if host.receiving and host.when_waiting is not None and host.when_waiting():
            looked = False
            continue  # events came for the listeners
        if virtual is not None and virtual.next_wake() is not None:
            # time passes only once the run was idle twice, a moment apart: a task on its
            # way to a listener (a timeout's timer already set) is not waiting yet
            if not looked:
                looked = True
                await asyncio.wait({work}, timeout=0.01)
                continue
            looked = False
            virtual.jump()
            continue
        looked = False
        if not host.receiving:
            await asyncio.wait({work}, timeout=0.01)
            continue
        work.cancel()
        try:
            await work
        except asyncio.CancelledError:
            raise Suspended() from None
        return
