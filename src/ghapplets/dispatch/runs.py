"""Blueprint runs in the worker: durable, resumable, one worker at a time per run.

A run moves forward when a *run message* (on the ``jobs`` stream, header ``ghapplets-run``)
reaches a worker: when it starts, when an event reaches one of its listeners, when its timer is
due, when someone resumes it. The worker that handles the message:

1. holds the run's lease in the store (``run:<id>``, renewed while it works; another worker
   that gets a message for the same run meanwhile puts it back for later);
2. sets the run ``running`` (compare-and-set: a cancelled or suspended run stays so);
3. replays the run from its journal with a :class:`StoreHost` and lets it go on: each step is
   checkpointed in the store with the events it emits (an outbox) and the listeners it opens;
4. records how it ended: ``completed``, ``faulted``, or ``waiting`` with the time its timer is
   due; then lets go of the lease and settles the message.

A run that waits is not kept in memory: a wait longer than :data:`SHORT_WAIT`, a listener with
no event yet, or a retry's delay suspends it. :class:`RunTimers` publishes a run message for
each run whose timer is due (one replica at a time, under a store lease) and publishes what
steps emitted and a crash left in the outbox. The dispatcher hands every event to
:meth:`RunDriver.on_events`: it starts the runs of blueprints whose ``schedule.on`` the event
matches, and delivers it to the listeners that may want it.

A worker killed in the middle of a run leaves its lease to expire and its message to be
delivered again: another worker (or the same, restarted) replays the journal and runs the
interrupted step again, with the same idempotency key.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from croniter import croniter

from ghapplets.applets.runtime import Runtime
from ghapplets.blueprints.durations import parse_duration
from ghapplets.blueprints.effects import call_action, call_applet, secret_values
from ghapplets.blueprints.engine import Run
from ghapplets.blueprints.errors import ErrorKind, raise_error
from ghapplets.blueprints.host import (
    HttpRequest,
    HttpResponse,
    Listener,
    ProcessResult,
    ProcessSpec,
    Suspended,
)
from ghapplets.blueprints.listening import Consumption, attributes_match
from ghapplets.blueprints.loader import Blueprint, pick_version
from ghapplets.blueprints.program import Program
from ghapplets.blueprints.records import StepRecord
from ghapplets.blueprints.spawn import spawn
from ghapplets.blueprints.transport import HttpxSender
from ghapplets.broker.base import Broker, Message, OutboundMessage
from ghapplets.connectors.registry import Connectors
from ghapplets.crashpoints import CrashPoint, reached
from ghapplets.dispatch import messages as m
from ghapplets.events import CloudEvent
from ghapplets.exceptions import BlueprintError, NotFound
from ghapplets.logging import get_logger
from ghapplets.secrets.access import SecretAccess
from ghapplets.store.base import Store
from ghapplets.store.records import ListenerRecord, RunRecord, RunStatus

log = get_logger("ghapplets.runs")

SHORT_WAIT = 2.0  # a wait this short is slept through; a longer one suspends the run
LEASE_TTL = 15.0  # a run's lease, renewed every third of it while a worker runs it
EMITTED_SOURCE = "blueprints"  # the source name of the events blueprints emit
_TYPE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:/")

Call = Callable[[str, Any, str], Awaitable[Any]]  # (name, data, idempotency key) -> output


def run_message(run_id: str, reason: str) -> OutboundMessage:
    """The message that moves a run on; ``reason`` makes its id unique per cause (the broker
    drops a second message of the same id)."""
    return OutboundMessage(m.JOBS, f"run:{run_id}:{reason}", {m.H_RUN: run_id}, b"")


def emitted_message(event: Mapping[str, Any]) -> OutboundMessage:
    """An event a blueprint emitted, on the ``events`` stream like a webhook's."""
    cloud = CloudEvent.from_dict(event)
    return m.event_message(
        EMITTED_SOURCE, cloud, cloud.data_bytes(), {}, time.time(), dedup_key=f"emit:{cloud.id}"
    )


