"""The Splunk log sink: a process's own log lines, shipped to Splunk's HTTP Event Collector.

``logging.splunk_hec`` in ``ghapplets.yaml`` turns it on; every process of a node (``serve``'s
supervisor, each gateway, the worker) ships its own lines (docs/operations.md#logs-in-splunk).

- :class:`SplunkHecSink` is a structlog processor that runs after redaction
  (:mod:`ghapplets.logging`): it encodes each line as JSON and queues it with the time it was
  logged. It never waits and takes no lock (a line may be logged from a signal handler, as the
  supervisor's are): ``queue.SimpleQueue.put`` is reentrant, and when ``queue_size`` lines are
  waiting a new one is dropped and counted in a plain integer that the shipper thread adds to
  the Prometheus counter.
- A daemon thread ships them: not a task, since lines come from threads and from processes
  without an event loop, and a busy loop must not hold them back. It takes up to
  ``batch_size`` lines, or what arrived within ``flush_interval`` seconds of the first one, and
  POSTs them as HEC envelopes (``time``, ``host``, ``source``, ``sourcetype``, ``index``,
  ``event``), newline-separated, to ``<url>/services/collector/event`` with
  ``Authorization: Splunk <token>``.
- No connection, a timeout, 408, 425, 429 or a 5xx: the batch is tried again, :data:`RETRY`
  (backing off, not before HEC's ``Retry-After`` when it gives one, up to 30 s), then dropped.
  Any other answer (403 for an unknown token, 400 for an index the token may not write) drops
  it at once. Either way one warning is logged locally, and no more until the trouble changes
  or a batch gets through again. Nothing the thread logs is shipped, so a failing Splunk can
  never feed itself.
- :meth:`SplunkHecSink.close`, on a graceful stop, sends what is queued for
  :data:`CLOSE_TIMEOUT` seconds at most.

Lines shipped and dropped are counted in ``ghapplets_log_events_shipped_total`` and
``ghapplets_log_events_dropped_total{reason}`` (:class:`DropReason`).
"""

from __future__ import annotations

import json
import math
import queue
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import orjson

from ghapplets.applets.model import RetryPolicy
from ghapplets.config.models import SplunkHecConfig
from ghapplets.connectors.http import RETRYABLE_STATUSES, json_message, retry_after
from ghapplets.dispatch.retry import backoff_delay
from ghapplets.logging import get_logger, register_secret
from ghapplets.metrics import LOG_EVENTS_DROPPED, LOG_EVENTS_SHIPPED
from ghapplets.secrets.refs import resolve

RETRY = RetryPolicy(max_attempts=4, initial_delay=0.5, max_delay=30.0)
MAX_BATCH_BYTES = 512 * 1024  # a batch is cut here too, well under HEC's max_content_length
CLOSE_TIMEOUT = 5.0  # seconds a graceful stop gives the lines still queued

log = get_logger("ghapplets.logsink")


class DropReason(StrEnum):
    """Why a log line was not shipped: the ``reason`` of the dropped counter."""

    QUEUE_FULL = "queue_full"  # queue_size lines were waiting when it was logged
    UNENCODABLE = "unencodable"  # no valid JSON for it (see encode)
    REJECTED = "rejected"  # HEC refused its batch: a 4xx but 408, 425 and 429
    UNAVAILABLE = "unavailable"  # its batch failed every attempt: no answer, 408/425/429, 5xx
    SHUTDOWN = "shutdown"  # still unsent when the stop's deadline passed


@dataclass(slots=True)
class _Stop:
    """Queued by :meth:`SplunkHecSink.close`: the lines before it are sent, then the thread
    ends and sets ``done``."""

    done: threading.Event = field(default_factory=threading.Event)


