"""An in-process gateway for tests: the whole platform on a temporary data folder, no sockets.

>>> async with running_gateway(project_dir, tmp_path / "data") as gw:   # doctest: +SKIP
...     response = await gw.send("github", "issues.opened")
...     jobs = await gw.wait_for_jobs(response.json()["id"])
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from ghapplets.config.loader import load_config
from ghapplets.platform import Platform
from ghapplets.store.records import JobRecord, JobStatus
from ghapplets.testing.events import signed_request

DONE = (JobStatus.SUCCEEDED, JobStatus.DEAD)


class GatewayClient:
    def __init__(self, platform: Platform, client: httpx.AsyncClient) -> None:
        self.platform = platform
        self.client = client

    async def send(
        self,
        source: str,
        event: str,
        *,
        payload: Any = None,
        variant: str | None = None,
        delivery_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """POST a fixture event to ``/hooks/{source}``, signed with the source's own secret."""
        src = self.platform.sources[source]
        _, signed = signed_request(
            src.kind,
            event,
            source=src,
            payload=payload,
            variant=variant,
            delivery_id=delivery_id or str(uuid.uuid4()),
            headers=headers,
        )
        return await self.client.post(
            f"/hooks/{source}", content=signed.body, headers=signed.headers, params=signed.query
        )

    async def wait_for_jobs(
        self, delivery_id: str, *, count: int | None = None, timeout: float = 10.0
    ) -> list[JobRecord]:
        """Wait until the delivery's jobs (``count`` of them, if given) are all finished."""
        store = self.platform.backends.store
        deadline = time.monotonic() + timeout
        while True:
            jobs = await store.list_jobs(delivery_id=delivery_id, limit=1000)
            finished = [j for j in jobs if j.status in DONE]
            enough = len(jobs) == count if count is not None else bool(jobs)
            if enough and len(finished) == len(jobs):
                return jobs
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs of {delivery_id} not finished: {jobs}")
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running_gateway(project: Path, data_dir: Path) -> AsyncIterator[GatewayClient]:
    platform = Platform(load_config(project), data_dir)
    await platform.start()
    try:
        app: Any = platform.asgi()
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield GatewayClient(platform, client)
    finally:
        await platform.stop()