def listener_rows(run_id: str, listener: Listener, now: float) -> list[ListenerRecord]:
    """A listener as the store keeps it: a row per exact type, or one row for every event."""
    filters = [dict(f) for f in listener.filters]
    types: list[str | None] = []
    for spec in filters:
        kind = (spec.get("with") or {}).get("type")
        if not isinstance(kind, str) or not set(kind) <= _TYPE_CHARS:
            types = [None]
            break
        types.append(kind)
    if listener.wants_all or not types:
        types = [None]
    return [
        ListenerRecord(
            run_id=run_id, key=listener.key, event_type=t, filters=filters, created_at=now
        )
        for t in dict.fromkeys(types)
    ]


def candidate(row: ListenerRecord, event: Mapping[str, Any]) -> bool:
    """Whether an event goes to a listener's inbox: it matches a filter's attributes (the run
    applies the rest: data expressions, correlations)."""
    if not row.filters:
        return True
    return any(attributes_match(f.get("with") or {}, event) for f in row.filters)


@dataclass
class Effects:
    """What a run's tasks reach in this worker."""

    applets: Call
    actions: Callable[[str, Any], Awaitable[Any]]  # (name, data): an action has no run key
    http: Callable[[HttpRequest], Awaitable[HttpResponse]]
    processes: Callable[[ProcessSpec], Awaitable[ProcessResult]]
    secrets: Callable[[str, Sequence[str]], Awaitable[Mapping[str, Any]]]  # (blueprint, names)


def worker_effects(
    runtimes: Mapping[str, Runtime],
    connectors: Connectors | None,
    secrets: SecretAccess,
    http: HttpxSender,
) -> Callable[[RunRecord], Effects]:
    """What the runs of a worker reach: its applets (with their declared secrets), its
    connectors, HTTP, processes, and each blueprint's own secrets."""

    def effects(run: RunRecord) -> Effects:
        label = f"{run.namespace}/{run.name}"

        async def applets(name: str, data: Any, key: str) -> Any:
            runtime = runtimes.get(name)
            declared = runtime.spec.secrets if runtime is not None else []
            values = await secrets.for_applet(name, declared)  # none declared: {}, no read
            return await call_applet(
                runtimes,
                name,
                data,
                key=key,
                blueprint=label,
                secrets=values,
                connectors=connectors,
            )

        async def actions(name: str, data: Any) -> Any:
            return await call_action(connectors, name, data)

        async def blueprint_secrets(blueprint: str, names: Sequence[str]) -> Mapping[str, Any]:
            return secret_values(await secrets.for_blueprint(blueprint, names))

        return Effects(applets, actions, http, spawn, blueprint_secrets)

    return effects


class StoreHost:
    """The host of one run in a worker: the journal in the store, listeners' events from their
    store inboxes, long waits and missing events as :class:`Suspended`."""

    def __init__(
        self,
        run: RunRecord,
        journal: list[dict[str, Any]],
        store: Store,
        broker: Broker,
        effects: Effects,
        programs: Blueprints,
    ) -> None:
        self.run_id = run.id
        self.run = run
        self.store = store
        self.broker = broker
        self.effects = effects
        self.programs = programs
        self.steps = {d["key"]: StepRecord.from_dict(d) for d in journal}
        self.asked: dict[str, int] = {}  # listener key -> the event index it waits for

    def recorded(self, key: str) -> StepRecord | None:
        return self.steps.get(key)

    async def checkpoint(self, record: StepRecord, emit: Sequence[Mapping[str, Any]] = ()) -> None:
        events = [dict(e) for e in emit]
        await self.store.checkpoint_step(self.run_id, record.to_dict(), emit=events)
        self.steps[record.key] = record
        if record.status.done:
            reached(CrashPoint.RUN_STEP_RECORDED)
        if events:
            await self.broker.publish_many([emitted_message(e) for e in events])
            await self.store.drop_outbox([str(e["id"]) for e in events])

    def now(self) -> float:
        return time.time()

    async def sleep_until(self, when: float) -> None:
        delay = when - time.time()
        if delay > SHORT_WAIT:
            raise Suspended(wake_at=when)
        if delay > 0:
            await asyncio.sleep(delay)

    async def call_applet(self, name: str, data: Any, *, key: str) -> Any:
        output = await self.effects.applets(name, data, key)
        reached(CrashPoint.RUN_STEP_RETURNED)
        return output

    async def call_action(self, name: str, data: Any, *, key: str) -> Any:
        output = await self.effects.actions(name, data)
        reached(CrashPoint.RUN_STEP_RETURNED)
        return output

    async def send_http(self, request: HttpRequest) -> HttpResponse:
        return await self.effects.http(request)

    async def run_process(self, spec: ProcessSpec) -> ProcessResult:
        return await self.effects.processes(spec)

    async def listen(self, listener: Listener) -> None:
        step = self.steps[listener.key].to_dict()  # the engine marks a listen step first
        rows = listener_rows(self.run_id, listener, time.time())
        await self.store.checkpoint_step(self.run_id, step, listen=rows)

    async def receive(self, key: str, index: int) -> Mapping[str, Any]:
        events = await self.store.inbox(self.run_id, key, index)
        if events:
            return events[0]
        self.asked[key] = index
        raise Suspended(listeners=[key])

    async def unlisten(self, key: str) -> None:
        step = self.steps.get(key)
        if step is not None:
            await self.store.checkpoint_step(self.run_id, step.to_dict(), unlisten=key)

    def subflow(self, namespace: str, name: str, version: str) -> Program:
        return self.programs.find(namespace, name, version)

    async def secrets(self, names: Sequence[str]) -> Mapping[str, Any]:
        if not names:
            return {}
        try:
            return await self.effects.secrets(self.run.name, names)
        except Exception as exc:
            raise raise_error(
                ErrorKind.AUTHORIZATION,
                f"a secret of use.secrets cannot be read: {exc}",
                instance="/use/secrets",
            ) from exc


