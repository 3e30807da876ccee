"""Workers: run each job's applet with a per-applet concurrency limit, then ack, retry or bury.

A job message is fetched from the ``jobs`` stream and run by its applet's runtime. Success acks
it; a retryable error naks it with an exponential, jittered delay until the applet's
``max_attempts``; then (or at once, for a permanent error) it is terminated and recorded as a
dead letter. Every attempt is recorded in the store. :meth:`Worker.drain` stops fetching and
waits for the jobs in flight, for a graceful SIGTERM.

A job waits for a slot of its applet (``spec.concurrency``) as long as the slots are busy, but
not while they are held by calls past their timeout that cannot be stopped (a stuck sync
handler): after ``spec.timeout`` it gives up with a retryable ``Timeout`` and goes back to the
queue with its backoff, so a stuck applet's jobs do not pile up in the worker.

A fetched job is leased (JetStream's AckWait): unless it is settled or extended in time, the
broker delivers it again. Jobs can run, or wait for their applet's concurrency slot, longer than
that, so every ``lease_refresh`` seconds the worker extends the lease of each job it holds
(``Consumer.in_progress``), until the job is settled or the worker has drained.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from ghapplets.applets.model import AppletSpec
from ghapplets.applets.result import AppletOutcome
from ghapplets.applets.runtime import Invocation, Runtime
from ghapplets.broker.base import Broker, Message
from ghapplets.connectors.clients import AppletClients
from ghapplets.crashpoints import CrashPoint, reached
from ghapplets.dispatch import messages as m
from ghapplets.dispatch.bodies import BodyCache
from ghapplets.dispatch.retry import backoff_delay, should_retry
from ghapplets.exceptions import (
    AppletStalled,
    ErrorType,
    NotFound,
    SecretBackendError,
    SecretKeyError,
    SecretKeyMismatch,
    SecretScopeError,
    UnresolvedReference,
)
from ghapplets.logging import bind_delivery, get_logger
from ghapplets.metrics import UNKNOWN, Metrics
from ghapplets.store.base import HistoryStore
from ghapplets.store.records import AttemptOutcome, AttemptRecord, JobStatus, JobUpdate

if TYPE_CHECKING:
    from ghapplets.connectors.endpoint import ActionEndpoint
    from ghapplets.connectors.registry import Connectors
    from ghapplets.dispatch.runs import RunDriver
    from ghapplets.events.cloudevent import CloudEvent
    from ghapplets.sdk.context import ActionCaller

log = get_logger("ghapplets.worker")
# (applet, declared names) -> values: only the global secrets and those of the applet's scope
SecretsFor = Callable[[str, Sequence[str]], Awaitable[Mapping[str, str]]]


async def _no_secrets(applet: str, names: Sequence[str]) -> Mapping[str, str]:
    return {}


class Worker:
    def __init__(
        self,
        broker: Broker,
        store: HistoryStore,
        runtimes: Mapping[str, Runtime],
        *,
        metrics: Metrics | None = None,
        secrets_for: SecretsFor = _no_secrets,
        max_inflight: int = 256,
        lease_refresh: float = 10.0,
        bodies: BodyCache | None = None,
        connectors: Connectors | None = None,
        endpoint: ActionEndpoint | None = None,
        runs: RunDriver | None = None,
    ) -> None:
        """``lease_refresh`` must be well below the broker's ack wait (a third of it, say)."""
        self.bodies = bodies or BodyCache(store)
        self.broker = broker
        self.store = store
        self.runtimes = dict(runtimes)
        self.metrics = metrics
        self.secrets_for = secrets_for
        self.max_inflight = max_inflight
        self.lease_refresh = lease_refresh
        self.connectors = connectors
        self.endpoint = endpoint  # exec and HTTP applets' way to the connectors
        self.runs = runs  # blueprint runs, whose messages share the jobs stream
        self.consumer = broker.consumer(m.JOBS)
        self._tasks: dict[asyncio.Task[None], Message] = {}
        self._keeper: asyncio.Task[None] | None = None
        self._room = asyncio.Event()
        self._room.set()
        self._stopping = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()

    # -- the fetch loop ----------------------------------------------------------------------
    def _actions_for(self, spec: AppletSpec, event: CloudEvent) -> ActionCaller | None:
        """What ``ctx.action`` calls for ``spec``'s job on ``event``."""
        if self.connectors is None:
            return None
        return self.connectors.caller(spec.connectors, event)

    def _clients_for(self, spec: AppletSpec, event: CloudEvent) -> AppletClients | None:
        """What ``ctx.github``, ``ctx.jira``... give ``spec``'s job on ``event``: the clients
        of its ``connectors:`` only, a GitHub client acting as the event's App installation."""
        if self.connectors is None:
            return None
        return self.connectors.clients(spec.connectors, event)

    async def run(self) -> None:
        if self._keeper is None:
            self._keeper = asyncio.create_task(self._keep_leases(), name="worker-leases")
        try:
            while not self._stopping.is_set():
                free = self.max_inflight - len(self._tasks)
                if free <= 0:
                    self._room.clear()
                    await self._room.wait()
                    continue
                batch = await self.consumer.next_batch(free, timeout=0.5)
                if batch:
                    reached(CrashPoint.WORKER_FETCHED)
                await self._prefetch_bodies(batch)
                for message in batch:
                    task = asyncio.create_task(self._handle(message))
                    self._tasks[task] = message
                    task.add_done_callback(self._done)
        except asyncio.CancelledError:
            self._stop_keeping()
            raise

    async def _prefetch_bodies(self, batch: Sequence[Message]) -> None:
        if len(batch) < 2:
            return
        keys = [
            (msg.headers.get(m.H_SOURCE, ""), msg.headers.get(m.H_DELIVERY, "")) for msg in batch
        ]
        try:
            await self.bodies.prefetch(keys)
        except Exception as exc:  # each job reads its own body then, or is redelivered
            log.warning("could not read the bodies of a batch", jobs=len(batch), error=str(exc))

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        self._room.set()

    async def _keep_leases(self) -> None:
        """Extend the leases of the jobs in flight, so none is delivered again meanwhile."""
        while True:
            await asyncio.sleep(self.lease_refresh)
            held = list(self._tasks.values())
            results = await asyncio.gather(
                *(self.consumer.in_progress(message) for message in held), return_exceptions=True
            )
            failed = [r for r in results if isinstance(r, Exception)]
            if failed:
                log.warning("job leases not extended", jobs=len(failed), error=str(failed[0]))

    def _stop_keeping(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            self._keeper = None

    async def drain(self, timeout: float) -> int:
        """Stop fetching and wait up to ``timeout`` s for jobs in flight; return those left."""
        self._stopping.set()
        self._room.set()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        if self._background:
            await asyncio.wait(set(self._background), timeout=5)
        self._stop_keeping()
        return len(self._tasks)

    @property
    def inflight(self) -> int:
        return len(self._tasks)

    # -- one job -----------------------------------------------------------------------------
    async def _handle(self, message: Message) -> None:
        headers = message.headers
        if m.H_RUN in headers:
            await self._handle_run(message)
            return
        applet = headers.get(m.H_APPLET, "")
        job_id = headers.get(m.H_JOB_ID, message.msg_id)
        delivery_id = headers.get(m.H_DELIVERY, "")
        with bind_delivery(delivery_id, applet=applet, job_id=job_id):
            try:
                await self._run(message, applet, job_id, delivery_id)
            except Exception as exc:  # infrastructure failure: leave it for redelivery
                log.error("job handling failed; it will be redelivered", error=str(exc))
                try:
                    await self.consumer.nak(message, 5.0)
                except Exception as nak_exc:
                    log.error("could not nak job", error=str(nak_exc))

    async def _handle_run(self, message: Message) -> None:
        run_id = message.headers[m.H_RUN]
        with bind_delivery(run_id, run_id=run_id):
            if self.runs is None:
                log.error("a blueprint run message reached a worker without blueprints")
                await self.consumer.nak(message, 5.0)
                return
            try:
                await self.runs.handle(message)
            except Exception as exc:  # infrastructure failure: leave it for redelivery
                log.error("run handling failed; it will be redelivered", error=str(exc))
                try:
                    await self.consumer.nak(message, 5.0)
                except Exception as nak_exc:
                    log.error("could not nak run message", error=str(nak_exc))

    async def _run(self, message: Message, applet: str, job_id: str, delivery_id: str) -> None:
        if message.delivered > 1 and await self._finished_before(job_id):
            # its outcome was recorded, but the ack was lost (a crash, a lease that ran out)
            log.info("job already finished; its message is settled without running it again")
            await self.consumer.ack(message)
            return
        runtime = self.runtimes.get(applet)
        offset = int(message.headers.get(m.H_ATTEMPT_OFFSET, "0"))
        number = offset + message.delivered
        if runtime is None:
            await self._finish(
                message,
                job_id,
                AttemptRecord(
                    job_id,
                    number,
                    time.time(),
                    time.time(),
                    AttemptOutcome.PERMANENT,
                    ErrorType.APPLET_NOT_FOUND,
                    f"no applet named {applet!r} is installed",
                ),
                JobStatus.DEAD,
                None,
            )
            return
        spec = runtime.spec
        try:
            body = await self.bodies.get(message.headers.get(m.H_SOURCE, ""), delivery_id)
        except NotFound:  # a store replaced by a restore (--force) has no such event: nothing
            # could ever run the job, and putting it back would bring it back forever
            log.error("job dropped: its delivery is not in the store")
            await self.consumer.term(message, "its delivery is not in the store")
            return
        try:
            async with runtime.admitted():  # the applet's concurrency limit
                started = time.time()
                if self.metrics is not None and message.delivered == 1 and offset == 0:
                    received = float(message.headers.get(m.H_RECEIVED_AT, started))
                    self.metrics.job_start_latency.observe(max(0.0, started - received))
                self._background_task(self.store.job_started(job_id, number, started))
                reached(CrashPoint.WORKER_CLAIMED)
                event = m.event_of(message, body=body)
                try:
                    secrets = (
                        await self.secrets_for(spec.name, spec.secrets) if spec.secrets else {}
                    )
                except (
                    NotFound,
                    SecretKeyError,
                    SecretScopeError,
                    SecretBackendError,
                    UnresolvedReference,
                ) as exc:
                    # retrying will not conjure a secret up, nor change its scope; but a key
                    # rotated elsewhere is there once this process has the new key, and a
                    # secrets backend that cannot answer (or refuses this process's token)
                    # may answer after a while, or a fix
                    detail = exc.args[0] if exc.args else exc
                    outcome = AppletOutcome.failure(
                        ErrorType.SECRET_UNAVAILABLE,
                        f"a declared secret cannot be read: {detail}",
                        retryable=isinstance(exc, SecretKeyMismatch | SecretBackendError),
                    )
                else:
                    actions = self._actions_for(spec, event)
                    endpoint = self.endpoint if spec.connectors and actions else None
                    grant = endpoint.grant(actions) if endpoint and actions else None
                    try:
                        outcome = await runtime.invoke_admitted(
                            Invocation(
                                event=event,
                                job_id=job_id,
                                attempt=number,
                                delivery_id=delivery_id,
                                secrets=secrets,
                                actions=actions,
                                clients=self._clients_for(spec, event),
                                action_grant=grant,
                            )
                        )
                    finally:
                        if endpoint and grant:
                            endpoint.revoke(grant)
                finished = time.time()
        except AppletStalled as exc:  # its slots are kept by stuck calls: back to the queue
            started = finished = time.time()
            outcome = AppletOutcome.from_error(exc)
        reached(CrashPoint.WORKER_APPLET_RETURNED)
        if self.metrics is not None:
            self.metrics.job_duration.labels(applet, self._label(outcome)).observe(
                finished - started
            )
        await self._settle(message, spec, job_id, number, started, finished, outcome)

    async def _finished_before(self, job_id: str) -> bool:
        try:
            return (await self.store.get_job(job_id)).status.final
        except NotFound:
            return False

    @staticmethod
    def _label(outcome: AppletOutcome) -> AttemptOutcome:
        if outcome.ok:
            return AttemptOutcome.OK
        return AttemptOutcome.RETRYABLE if outcome.retryable else AttemptOutcome.PERMANENT

    async def _settle(
        self,
        message: Message,
        spec: AppletSpec,
        job_id: str,
        number: int,
        started: float,
        finished: float,
        outcome: AppletOutcome,
    ) -> None:
        record = AttemptRecord(
            job_id,
            number,
            started,
            finished,
            self._label(outcome),
            outcome.error_type,
            outcome.error_message,
            outcome.logs[-50:],
        )
        if outcome.ok:
            await self._finish(message, job_id, record, JobStatus.SUCCEEDED, outcome.result)
            log.debug("job succeeded", attempt=number, ms=round((finished - started) * 1000, 2))
            return
        if should_retry(spec.retry, message.delivered, outcome.retryable):
            delay = backoff_delay(spec.retry, message.delivered, retry_after=outcome.retry_after)
            await self.store.job_finished(
                JobUpdate(job_id, JobStatus.RETRYING, record, next_attempt_at=finished + delay)
            )
            reached(CrashPoint.RETRY_SCHEDULED)
            await self.consumer.nak(message, delay)
            if self.metrics is not None:
                self.metrics.retries.labels(spec.name).inc()
            log.warning(
                "job failed, will retry",
                attempt=number,
                retry_in=round(delay, 3),
                error_type=outcome.error_type,
                error=outcome.error_message,
            )
            return
        await self._finish(message, job_id, record, JobStatus.DEAD, None)
        log.error(
            "job dead-lettered",
            attempt=number,
            error_type=outcome.error_type,
            error=outcome.error_message,
        )

    async def _finish(
        self,
        message: Message,
        job_id: str,
        record: AttemptRecord,
        status: JobStatus,
        result: object,
    ) -> None:
        dead = status == JobStatus.DEAD
        reason = f"{record.error_type}: {record.error_message}" if dead else None
        await self.store.job_finished(
            JobUpdate(job_id, status, record, result=result, dead_reason=reason)
        )
        reached(CrashPoint.DEAD_LETTERED if dead else CrashPoint.WORKER_RESULT_RECORDED)
        if reason is not None:
            await self.consumer.term(message, reason)  # the reason reaches JetStream's advisory
            if self.metrics is not None:
                applet = message.headers.get(m.H_APPLET)
                self.metrics.dead_letters.labels(
                    applet if applet in self.runtimes else UNKNOWN
                ).inc()
        else:
            await self.consumer.ack(message)
            reached(CrashPoint.WORKER_ACKNOWLEDGED)

    def _background_task(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
