"""``ghapplets invoke``: run one applet on one event, without a server."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import typer

from ghapplets.applets.loader import discover
from ghapplets.applets.result import AppletOutcome
from ghapplets.applets.runtime import run_once
from ghapplets.cli.action import project_connectors
from ghapplets.cli.project import (
    EXIT_RETRYABLE,
    DataDirOpt,
    ProjectOpt,
    backends,
    console,
    fail,
    load,
    run,
)
from ghapplets.events import CloudEvent
from ghapplets.exceptions import ConfigError, NotFound, SecretScopeError
from ghapplets.logging import configure
from ghapplets.testing.events import fixture_event


def _read_event(event_file: Path | None, fixture: str | None) -> CloudEvent:
    if fixture:
        kind, _, name = fixture.partition(":")
        if not name:
            fail("--fixture takes KIND:EVENT, e.g. github:issues.opened", 2)
        try:
            return fixture_event(kind, name)
        except (KeyError, ValueError) as exc:
            fail(str(exc.args[0] if exc.args else exc), 2)
    if event_file is None:
        fail("give an event file (a structured CloudEvent JSON) or --fixture KIND:EVENT", 2)
    try:
        return CloudEvent.from_json(event_file.read_bytes())
    except (OSError, ValueError) as exc:
        fail(f"{event_file}: not a structured CloudEvent: {exc}", 2)


async def _invoke(
    project: Path | None, data: Path | None, applet: str, event: CloudEvent
) -> AppletOutcome:
    loaded = load(project)
    try:
        specs = {s.name: s for s in discover(loaded.config.applet_dirs())}
    except ConfigError as exc:
        fail(str(exc), 3)
    spec = specs.get(applet)
    if spec is None:
        fail(f"no applet named {applet!r}; known: {', '.join(sorted(specs)) or 'none'}", 4)
    secrets = {}
    if spec.secrets:
        async with backends(project, data) as b:
            try:
                secrets = dict(await b.secrets.for_applet(spec.name, spec.secrets))
            except NotFound as exc:
                fail(f"applet {applet!r} declares a secret that is not stored: {exc}", 4)
            except SecretScopeError as exc:
                fail(str(exc), 3)
    job_id = f"invoke:{uuid.uuid4().hex[:12]}"
    if not spec.connectors:
        return await run_once(spec, event, job_id=job_id, secrets=secrets)
    # as in a job: its connectors only, a GitHub action as the event's installation; one
    # without its secret fails its own actions (ConnectorUnusable), not the invocation
    async with project_connectors(project, data, tolerant=True) as connectors:
        return await run_once(
            spec,
            event,
            job_id=job_id,
            secrets=secrets,
            actions=connectors.caller(spec.connectors, event),
            clients=connectors.clients(spec.connectors, event),
        )


def invoke(
    applet: str = typer.Argument(..., help="Applet name."),
    event_file: Path | None = typer.Argument(None, help="Structured CloudEvent JSON file."),
    fixture: str | None = typer.Option(None, help="Use a built-in fixture, KIND:EVENT."),
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """Run APPLET once on an event and print its result; exit 0 ok, 75 retryable, 1 permanent."""
    configure("console", "info")
    event = _read_event(event_file, fixture)
    outcome = run(_invoke(project, data, applet, event))
    console.print_json(orjson.dumps(outcome.to_dict()).decode())
    if not outcome.ok:
        raise typer.Exit(EXIT_RETRYABLE if outcome.retryable else 1)