class Blueprints:
    """The project's blueprints, compiled once: what starts a run, and a run's program."""

    def __init__(self, blueprints: Sequence[Blueprint]) -> None:
        self.blueprints = list(blueprints)
        self._programs: dict[str, Program] = {}
        for b in self.blueprints:
            self._programs[b.digest] = Program(b.definition)
        self.starters = [
            b for b in self.blueprints if (b.definition.get("schedule") or {}).get("on")
        ]
        self.scheduled = [  # started by time: every, cron, after
            b
            for b in self.blueprints
            if {"every", "cron", "after"} & set(b.definition.get("schedule") or {})
        ]

    def program(self, run: RunRecord) -> Program:
        """The program a run is pinned to (its own definition, whatever the files say now)."""
        found = self._programs.get(run.digest)
        if found is None:
            found = self._programs[run.digest] = Program(run.definition)
        return found

    def find(self, namespace: str, name: str, version: str) -> Program:
        return self._programs[pick_version(self.blueprints, namespace, name, version).digest]

    def started_by(self, event: Mapping[str, Any]) -> list[Blueprint]:
        """The blueprints whose ``schedule.on`` the event matches (its first event starts a
        run: ``one``, or any filter of ``any``)."""
        found = []
        for blueprint in self.starters:
            strategy = blueprint.definition["schedule"]["on"]
            program = self._programs[blueprint.digest]

            def evaluate(expression: str, data: Any, program: Program = program) -> Any:
                return program.expression(expression).evaluate(data, {})

            if Consumption(strategy, evaluate).offer(event, lambda: False):
                found.append(blueprint)
        return found


