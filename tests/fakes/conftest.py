"""Helpers for the fakes' tests: HTTP clients on the running fakes, GitHub tokens, and the real
gateway served on a socket (for webhooks a fake sends by itself)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from ghapplets.config.loader import load_config
from ghapplets.fakes.runner import FakeSet
from ghapplets.platform import Platform

INSTALLATION = 2001
APP_ID = 1001
REPO = "octo-org/hello-world"


@pytest.fixture
def fakes(ghapplets_fakes: FakeSet) -> FakeSet:
    return ghapplets_fakes


@pytest.fixture
def gh(fakes: FakeSet) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fakes.github.base_url or "") as client:
        yield client


def app_headers(fakes: FakeSet, **claims: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {fakes.app_jwt(**claims)}"}


def installation_token(fakes: FakeSet, client: httpx.Client, body: dict | None = None) -> str:
    response = client.post(
        f"/app/installations/{INSTALLATION}/access_tokens",
        headers=app_headers(fakes),
        json=body,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def token_headers(token: str, scheme: str = "token") -> dict[str, str]:
    return {"Authorization": f"{scheme} {token}", "Accept": "application/vnd.github+json"}


@contextlib.asynccontextmanager
async def served_gateway(project: Path, data: Path) -> AsyncIterator[tuple[str, Platform]]:
    """The real platform with its gateway on a socket: ``(base URL, platform)``."""
    platform = Platform(load_config(project), data)
    await platform.start()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    app: object = platform.asgi()
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="error", lifespan="off", access_log=False)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}", platform
    finally:
        server.should_exit = True
        await task
        sock.close()
        await platform.stop()
