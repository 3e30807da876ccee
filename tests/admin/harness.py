"""A running platform (in-process, on the backends ``platform_backends`` picked) with its admin
API, a token per role, and helpers to fill the store."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ghapplets.admin.app import AdminApi
from ghapplets.admin.tokens import TokenStore
from ghapplets.config.loader import load_config
from ghapplets.platform import Platform
from ghapplets.store.base import Store
from ghapplets.store.records import DeliveryRecord, DeliveryStatus, JobRecord, JobStatus, Role
from ghapplets.testing.gateway import GatewayClient
from tests.conftest import WEBHOOK_SECRET, ProjectBuilder

PICKY = """
from pathlib import Path
from ghapplets import Applet, Context, PermanentError

app = Applet("picky")

@app.on("com.github.issues.opened")
async def handle(ctx: Context) -> dict:
    if not Path({marker!r}).exists():
        raise PermanentError("not ready yet")
    return {{"ok": True}}
"""
ECHO = """
from ghapplets import Applet, Context

app = Applet("echo")

@app.on("com.github.*")
async def handle(ctx: Context) -> dict:
    return {"type": ctx.event.type}
"""


def build_project(project: ProjectBuilder, marker: Path, extra_sources: str = "") -> Path:
    project.python_applet("picky", PICKY.format(marker=str(marker)))
    project.python_applet("echo", ECHO)
    if extra_sources:
        project.source(
            "github",
            f"kind: github\nsecret: {WEBHOOK_SECRET}\nreplay_protection: false",
        )
        project.source("hidden", extra_sources)
    return project.build()


@dataclass
class Admin:
    platform: Platform
    api: AdminApi
    gateway: GatewayClient
    tokens: dict[Role, str] = field(default_factory=dict)
    client_address: str = "127.0.0.1"

    @property
    def store(self) -> Store:
        return self.platform.backends.store

    def client(self, address: str | None = None) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(
            app=self.api,  # type: ignore[arg-type]
            client=(address or self.client_address, 50000),
        )
        return httpx.AsyncClient(transport=transport, base_url="http://admin")

    def auth(self, role: Role | None) -> dict[str, str]:
        return {} if role is None else {"Authorization": f"Bearer {self.tokens[role]}"}

    async def call(
        self,
        method: str,
        path: str,
        role: Role | None = Role.ADMIN,
        *,
        headers: dict[str, str] | None = None,
        address: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        async with self.client(address) as client:
            return await client.request(
                method, path, headers={**self.auth(role), **(headers or {})}, **kwargs
            )

    async def get(self, path: str, role: Role | None = Role.ADMIN, **params: Any) -> httpx.Response:
        return await self.call("GET", path, role, params=params)

    async def ok(self, path: str, role: Role | None = Role.ADMIN, **params: Any) -> Any:
        answer = await self.get(path, role, **params)
        assert answer.status_code == 200, answer.text
        return answer.json()


@contextlib.asynccontextmanager
async def running_admin(root: Path, data: Path) -> AsyncIterator[Admin]:
    platform = Platform(load_config(root), data)
    await platform.start()
    try:
        transport = httpx.ASGITransport(app=platform.asgi(), client=("127.0.0.1", 50000))  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            admin = Admin(platform, platform.admin_api(), GatewayClient(platform, client))
            tokens = TokenStore(platform.backends.store)
            for role in Role:
                admin.tokens[role] = (await tokens.create(f"t-{role.value}", role)).token
            yield admin
    finally:
        await platform.stop()


def delivery(
    n: int,
    *,
    source: str = "github",
    type: str = "com.github.issues.opened",
    subject: str | None = None,
    status: DeliveryStatus = DeliveryStatus.SUCCEEDED,
    at: float | None = None,
) -> DeliveryRecord:
    return DeliveryRecord(
        source=source,
        id=f"d-{n:06d}-{uuid.uuid4().hex[:6]}",
        type=type,
        subject=subject if subject is not None else f"octo/repo-{n % 7}#{n}",
        time="2024-01-01T00:00:00Z",
        received_at=time.time() if at is None else at,
        status=status,
        attributes={"id": f"d-{n}", "type": type, "source": f"/{source}"},
        headers={"x-github-event": "issues"},
        body=b'{"n": %d}' % n,
    )


def job_of(d: DeliveryRecord, applet: str, created: float) -> JobRecord:
    return JobRecord(
        id=f"{d.source}:{d.id}:{applet}",
        source=d.source,
        delivery_id=d.id,
        applet=applet,
        status=JobStatus.QUEUED,
        created_at=created,
        updated_at=created,
    )