class RunDriver:
    def __init__(
        self,
        store: Store,
        broker: Broker,
        blueprints: Blueprints,
        effects: Callable[[RunRecord], Effects],
        *,
        instance: str,
        runtime_version: str = "",
    ) -> None:
        self.store = store
        self.broker = broker
        self.blueprints = blueprints
        self.effects = effects
        self.instance = instance
        self.runtime_version = runtime_version
        self.consumer = broker.consumer(m.JOBS)
        # the runs this worker has in hand: the store's lease keeps other workers off a run,
        # but this worker holds that lease, so two messages of one run (its redelivered
        # message and a timer's, say) would both get it here
        self._in_hand: set[str] = set()

    # -- starting and waking runs ---------------------------------------------------------
    async def start(self, blueprint: Blueprint, input: Any, *, trigger: str, run_id: str) -> str:
        """Create the run ``run_id`` (once: an id already stored is left as it is) and send it
        off; the id names what started it, so a cause redelivered starts no second run."""
        now = time.time()
        run = RunRecord(
            id=run_id,
            namespace=blueprint.namespace,
            name=blueprint.name,
            version=blueprint.version,
            digest=blueprint.digest,
            definition=blueprint.definition,
            status=RunStatus.PENDING,
            input=input,
            started_at=now,
            updated_at=now,
            trigger=trigger,
        )
        await self.store.create_run(run)
        await self.broker.publish_many([run_message(run.id, "start")])
        return run.id

    async def on_batch(self, batch: Sequence[Message]) -> None:
        """A batch of event messages the dispatcher recorded (see :meth:`on_events`)."""
        await self.on_events(event_documents(batch))

    async def on_events(self, events: Sequence[tuple[str, CloudEvent]]) -> None:
        """Events the dispatcher recorded, with their source names: start the runs they
        trigger, deliver them to the listeners that may want them, and wake those runs."""
        messages: list[OutboundMessage] = []
        documents = [(source, event, event.to_dict()) for source, event in events]
        for source, event, doc in documents:
            for blueprint in self.blueprints.started_by(doc):
                run_id = f"{source}:{event.id}:{blueprint.namespace}/{blueprint.name}"
                await self.start(blueprint, [doc], trigger=f"{source}:{event.id}", run_id=run_id)
        types = sorted({doc["type"] for _, _, doc in documents})
        rows = await self.store.listeners_for(types) if types else []
        deliveries: list[tuple[str, str, dict[str, Any]]] = []
        woken: dict[str, str] = {}
        for _, _, doc in documents:
            # a listener's rows have distinct types (or are its one row for every type), and
            # the store skips an event a listener has: each listener gets each event once
            for row in rows:
                if row.event_type not in (None, doc["type"]):
                    continue
                if candidate(row, doc):
                    deliveries.append((row.run_id, row.key, doc))
                    woken[row.run_id] = f"event:{doc['source']}:{doc['id']}"
        if deliveries:
            await self.store.deliver(deliveries)
        # every run a listener took an event for is woken, new or not: a crash between the
        # delivery and this publish is made good by the event's redelivery
        messages.extend(run_message(run_id, reason) for run_id, reason in woken.items())
        if messages:
            await self.broker.publish_many(messages)

    # -- one run message ------------------------------------------------------------------
    async def handle(self, message: Message) -> None:
        run_id = message.headers.get(m.H_RUN, "")
        lease = f"run:{run_id}"
        try:
            run = await self.store.get_run(run_id)
        except NotFound:
            log.warning("a message for an unknown run is dropped")  # run_id: bound by the worker
            await self.consumer.ack(message)
            return
        if run.status.final or run.status == RunStatus.SUSPENDED:
            await self.consumer.ack(message)
            return
        if run_id in self._in_hand:
            await self.consumer.nak(message, LEASE_TTL / 5)  # this worker runs it now
            return
        self._in_hand.add(run_id)
        try:
            if not await self.store.claim_lease(lease, self.instance, LEASE_TTL):
                await self.consumer.nak(message, LEASE_TTL / 5)  # another worker runs it now
                return
            try:
                await self._advance(run, message, lease)
            finally:
                with contextlib.suppress(Exception):
                    await self.store.release_lease(lease, self.instance)
        finally:
            self._in_hand.discard(run_id)
        await self.consumer.ack(message)

    async def _keep(
        self, lease: str, message: Message, run_id: str, work: asyncio.Future[Any]
    ) -> None:
        """Renew the run's lease and the message's while ``work`` runs it; cancel ``work`` if
        the run is cancelled or suspended meanwhile."""
        while not work.done():
            await asyncio.sleep(LEASE_TTL / 3)
            with contextlib.suppress(Exception):
                await self.store.claim_lease(lease, self.instance, LEASE_TTL)
                await self.consumer.in_progress(message)
                run = await self.store.get_run(run_id)
                if run.status in (RunStatus.CANCELLED, RunStatus.SUSPENDED):
                    work.cancel()

    async def _advance(self, run: RunRecord, message: Message, lease: str) -> None:
        took = await self.store.update_run(
            run.id,
            status=RunStatus.RUNNING,
            expect={RunStatus.PENDING, RunStatus.WAITING, RunStatus.RUNNING},
            resumed=run.status == RunStatus.WAITING,
        )
        if not took:
            return
        reached(CrashPoint.RUN_TAKEN)
        journal = await self.store.steps(run.id)
        host = StoreHost(run, journal, self.store, self.broker, self.effects(run), self.blueprints)
        program = self.blueprints.program(run)
        try:
            secrets = await host.secrets(program.secret_names)
            engine = Run(
                program,
                host,
                input=run.input,
                started_at=run.started_at,
                runtime_version=self.runtime_version,
                secrets=secrets,
            )
            work = asyncio.ensure_future(engine.execute())
            keeper = asyncio.ensure_future(self._keep(lease, message, run.id, work))
            try:
                output = await work
            finally:
                keeper.cancel()
        except BlueprintError as error:
            await self._end(run, RunStatus.FAULTED, error=error.to_dict())
            log.info("run faulted", error=str(error))  # run_id: bound by the worker
        except Suspended as suspended:
            await self.store.update_run(
                run.id,
                status=RunStatus.WAITING,
                wake_at=suspended.wake_at,
                expect={RunStatus.RUNNING},
            )
            reached(CrashPoint.RUN_WAITING)
            await self._recheck(run.id, host)
        except asyncio.CancelledError:
            if not await self._stopped(run.id):
                raise
        else:
            await self._end(run, RunStatus.COMPLETED, output=output)
            log.info("run completed")

    async def _end(self, run: RunRecord, status: RunStatus, **fields: Any) -> None:
        await self.store.update_run(run.id, status=status, expect={RunStatus.RUNNING}, **fields)
        reached(CrashPoint.RUN_ENDED)
        after = (run.definition.get("schedule") or {}).get("after")
        if after is not None:  # ``schedule.after``: the next run, that long after this one
            await self._next(run, parse_duration(after))

    async def _next(self, run: RunRecord, delay: float) -> None:
        now = time.time()
        label = f"{run.namespace}/{run.name}"
        digest = hashlib.sha256(run.id.encode()).hexdigest()[:16]
        await self.store.create_run(
            RunRecord(
                id=f"schedule:{label}:after:{digest}",
                namespace=run.namespace,
                name=run.name,
                version=run.version,
                digest=run.digest,
                definition=run.definition,
                status=RunStatus.WAITING,
                input={},
                started_at=now,
                updated_at=now,
                wake_at=now + delay,
                trigger=f"after:{run.id}",
            )
        )

    async def _stopped(self, run_id: str) -> bool:
        """Whether the run was cancelled or suspended (and its task cancelled for that)."""
        run = await self.store.get_run(run_id)
        return run.status in (RunStatus.CANCELLED, RunStatus.SUSPENDED)

    async def _recheck(self, run_id: str, host: StoreHost) -> None:
        """An event that reached a listener between the run's look at its inbox and its
        ``waiting``: wake the run for it now."""
        for key, index in host.asked.items():
            if await self.store.inbox(run_id, key, index):
                await self.broker.publish_many([run_message(run_id, f"recheck:{uuid.uuid4()}")])
                return


