"""``ghapplets send``: a realistic, correctly signed webhook to a local or remote gateway."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import typer

from ghapplets.cli.project import (
    DataDirOpt,
    ProjectOpt,
    backends,
    console,
    errors,
    fail,
    literal,
    load,
    run,
)
from ghapplets.config.loader import CONFIG_FILE
from ghapplets.sources import fixtures
from ghapplets.sources.base import Source
from ghapplets.sources.registry import build_source, build_sources, settings_model

WRONG_SECRET = b"not-the-secret-" + uuid.uuid4().hex.encode()


async def _project_source(project: Path | None, data: Path | None, name: str) -> Source:
    loaded = load(project)
    if name not in loaded.sources:
        fail(f"no source {name!r} in {CONFIG_FILE}; known: {', '.join(sorted(loaded.sources))}", 4)
    async with backends(project, data, create=True) as b:
        return (await build_sources({name: loaded.sources[name]}, b.secrets.lookup))[name]


def _adhoc_source(kind: str, name: str, secret: str) -> Source:
    try:
        model = settings_model(kind)
    except ValueError as exc:
        fail(str(exc), 2)
    return build_source(name, model(kind=kind), [secret.encode()])


def send(
    event: str = typer.Argument(
        ..., help="Event to send, e.g. issues.opened, push, jira:issue_updated, alert."
    ),
    source_name: str = typer.Option("github", "--source", "-s", help="Source name to post to."),
    url: str = typer.Option("http://127.0.0.1:8080", help="Gateway base URL."),
    file: Path | None = typer.Option(None, "--file", "-f", help="JSON payload instead of fixture."),
    variant: str | None = typer.Option(None, help="Fixture variant, e.g. ghes or dc."),
    delivery_id: str | None = typer.Option(None, help="Delivery id (default: a new UUID)."),
    count: int = typer.Option(1, min=1, max=100_000, help="Send this many (new ids each)."),
    bad_signature: bool = typer.Option(
        False, "--bad-signature", help="Sign with a wrong secret; success means a 401."
    ),
    kind: str | None = typer.Option(None, help="Source kind, for a gateway without a project."),
    secret: str | None = typer.Option(
        None, envvar="GHAPPLETS_SEND_SECRET", help="Secret, for a gateway without a project."
    ),
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
    timeout: float = typer.Option(10.0, help="Seconds to wait for the gateway."),
) -> None:
    """Send a signed webhook built from the built-in fixtures (or --file) and show the answer."""
    if kind and secret:
        source = _adhoc_source(kind, source_name, secret)
    elif kind or secret:
        fail("--kind and --secret go together (for a gateway without a local project)", 2)
    else:
        source = run(_project_source(project, data, source_name))
    if bad_signature:
        source = build_source(source.name, source.settings, [WRONG_SECRET])
    try:
        fixture = fixtures.load(source.kind, event, variant=variant)
    except KeyError as exc:
        fail(str(exc.args[0] if exc.args else exc), 2)
    payload: Any = fixture.payload
    if file is not None:
        try:
            payload = orjson.loads(file.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            fail(f"cannot read {file}: {exc}", 2)
    target = f"{url.rstrip('/')}/hooks/{source.name}"
    failures = 0
    replays = 0  # answered as duplicates although their delivery ids were new
    started = time.perf_counter()
    with httpx.Client(timeout=timeout) as client:
        for i in range(count):
            did = delivery_id if (delivery_id and count == 1) else str(uuid.uuid4())
            if delivery_id and count > 1:
                did = f"{delivery_id}-{i}"
            signed = source.sign(fixture.event, payload, did, headers=fixture.headers)
            try:
                resp = client.post(
                    target, content=signed.body, headers=signed.headers, params=signed.query
                )
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                fail(f"cannot reach {target}: {exc}", 1)
            expected = resp.status_code == 401 if bad_signature else resp.is_success
            failures += 0 if expected else 1
            if delivery_id is None and _duplicate(resp):  # a new id: the body was seen before
                replays += 1
            if count == 1 or not expected:
                style = "green" if expected else "red"
                answer = literal(f"{target} {resp.text.strip()}")
                console.print(f"[{style}]{resp.status_code}[/] {answer}", soft_wrap=True)
    if count > 1:
        elapsed = time.perf_counter() - started
        console.print(f"sent {count} in {elapsed:.2f}s, {failures} unexpected answers")
    if replays:
        errors.print(
            f"{replays} answered as duplicates: the gateway accepted this body before under "
            "another delivery id (replay protection). Send another payload (--file), or set "
            f"replay_protection: false on source {source.name!r} for repeated test sends."
        )
    if failures:
        if bad_signature:
            errors.print("the gateway did not reject the bad signature with 401")
        raise typer.Exit(1)


def _duplicate(resp: httpx.Response) -> bool:
    if resp.status_code != 202:
        return False
    try:
        doc = resp.json()
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("duplicate") is True
