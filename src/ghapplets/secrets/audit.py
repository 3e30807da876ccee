"""The audit log of secret reads: who read which secret, from which backend, when, and how it
ended; never the value.

Every read through :class:`~ghapplets.secrets.access.SecretAccess` is recorded here, found or
not, allowed or not: the worker's reads for an applet's job (``applet:<name>``), the sources'
and connectors' ``${secret:name}`` (``source:<name>``, ``connector:<name>``), the operator's
``ghapplets secrets get`` (``cli``). Lines go to the project's store (the ``secret_reads``
table, whatever backend keeps the values), where ``ghapplets secrets audit`` lists them and
retention deletes them after ``storage.audit_retention_days``.

A read never waits for its line. :meth:`SecretAudit.record` adds it to a buffer and one task
writes the buffer to the store, a batch per write; reads alike (same reader, name, scope,
backend and outcome) made while a write is under way become one line with a ``count``, so a
secret read for every job of a busy applet costs a counter, not a row per job. A write that
fails is tried again a second later; on :meth:`SecretAudit.close` (the process stopping) the
buffer is written once more, and the number of reads that could not be written is logged. At
most :data:`MAX_PENDING` lines wait: beyond that, reads are counted as lost and that
count is logged. A process killed outright loses the lines of its last write.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

from ghapplets.exceptions import GhappletsError
from ghapplets.logging import get_logger
from ghapplets.secrets.scopes import Reader
from ghapplets.store.base import SecretStore
from ghapplets.store.records import ReadOutcome, SecretReadRecord

MAX_PENDING = 10_000  # distinct lines waiting for the store, at most
RETRY_AFTER = 1.0  # seconds before a failed write is tried again
MAX_NAME = 256  # a name longer than this (an invalid one) is cut in its line

log = get_logger("ghapplets.secrets.audit")

_Key = tuple[str, str, str | None, ReadOutcome]


class SecretAudit:
    """The audit lines of one process, on their way to ``store``."""

    def __init__(
        self,
        store: SecretStore,
        backend: str,
        *,
        clock: Callable[[], float] = time.time,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.store = store
        self.backend = backend
        self._clock = clock
        self._max = max_pending
        self._pending: dict[_Key, SecretReadRecord] = {}
        self._lost = 0
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def record(
        self, reader: Reader, name: str, outcome: ReadOutcome, scope: str | None = None
    ) -> None:
        """Note a read; it reaches the store soon after, without the caller waiting for it."""
        name = name[:MAX_NAME]
        key = (str(reader), name, scope, outcome)
        line = self._pending.get(key)
        if line is not None:
            line.count += 1
        elif len(self._pending) >= self._max:
            self._lost += 1
        else:
            self._pending[key] = SecretReadRecord(
                uuid.uuid4().hex, self._clock(), str(reader), name, self.backend, outcome, scope
            )
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, {}
            try:
                await self.store.record_secret_reads(list(batch.values()))
            except GhappletsError as exc:
                self._requeue(batch)
                if self._closing:
                    return
                log.warning("the audit log of secret reads cannot be written", error=str(exc))
                await asyncio.sleep(RETRY_AFTER)
        if self._lost:
            log.warning("secret reads were not audited: too many lines waiting", count=self._lost)
            self._lost = 0

    def _requeue(self, batch: dict[_Key, SecretReadRecord]) -> None:
        """Put a batch that was not written back before the lines that came since."""
        newer, self._pending = self._pending, {}
        for key, line in batch.items():
            if len(self._pending) < self._max:
                self._pending[key] = line
            else:
                self._lost += line.count
        for key, line in newer.items():
            if key in self._pending:
                self._pending[key].count += line.count
            elif len(self._pending) < self._max:
                self._pending[key] = line
            else:
                self._lost += line.count

    async def flush(self) -> None:
        """Until the lines recorded so far are written (or the writer gave up)."""
        task = self._task
        if task is not None:
            await asyncio.shield(task)

    async def close(self) -> None:
        """Write what is waiting once more; log what cannot be written."""
        self._closing = True  # no more waiting between tries
        if self._task is not None:
            await self._task
        if self._pending:
            await self._drain()
        lost = self._lost + sum(line.count for line in self._pending.values())
        if lost:
            log.warning("secret reads were not audited: the store cannot take them", count=lost)
        self._pending, self._lost = {}, 0