class RunTimers:
    """Every ``every`` seconds, by one replica at a time (a store lease): wake the runs whose
    timer is due, start the runs of ``schedule.every`` / ``schedule.cron`` blueprints whose slot
    has come (and the first of a ``schedule.after`` one), and publish what a crash left in the
    outbox.

    A scheduled run's id is its blueprint and its slot, so a slot starts one run whatever the
    replicas do; after downtime only the latest missed slot runs (once)."""

    LEASE = "blueprint-timers"

    def __init__(
        self,
        store: Store,
        broker: Broker,
        driver: RunDriver,
        *,
        instance: str,
        every: float = 1.0,
    ) -> None:
        self.store = store
        self.broker = broker
        self.driver = driver
        self.instance = instance
        self.every = every

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as exc:
                log.warning("blueprint timers failed; trying again", error=str(exc))
            await asyncio.sleep(self.every)

    async def tick(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        if not await self.store.claim_lease(self.LEASE, self.instance, 10 * self.every + 5):
            return 0
        due = await self.store.due_runs(now)
        messages = []
        for run_id in due:
            run = await self.store.get_run(run_id)
            messages.append(run_message(run_id, f"wake:{run.wake_at}:{run.resumes}"))
        outbox = await self.store.take_outbox()
        messages.extend(emitted_message(event) for event in outbox)
        if messages:
            await self.broker.publish_many(messages)
        if outbox:
            await self.store.drop_outbox([str(e["id"]) for e in outbox])
        await self.schedule(now)
        return len(due)

    async def schedule(self, now: float) -> None:
        for blueprint in self.driver.blueprints.scheduled:
            spec = blueprint.definition["schedule"]
            label = f"{blueprint.namespace}/{blueprint.name}"
            if "after" in spec:
                ran = await self.store.list_runs(
                    name=blueprint.name, namespace=blueprint.namespace, limit=1
                )
                if not ran:
                    await self.driver.start(
                        blueprint, {}, trigger="schedule", run_id=f"schedule:{label}:first"
                    )
                continue
            slot = latest_slot(spec, now)
            if slot is not None:
                run_id = f"schedule:{label}:{int(slot)}"
                await self.driver.start(blueprint, {}, trigger="schedule", run_id=run_id)


def latest_slot(schedule: Mapping[str, Any], now: float) -> float | None:
    """The latest time at or before ``now`` that ``schedule.every`` or ``schedule.cron``
    names (``every`` counts from the epoch, so replicas agree)."""
    if "every" in schedule:
        step = parse_duration(schedule["every"])
        return math.floor(now / step) * step if step > 0 else None
    if "cron" in schedule:
        moment = datetime.fromtimestamp(now, UTC)
        return float(croniter(str(schedule["cron"]), moment).get_prev(float))
    return None


def event_documents(batch: Sequence[Message]) -> list[tuple[str, CloudEvent]]:
    """The events of a dispatched batch, with their sources (unreadable ones left out)."""
    found = []
    for message in batch:
        with contextlib.suppress(Exception):
            found.append((message.headers[m.H_SOURCE], m.event_of(message)))
    return found


# -- operators' controls (``ghapplets runs``) ---------------------------------------------------
ACTIVE = frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING})


