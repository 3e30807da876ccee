"""The runtime interface every applet runtime implements, and what they share.

This module owns :class:`Invocation` (one attempt of one job), the :class:`Runtime` base class
(timeout, concurrency limit, mapping of exceptions to an :class:`AppletOutcome`, capped log
capture, redaction of secret values from every outcome), the applet's :class:`Slots`, the
result-document rules shared by the ``exec`` and ``http`` runtimes, and :func:`build_runtime`,
which picks the runtime for an
:class:`AppletSpec`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, MutableMapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from ghapplets.applets.model import AppletSpec
from ghapplets.applets.result import AppletOutcome
from ghapplets.events.cloudevent import CloudEvent
from ghapplets.exceptions import AppletError, AppletStalled, ErrorType
from ghapplets.logging import Redactor, get_logger, register_secret
from ghapplets.sdk.context import ActionCaller, ConnectorClients

if TYPE_CHECKING:
    import httpx

    from ghapplets.connectors.endpoint import Grant
    from ghapplets.metrics import Metrics

MAX_LOG_LINES = 200
MAX_LOG_LINE_CHARS = 2000
_LOG_KEYS_HIDDEN = frozenset({"event", "delivery_id", "applet", "job_id", "attempt", "timestamp"})


@dataclass(slots=True)
class Invocation:
    """One attempt of one job: the event, the job id (also the idempotency key), the attempt
    number (1-based), the delivery id (correlation id) and the values of the secrets the applet
    declared (undeclared entries are ignored by every runtime; all of them are redacted from
    the outcome)."""

    event: CloudEvent
    job_id: str
    attempt: int = 1
    delivery_id: str = ""
    secrets: Mapping[str, str] = field(default_factory=dict)
    actions: ActionCaller | None = None  # runs a catalog action for this applet
    clients: ConnectorClients | None = None  # its connectors' clients (ctx.github, ...)
    # the local action endpoint's URL and this job's token, for an exec or HTTP applet
    action_grant: Grant | None = None

    @property
    def idempotency_key(self) -> str:
        return self.job_id


class LogSink:
    """The log lines of one invocation returned in ``AppletOutcome.logs``: the last
    :data:`MAX_LOG_LINES` lines, each cut at :data:`MAX_LOG_LINE_CHARS`. They are raw here;
    :meth:`Runtime.invoke_admitted` redacts the outcome they end up in."""

    def __init__(self, max_lines: int = MAX_LOG_LINES) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=max_lines)
        self._dropped = 0

    def append(self, line: str) -> None:
        if len(self._lines) == self._lines.maxlen:
            self._dropped += 1
        if len(line) > MAX_LOG_LINE_CHARS:
            line = line[:MAX_LOG_LINE_CHARS] + "...[cut]"
        self._lines.append(line)

    def tail(self, n: int) -> list[str]:
        return list(self._lines)[-n:]

    def lines(self) -> list[str]:
        out = list(self._lines)
        if self._dropped:
            out.insert(0, f"[{self._dropped} earlier log lines dropped]")
        return out


def declared_secrets(spec: AppletSpec, inv: Invocation) -> dict[str, str]:
    """The secrets of ``inv`` that ``spec`` declares (and that have a value)."""
    return {name: inv.secrets[name] for name in spec.secrets if name in inv.secrets}


def applet_logger(spec: AppletSpec, inv: Invocation, sink: LogSink | None = None) -> Any:
    """A structlog logger bound to the delivery id, applet and job id. With ``sink``, every
    line it emits is also captured (as ``level: message key=value``) for the outcome."""
    bound: dict[str, Any] = {
        "delivery_id": inv.delivery_id,
        "applet": spec.name,
        "job_id": inv.job_id,
        "attempt": inv.attempt,
    }
    if sink is None:
        return get_logger("ghapplets.applet", **bound)
    cfg = structlog.get_config()

    def capture(
        _logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        extras = " ".join(f"{k}={v!r}" for k, v in event_dict.items() if k not in _LOG_KEYS_HIDDEN)
        message = f"{method}: {event_dict.get('event', '')}"
        sink.append(f"{message} {extras}" if extras else message)
        return event_dict

    return structlog.wrap_logger(
        None,
        processors=[capture, *cfg["processors"]],
        wrapper_class=cfg["wrapper_class"],
        context_class=cfg["context_class"],
        **bound,
    )


def result_from_document(doc: Any, logs: list[str] | None = None) -> AppletOutcome:
    """Apply the result contract to a JSON document an applet produced.

    ``{"ok": false, "error": {"type", "message", "retryable", "retry_after"?}}`` is an error;
    ``{"ok": true, "result": X}`` (exactly those two keys) is the envelope of result ``X``;
    anything else is the result itself.
    """
    if isinstance(doc, dict) and doc.get("ok") is False and isinstance(doc.get("error"), dict):
        err = doc["error"]
        retry_after = err.get("retry_after")
        return AppletOutcome.failure(
            str(err.get("type") or ErrorType.APPLET_ERROR),
            str(err.get("message") or "the applet reported an error"),
            retryable=bool(err.get("retryable", False)),
            retry_after=float(retry_after) if isinstance(retry_after, int | float) else None,
            logs=logs,
        )
    if isinstance(doc, dict) and doc.get("ok") is True and set(doc) == {"ok", "result"}:
        return AppletOutcome.success(doc["result"], logs=logs)
    return AppletOutcome.success(doc, logs=logs)


class Slots:
    """The admission limit of one applet: ``size`` slots (``spec.concurrency``).

    A call holds a slot while it runs. A call that outlives its timeout in work that cannot be
    stopped (a sync Python handler's thread) is *abandoned*: its caller gets a ``Timeout`` and
    lets go, but the work keeps a slot (:meth:`keep`) until it really returns (:meth:`unkeep`).
    So a stuck applet can only ever tie up its own ``size`` slots. A freed slot is handed to the
    longest waiter. A waiter waits as long as it takes while the slots are held by calls in
    progress (a busy applet queues its work), but gives up with :class:`TimeoutError` once it
    has waited ``patience`` seconds while some of them are kept by abandoned calls.

    Used from one event loop; :meth:`unkeep` too (call it through ``call_soon_threadsafe``).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.taken = 0  # held by calls, plus kept by abandoned calls
        self.kept = 0  # kept by abandoned calls whose work still runs
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def free(self) -> int:
        return max(0, self.size - self.taken)

    async def acquire(self, patience: float | None = None) -> None:
        if self.taken < self.size and not self._waiters:
            self.taken += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            while True:
                done, _ = await asyncio.wait({waiter}, timeout=patience)
                if done:
                    return  # a releasing holder passed its slot on to us
                if self.kept:
                    raise TimeoutError
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed to us as we gave up: pass it on
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        self.taken -= 1
        while self.taken < self.size and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to the longest waiter
                self.taken += 1

    def keep(self) -> None:
        """One more slot, kept by an abandoned call until :meth:`unkeep` (whose caller still
        releases its own slot as usual)."""
        self.taken += 1
        self.kept += 1

    def unkeep(self) -> None:
        self.kept -= 1
        self.release()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class Runtime(ABC):
    """Runs one applet. ``invoke`` never raises for applet failures: every error, including the
    ``spec.timeout`` (retryable ``Timeout``), becomes an :class:`AppletOutcome`. At most
    ``spec.concurrency`` invocations run at once (:class:`Slots`); the timeout starts when one
    is admitted. ``metrics`` counts abandoned calls."""

    kind: str = ""

    def __init__(self, spec: AppletSpec, *, metrics: Metrics | None = None) -> None:
        self.spec = spec
        self.metrics = metrics
        self._slots = Slots(spec.concurrency)
        self._log = get_logger("ghapplets.runtime", applet=spec.name, runtime=self.kind)

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Prepare the runtime (import code, open clients). Idempotent."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what :meth:`start` acquired. Idempotent."""

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def slot(self) -> Slots:
        """The admission limit (``spec.concurrency``)."""
        return self._slots

    @contextlib.asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """Hold one of the applet's slots. A caller that wants to act once admitted (the
        worker marks the job running) holds it and calls :meth:`invoke_admitted`. Raises
        :class:`AppletStalled` (a retryable ``Timeout``) when the applet's slots are kept by
        abandoned calls and none frees within ``spec.timeout``."""
        try:
            await self._slots.acquire(patience=self.spec.timeout)
        except TimeoutError:
            raise AppletStalled(
                f"applet {self.spec.name!r} is stalled: {self._slots.kept} of its "
                f"{self.spec.concurrency} slots are held by calls past their timeout whose "
                f"handlers have not returned, and none freed within {self.spec.timeout:g}s"
            ) from None
        try:
            yield
        finally:
            self._slots.release()

    async def invoke(self, inv: Invocation) -> AppletOutcome:
        try:
            async with self.admitted():
                return await self.invoke_admitted(inv)
        except AppletStalled as exc:
            return AppletOutcome.from_error(exc)

    async def invoke_admitted(self, inv: Invocation) -> AppletOutcome:
        """:meth:`invoke` for a caller that already holds a slot (:meth:`admitted`).

        The outcome is redacted here, for every runtime and every caller (the worker, on the way
        to the store; ``ghapplets invoke``; the test kit): each secret value handed to the
        invocation, and each registered one (webhook secrets, secrets read in this process),
        (and the job's action token) is replaced by ``***`` in the result, the error and the
        captured logs. The declared
        values are also registered, so the process's own log lines are redacted."""
        for value in declared_secrets(self.spec, inv).values():
            register_secret(value)
        sink = LogSink()
        deadline = asyncio.timeout(self.spec.timeout)
        try:
            async with deadline:
                outcome = await self._run(inv, sink)
        except TimeoutError as exc:
            if not deadline.expired():  # raised by the applet itself, not our deadline
                outcome = self._unexpected(exc, inv)
            else:
                outcome = self._timeout()
        except AppletError as exc:
            outcome = AppletOutcome.from_error(exc)
        except Exception as exc:
            outcome = self._unexpected(exc, inv)
        outcome.logs = sink.lines() + outcome.logs
        handed = [*inv.secrets.values()]
        if inv.action_grant is not None:  # an applet that prints its action token
            handed.append(inv.action_grant.token)
        return outcome.redact(Redactor(handed))

    def _abandon(self, work: Future[Any]) -> None:
        """``work``, running this applet's code in a thread that cannot be stopped, outlived
        its call: it keeps a slot until it returns, and the metric counts it."""
        loop = asyncio.get_running_loop()
        since = time.monotonic()
        self._slots.keep()
        if self.metrics is not None:
            self.metrics.abandoned_calls.labels(self.spec.name).inc()
        self._log.warning(
            "applet call abandoned: its handler is still running past the timeout and keeps "
            "a slot until it returns",
            timeout=self.spec.timeout,
            slots_kept=self._slots.kept,
        )

        def returned(_: Future[Any]) -> None:
            self._log.info(
                "abandoned applet call returned", after_s=round(time.monotonic() - since, 3)
            )
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits now
                loop.call_soon_threadsafe(self._slots.unkeep)

        work.add_done_callback(returned)

    def _timeout(self) -> AppletOutcome:
        return AppletOutcome.failure(
            ErrorType.TIMEOUT,
            f"applet {self.spec.name!r} did not finish within {self.spec.timeout:g}s",
            retryable=True,
        )

    def _unexpected(self, exc: BaseException, inv: Invocation) -> AppletOutcome:
        self._log.error(
            "applet failed", delivery_id=inv.delivery_id, job_id=inv.job_id, exc_info=exc
        )
        return AppletOutcome.failure(
            type(exc).__name__, str(exc) or type(exc).__name__, retryable=False
        )

    @abstractmethod
    async def _run(self, inv: Invocation, sink: LogSink) -> AppletOutcome:
        """Run once. May raise :class:`AppletError`; is cancelled on timeout (clean up!).
        Lines appended to ``sink`` end up in ``outcome.logs``."""


def build_runtime(
    spec: AppletSpec, *, http: httpx.AsyncClient | None = None, metrics: Metrics | None = None
) -> Runtime:
    """The runtime for ``spec``. ``http`` is a client for the ``http`` runtime and for
    ``ctx.http`` in Python applets; without it each runtime opens (and closes) its own. A
    client is used as it is, cookie jar included: never give one to several applets.
    ``metrics`` counts the applet's abandoned calls."""
    if spec.runtime == "exec":
        from ghapplets.applets.exec_runtime import ExecRuntime

        return ExecRuntime(spec, metrics=metrics)
    if spec.runtime == "http":
        from ghapplets.applets.http_runtime import HttpRuntime

        return HttpRuntime(spec, http=http, metrics=metrics)
    if spec.runtime == "python":
        from ghapplets.applets.python_runtime import PythonRuntime

        return PythonRuntime(spec, http=http, metrics=metrics)
    raise ValueError(f"applet {spec.name!r}: unknown runtime {spec.runtime!r}")


async def run_once(
    spec: AppletSpec,
    event: CloudEvent,
    *,
    job_id: str,
    secrets: Mapping[str, str] | None = None,
    attempt: int = 1,
    http: httpx.AsyncClient | None = None,
    actions: ActionCaller | None = None,
    clients: ConnectorClients | None = None,
) -> AppletOutcome:
    """Start ``spec``'s runtime, run it once on ``event``, close it: ``ghapplets invoke`` and
    the test kit's ``invoke()``, without a server. ``actions``: what ``ctx.action`` calls;
    ``clients``: what ``ctx.github``, ``ctx.jira``... give."""
    runtime = build_runtime(spec, http=http)
    await runtime.start()
    try:
        return await runtime.invoke(
            Invocation(
                event=event,
                job_id=job_id,
                attempt=attempt,
                delivery_id=event.id,
                secrets=dict(secrets or {}),
                actions=actions,
                clients=clients,
            )
        )
    finally:
        await runtime.close()
