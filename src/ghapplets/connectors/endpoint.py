"""The worker's local action endpoint: how exec and HTTP applets run catalog actions.

A Python applet calls ``ctx.action`` in the worker's own process. An exec applet is a child
process, and an HTTP applet is a server elsewhere: neither may hold the connectors' credentials.
For each job of an applet whose manifest lists ``connectors:``, the worker :meth:`grants
<ActionEndpoint.grant>` a random token that is valid only while that job runs, and hands the
applet the endpoint's URL and that token (an exec applet in ``GHAPPLETS_ACTION_URL`` and
``GHAPPLETS_ACTION_TOKEN``, which ``ghapplets action`` reads; an HTTP applet in the
``X-Ghapplets-Action-Url`` and ``X-Ghapplets-Action-Token`` request headers). A call with the
token runs exactly what the job's ``ctx.action`` would: the same connectors' list, the same
installation. The wire format is :mod:`ghapplets.connectors.wire`.

It listens on ``worker.actions_address`` (default a free port on 127.0.0.1: only processes on
this host reach it); ``worker.actions_url`` is the URL handed out, for an HTTP applet that
reaches the worker by another name. Only a hash of each token is kept; an unknown token, a
body over :data:`~ghapplets.connectors.wire.MAX_INPUT` or one not JSON is refused before any
action runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import socket
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from ghapplets.connectors import wire
from ghapplets.exceptions import AppletError
from ghapplets.logging import get_logger
from ghapplets.sdk.context import ActionCaller

log = get_logger("ghapplets.actions")
READ_TIMEOUT = 30.0  # seconds a caller may take to send its input


@dataclass(frozen=True, slots=True)
class Grant:
    """What one job's applet is handed: where to call, and with which token."""

    url: str
    token: str


def _key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _json(status: int, doc: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(doc), status, headers, media_type="application/json")


class ActionEndpoint:
    """The endpoint of one worker process (:meth:`start`, :meth:`grant`, :meth:`revoke`,
    :meth:`stop`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, url: str | None = None) -> None:
        self.host = host
        self.port = port
        self._public_url = url
        self._callers: dict[bytes, ActionCaller] = {}
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.app = Starlette(routes=[Route("/v1/actions/{name}", self._call, methods=["POST"])])

    @property
    def url(self) -> str:
        """The base URL a grant carries: an action ``NAME`` is ``POST {url}/NAME``."""
        if self._public_url is not None:
            return self._public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1/actions"

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            http="h11",
            timeout_keep_alive=5,
            limit_concurrency=256,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="actions")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
            await asyncio.sleep(0.01)
        log.info("action endpoint listening", url=self.url)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._server = self._task = None
        self._callers.clear()

    def grant(self, caller: ActionCaller) -> Grant:
        """A token that runs actions through ``caller`` until :meth:`revoke`."""
        token = secrets.token_urlsafe(32)
        self._callers[_key(token)] = caller
        return Grant(self.url, token)

    def revoke(self, grant: Grant) -> None:
        self._callers.pop(_key(grant.token), None)

    async def _call(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        caller = self._callers.get(_key(token)) if scheme.lower() == "bearer" else None
        if caller is None:
            doc = wire.refusal("no valid action token: it is valid only while its job runs")
            return _json(401, doc, {"www-authenticate": "Bearer"})
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                body = await _read(request)
        except (TimeoutError, ClientDisconnect):
            return _json(408, wire.refusal("the input was not sent in time"))
        if body is None:
            return _json(413, wire.refusal(f"the input is larger than {wire.MAX_INPUT} bytes"))
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _json(400, wire.refusal(f"the input is not JSON: {exc}"))
        try:
            output = await caller(request.path_params["name"], data)
        except AppletError as exc:
            status, doc = wire.error_body(exc)
            after = exc.retry_after
            headers = {"retry-after": str(max(1, round(after)))} if after is not None else None
            return _json(status, doc, headers)
        return _json(200, {"output": output})


async def _read(request: Request) -> bytes | None:
    """The body, or None once it is larger than :data:`wire.MAX_INPUT`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > wire.MAX_INPUT:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > wire.MAX_INPUT:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