async def cancel_run(store: Store, run_id: str) -> bool:
    """Cancel a run that has not ended (a worker running it stops within seconds)."""
    await store.get_run(run_id)  # NotFound
    return await store.update_run(
        run_id, status=RunStatus.CANCELLED, expect=ACTIVE | {RunStatus.SUSPENDED}
    )


async def suspend_run(store: Store, run_id: str) -> bool:
    """Hold a run where it is: no worker takes it up until it is resumed (events for its
    listeners are kept for then)."""
    await store.get_run(run_id)
    return await store.update_run(run_id, status=RunStatus.SUSPENDED, expect=ACTIVE)


async def resume_run(store: Store, broker: Broker, run_id: str) -> bool:
    """Let a suspended run go on now."""
    await store.get_run(run_id)
    resumed = await store.update_run(
        run_id, status=RunStatus.WAITING, wake_at=time.time(), expect={RunStatus.SUSPENDED}
    )
    if resumed:
        await broker.publish_many([run_message(run_id, f"resume:{uuid.uuid4()}")])
    return resumed


async def rerun(store: Store, broker: Broker, run_id: str, task: str) -> str:
    """A new run of the same definition and input that starts at ``task`` (a task's name or
    reference): the steps the old run recorded before that task's first step are copied into
    its journal, so they replay instead of running. Its id."""
    old = await store.get_run(run_id)
    steps = await store.steps(run_id)
    first = next((i for i, s in enumerate(steps) if task in (s["name"], s["reference"])), None)
    if first is None:
        names = ", ".join(dict.fromkeys(s["name"] for s in steps)) or "none"
        raise NotFound(f"run {run_id} ran no task {task!r} (it ran: {names})")
    now = time.time()
    new = RunRecord(
        id=str(uuid.uuid4()),
        namespace=old.namespace,
        name=old.name,
        version=old.version,
        digest=old.digest,
        definition=old.definition,
        status=RunStatus.PENDING,
        input=old.input,
        started_at=now,
        updated_at=now,
        trigger=f"rerun:{run_id}",
    )
    await store.create_run(new)
    for step in steps[:first]:
        await store.checkpoint_step(new.id, step)
    await broker.publish_many([run_message(new.id, "start")])
    return new.id