def encode(event_dict: MutableMapping[str, Any]) -> bytes:
    """A log line as JSON, with ``repr`` of what JSON has no type for. What orjson refuses (an
    integer beyond 64 bits, a lone surrogate, a tuple as a key) goes through the standard
    library's encoder, which raises ``ValueError`` for a NaN or an infinity then: HEC would
    refuse the whole batch for one (orjson writes them as null)."""
    try:
        return orjson.dumps(event_dict, default=repr, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(event_dict, default=repr, skipkeys=True, allow_nan=False).encode()


class SplunkHecSink:
    """A structlog processor that queues each line, and the thread that ships them (see the
    module docstring). ``source`` is the default of ``config.source``; ``root`` the folder a
    relative ``config.verify`` is in."""

    def __init__(
        self,
        config: SplunkHecConfig,
        *,
        source: str,
        root: Path = Path("."),
        host: str | None = None,
    ) -> None:
        self.config = config
        self._root = root
        envelope: dict[str, str] = {
            "host": host or socket.gethostname(),
            "source": config.source or source,
            "sourcetype": config.sourcetype,
        }
        if config.index is not None:
            envelope["index"] = config.index
        self._head = orjson.dumps(envelope)[:-1] + b',"time":'
        self._queue: queue.SimpleQueue[tuple[float, bytes] | _Stop] = queue.SimpleQueue()
        self._client: httpx.Client | None = None
        self._thread: threading.Thread | None = None
        self._shipper: int | None = None  # the thread's id: what it logs stays local
        self._closed = False
        self._deadline = math.inf  # monotonic time at which a stop gives up
        self._stopping = threading.Event()  # cuts a pause between attempts short
        self._trouble: str | None = None  # what was last warned about, until a batch goes
        # dropped by the logging call (no lock there), added to the counter by the thread
        self._full = self._unencodable = 0
        self._counted_full = self._counted_unencodable = 0
        for reason in DropReason:
            LOG_EVENTS_DROPPED.labels(reason.value)  # every series exists from the start

    # -- the logging call ------------------------------------------------------------------
    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if self._closed or threading.get_ident() == self._shipper:
            return event_dict
        if self._queue.qsize() >= self.config.queue_size:
            self._full += 1
            return event_dict
        when = time.time()
        try:
            line = encode(event_dict)
        except ValueError:  # this line is lost, the call goes on
            self._unencodable += 1
            return event_dict
        self._queue.put((when, line))
        return event_dict

    # -- starting and stopping -------------------------------------------------------------
    async def start(self, lookup_secret: Callable[[str], Awaitable[str]]) -> None:
        """Resolve the token (an unknown reference raises
        :class:`~ghapplets.exceptions.UnresolvedReference`), register it for redaction, and
        start shipping, lines queued since the sink was configured first. Later calls do
        nothing."""
        if self._thread is not None or self._closed:
            return
        token = await resolve(self.config.token, lookup_secret)
        register_secret(token)
        self._client = httpx.Client(
            headers={"Authorization": f"Splunk {token}", "Content-Type": "application/json"},
            timeout=self.config.timeout,
            verify=self._tls(),
        )
        self._thread = threading.Thread(target=self._run, name="splunk-log-sink", daemon=True)
        self._thread.start()

    def _tls(self) -> ssl.SSLContext | bool:
        verify = self.config.verify
        if isinstance(verify, bool):
            return verify
        return ssl.create_default_context(cafile=self._root / verify)

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Ship what is queued, for ``timeout`` seconds at most (what is left then is dropped
        and counted), and end the thread. Lines logged from now on are not shipped. Blocks:
        from async code, call it in a thread. Later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        if self._thread is None:  # never started: the process stopped before its platform
            self._drop(self._queue.qsize(), DropReason.SHUTDOWN)
            self._count_local_drops()
            return
        self._deadline = time.monotonic() + timeout
        stop = _Stop()
        self._queue.put(stop)
        self._stopping.set()
        stop.done.wait(timeout)

    # -- the thread ------------------------------------------------------------------------
    def _run(self) -> None:
        self._shipper = threading.get_ident()
        lines: list[bytes] = []
        size = 0
        due = math.inf  # when the batch goes: flush_interval after its first line
        while True:
            wait = self.config.flush_interval if not lines else due - time.monotonic()
            try:
                item = self._queue.get(timeout=max(0.0, wait))
            except queue.Empty:
                item = None
            if isinstance(item, _Stop):
                self._send(lines)
                self._count_local_drops()
                assert self._client is not None
                self._client.close()
                item.done.set()
                return
            if item is not None:
                if not lines:
                    due = time.monotonic() + self.config.flush_interval
                lines.append(self._envelope(*item))
                size += len(lines[-1])
            if lines and (
                len(lines) >= self.config.batch_size
                or size >= MAX_BATCH_BYTES
                or time.monotonic() >= due
            ):
                self._send(lines)
                lines, size = [], 0
            self._count_local_drops()

    def _envelope(self, when: float, line: bytes) -> bytes:
        return self._head + b"%.3f" % when + b',"event":' + line + b"}"

    def _send(self, lines: list[bytes]) -> None:
        """POST one batch, trying again as :data:`RETRY` says; count what became of it."""
        if not lines:
            return
        assert self._client is not None
        body = b"\n".join(lines)
        problem = ""
        for attempt in range(1, RETRY.max_attempts + 1):
            left = self._deadline - time.monotonic()
            if left <= 0:
                self._drop(len(lines), DropReason.SHUTDOWN)
                return
            wait: float | None = None
            try:
                response = self._client.post(
                    self.config.endpoint, content=body, timeout=min(self.config.timeout, left)
                )
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                status = response.status_code
                if response.is_success:
                    LOG_EVENTS_SHIPPED.inc(len(lines))
                    self._recovered()
                    return
                if status < 500 and status not in RETRYABLE_STATUSES:
                    self._drop(len(lines), DropReason.REJECTED)
                    self._warn(
                        f"rejected {status}",
                        "Splunk refused this process's log lines: they are dropped",
                        status=status,
                        error=json_message(response),
                    )
                    return
                problem = f"HTTP {status}: {json_message(response)}"
                wait = retry_after(response)
            if attempt < RETRY.max_attempts:
                pause = backoff_delay(RETRY, attempt, retry_after=wait)
                self._stopping.wait(min(pause, max(0.0, self._deadline - time.monotonic())))
        self._drop(len(lines), DropReason.UNAVAILABLE)
        self._warn(
            "unavailable",
            "Splunk is unavailable: this process's log lines are dropped until it answers",
            error=problem,
        )

    # -- counting and telling --------------------------------------------------------------
    @staticmethod
    def _drop(count: int, reason: DropReason) -> None:
        if count:
            LOG_EVENTS_DROPPED.labels(reason.value).inc(count)

    def _count_local_drops(self) -> None:
        full, unencodable = self._full, self._unencodable
        self._drop(full - self._counted_full, DropReason.QUEUE_FULL)
        self._drop(unencodable - self._counted_unencodable, DropReason.UNENCODABLE)
        self._counted_full, self._counted_unencodable = full, unencodable

    def _warn(self, trouble: str, message: str, **details: Any) -> None:
        """Warn (locally: this runs on the thread) once per trouble."""
        if trouble != self._trouble:
            self._trouble = trouble
            log.warning(message, url=self.config.endpoint, **details)

    def _recovered(self) -> None:
        if self._trouble is not None:
            self._trouble = None
            log.info("Splunk takes this process's log lines again", url=self.config.endpoint)
