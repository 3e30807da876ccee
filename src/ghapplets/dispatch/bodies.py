"""Event bodies for jobs: each body is stored once, with its delivery, never in job messages.

A job message names its delivery; the worker reads the body from the store. The dispatcher
puts the bodies it has just recorded in a bounded, least-recently-used cache, so a worker in
the same process (``serve``, or a worker replica that dispatched the event) rarely reads.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from ghapplets.store.base import HistoryStore

DEFAULT_BUDGET = 8 * 1024 * 1024  # bytes of bodies kept in memory at most


class BodyCache:
    def __init__(self, store: HistoryStore, budget: int = DEFAULT_BUDGET) -> None:
        self.store = store
        self.budget = budget
        self.size = 0
        self._bodies: OrderedDict[tuple[str, str], bytes] = OrderedDict()

    def put(self, source: str, delivery_id: str, body: bytes) -> None:
        if len(body) > self.budget // 4:
            return  # a huge body would push out everything else: read it when needed
        key = (source, delivery_id)
        old = self._bodies.pop(key, None)
        if old is not None:
            self.size -= len(old)
        self._bodies[key] = body
        self.size += len(body)
        while self.size > self.budget:
            _, dropped = self._bodies.popitem(last=False)
            self.size -= len(dropped)

    async def prefetch(self, keys: Iterable[tuple[str, str]]) -> None:
        """Read the bodies of ``(source, delivery_id)`` not in memory, in one query.

        A worker calls it for each batch of jobs it fetched, so a backlog that outgrew the
        cache costs one read per batch rather than one per job."""
        missing = [k for k in dict.fromkeys(keys) if k not in self._bodies]
        if missing:
            for (source, delivery_id), body in (await self.store.get_bodies(missing)).items():
                self.put(source, delivery_id, body)

    async def get(self, source: str, delivery_id: str) -> bytes:
        """The body of the delivery; raises NotFound if the store has no such delivery."""
        key = (source, delivery_id)
        body = self._bodies.get(key)
        if body is not None:
            self._bodies.move_to_end(key)
            return body
        body = (await self.store.get_delivery(delivery_id, source)).body
        self.put(source, delivery_id, body)
        return body

    def __len__(self) -> int:
        return len(self._bodies)
