"""``ghapplets action``: run one catalog action, as an exec applet or a script does.

Inside a job (an exec applet's child, where the worker set ``GHAPPLETS_ACTION_URL`` and
``GHAPPLETS_ACTION_TOKEN``) it asks the worker's local action endpoint
(:mod:`ghapplets.connectors.endpoint`), which runs the action as the job's ``ctx.action`` would:
the applet never holds a connector's credentials. Outside a job it uses the project's
connectors directly (``ghapplets.yaml``, with ``${secret:…}`` read from the project's store and
``${env:…}`` from the environment), with no ``connectors:`` restriction: whoever can read the
project's configuration and store may act as it. The output is the vendor's JSON on stdout; the
exit status is that of ``invoke``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import typer

from ghapplets.backends import DB_FILE
from ghapplets.cli.project import (
    EXIT_RETRYABLE,
    DataDirOpt,
    ProjectOpt,
    backends,
    data_dir,
    fail,
    project_config,
    run,
)
from ghapplets.connectors import wire
from ghapplets.connectors.registry import Connectors
from ghapplets.exceptions import ActionUnavailable, AppletError, GhappletsError
from ghapplets.secrets.refs import Lookup, LookupFor
from ghapplets.secrets.scopes import Reader
from ghapplets.secrets.tokens import TokenCache

REMOTE_TIMEOUT = httpx.Timeout(300.0, connect=10.0)  # the applet's own timeout cuts it shorter


def _read_input(spec: str) -> Any:
    """``--input``: JSON, ``@FILE`` or ``-`` (standard input)."""
    try:
        if spec == "-":
            raw = sys.stdin.buffer.read(wire.MAX_INPUT + 1)
        elif spec.startswith("@"):
            with open(spec[1:], "rb") as f:
                raw = f.read(wire.MAX_INPUT + 1)
        else:
            raw = spec.encode()
    except OSError as exc:
        fail(f"--input {spec}: {exc.strerror or exc}", 2)
    if len(raw) > wire.MAX_INPUT:
        fail(f"--input is larger than {wire.MAX_INPUT} bytes", 2)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        fail(f"--input is not JSON: {exc}", 2)


@contextlib.asynccontextmanager
async def _project_store(
    project: Path | None, data: Path | None, needed: bool, tokens: bool
) -> AsyncIterator[tuple[LookupFor, TokenCache | None]]:
    """The project's global secrets, when a connector refers to one, and its token cache, when a
    connector caches tokens (a GitHub App, ServiceNow OAuth) and the project's store exists;
    else no store is opened."""
    config = project_config(project)
    if tokens and not needed:  # the cache is worth opening the store only if it is there
        embedded = config.storage.backend == "sqlite"
        tokens = not embedded or (data_dir(project, data) / DB_FILE).exists()
    if not needed and not tokens:

        def none(reader: Reader) -> Lookup:
            async def lookup(name: str) -> str:
                raise AssertionError(f"{reader} {name}")  # unreachable: no ${secret:} reference

            return lookup

        yield none, None
        return
    async with backends(project, data) as b:
        yield b.secrets.lookup, TokenCache.of(b.vault) if tokens else None


@contextlib.asynccontextmanager
async def project_connectors(
    project: Path | None, data: Path | None, *, tolerant: bool = False
) -> AsyncIterator[Connectors]:
    """The project's connectors, open (``ghapplets action``, ``ghapplets invoke``), with the
    store opened only when a connector needs it; ``tolerant``: see :meth:`Connectors.open`."""
    config = project_config(project)
    needed = any(
        "${secret:" in value
        for connector in config.connectors.values()
        for value in connector.model_dump().values()
        if isinstance(value, str)
    )
    caches = any(c.caches_tokens for c in config.connectors.values())
    async with _project_store(project, data, needed, caches) as (lookup, tokens):
        connectors = await Connectors.open(
            config.connectors, lookup, tokens=tokens, tolerant=tolerant
        )
        try:
            yield connectors
        finally:
            await connectors.aclose()


async def _act(project: Path | None, data: Path | None, name: str, payload: Any) -> Any:
    async with project_connectors(project, data) as connectors:
        return await connectors.act(name, payload)


async def _act_remote(url: str, token: str, name: str, payload: Any) -> Any:
    """Run the action on the worker's local endpoint, with this job's token."""
    try:
        async with httpx.AsyncClient(timeout=REMOTE_TIMEOUT, trust_env=False) as client:
            response = await client.post(
                f"{url.rstrip('/')}/{name}",
                content=orjson.dumps(payload),
                headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
            )
    except httpx.HTTPError as exc:
        raise ActionUnavailable(f"the worker's action endpoint cannot be reached: {exc}") from None
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if response.status_code == 200 and isinstance(doc, dict) and "output" in doc:
        return doc["output"]
    raise wire.error_of(response.status_code, doc)


def action(
    name: str = typer.Argument(..., help="The action, e.g. jira.create_issue (ghapplets actions)."),
    input: str = typer.Option(
        ..., "--input", "-i", help="The input: JSON, @FILE, or - for standard input."
    ),
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """Run the action NAME once and print its output as JSON; exit 0 ok, 75 retryable (the
    vendor is unavailable), 1 permanent (refused, or bad input), 2 unreadable --input, 3 the
    configuration cannot be used (a connector's reference cannot be resolved). A failed action
    also prints the exec applets' error object on stdout, so an applet that ends with
    ``exec ghapplets action ...`` hands its job the vendor's Retry-After."""
    payload = _read_input(input)
    url, token = os.environ.get(wire.URL_VARIABLE), os.environ.get(wire.TOKEN_VARIABLE)
    try:
        if url and token:
            output = run(_act_remote(url, token, name, payload))
        else:
            output = run(_act(project, data, name, payload))
    except AppletError as exc:
        typer.echo(f"error: {exc.type}: {exc.message}", err=True)
        error = {"type": str(exc.type), "message": exc.message, "retryable": exc.retryable}
        if exc.retry_after is not None:
            error["retry_after"] = exc.retry_after
        sys.stdout.write(orjson.dumps({"ok": False, "error": error}).decode() + "\n")
        raise typer.Exit(EXIT_RETRYABLE if exc.retryable else 1) from None
    except GhappletsError as exc:
        fail(str(exc), 1)
    sys.stdout.write(orjson.dumps(output).decode() + "\n")
