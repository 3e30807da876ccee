"""``ghapplets run FILE``: run one blueprint here, in this process, and show each task.

With a project around (``--project``, or a ``ghapplets.yaml`` in the current folder) its
applets answer ``call: <applet>``, its connectors ``call: <connector>.<action>``, its other
blueprints ``run.workflow``, and its stored secrets ``use.secrets`` (a secret whose value is a
JSON object is given as that object, for ``basic: {use: ...}`` and the like). Without one, only
``http``, ``openapi``, processes and the blueprint's own tasks can run.

``--event`` files are events that arrive for the run's listeners. A run left waiting for an
event that cannot come any more ends ``cancelled``. ``--json`` prints one document on stdout:
``{"status", "output", "error", "tasks": [{"name", "reference", "status", ...}]}``; exit 0 when
the run completed, 1 otherwise, 3 when the blueprint is not valid.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import typer

from ghapplets import __version__
from ghapplets.blueprints.effects import call_action, call_applet, secret_values
from ghapplets.blueprints.errors import ErrorKind, raise_error
from ghapplets.blueprints.loader import Blueprint, load_blueprint, load_blueprints
from ghapplets.blueprints.local import LocalHost, Report, execute
from ghapplets.blueprints.program import Program
from ghapplets.blueprints.records import RunStatus, StepRecord, TaskStatus
from ghapplets.blueprints.transport import HttpxSender
from ghapplets.cli.project import (
    EXIT_CONFIG,
    EXIT_USAGE,
    DataDirOpt,
    ProjectOpt,
    console,
    errors,
    fail,
    literal,
    print_problems,
    run,
)
from ghapplets.config.loader import CONFIG_FILE
from ghapplets.exceptions import ConfigError
from ghapplets.logging import configure


def read_json_argument(value: str, what: str) -> Any:
    """``JSON`` or ``@file``."""
    try:
        raw = Path(value[1:]).read_bytes() if value.startswith("@") else value.encode()
        return orjson.loads(raw)
    except (OSError, orjson.JSONDecodeError) as exc:
        fail(f"{what}: not JSON (give JSON or @file): {exc}", EXIT_USAGE)


def _project(project: Path | None) -> Path | None:
    if project is not None:
        return project
    return Path.cwd() if (Path.cwd() / CONFIG_FILE).exists() else None


@contextlib.asynccontextmanager
async def _project_host(
    project: Path | None, data: Path | None, blueprint: Blueprint, host: LocalHost
) -> AsyncIterator[None]:
    """Give ``host`` the project's applets, connectors, blueprints and secrets."""
    if project is None:
        yield
        return
    from ghapplets.applets.loader import discover
    from ghapplets.applets.runtime import build_runtime
    from ghapplets.cli.action import project_connectors
    from ghapplets.cli.project import backends, load

    loaded = load(project)
    config = loaded.config
    try:
        specs = discover(config.applet_dirs(), connectors=config.connectors)
        others = load_blueprints(config.blueprint_dirs())
    except ConfigError as exc:
        print_problems(exc)
        raise typer.Exit(EXIT_CONFIG) from None
    host.blueprints = [Program(b.definition) for b in others]
    names = list((blueprint.definition.get("use") or {}).get("secrets") or [])
    if names:
        async with backends(project, data) as b:
            host.secret_values = secret_values(await _read(b, names))
    runtimes = {s.name: build_runtime(s) for s in specs}
    label = f"{blueprint.namespace}/{blueprint.name}"
    async with contextlib.AsyncExitStack() as stack:
        for runtime in runtimes.values():
            await stack.enter_async_context(runtime)
        connectors = await stack.enter_async_context(
            project_connectors(project, data, tolerant=True)
        )

        async def applets(name: str, value: Any, key: str) -> Any:
            return await call_applet(
                runtimes, name, value, key=key, blueprint=label, connectors=connectors
            )

        async def actions(name: str, value: Any, key: str) -> Any:
            return await call_action(connectors, name, value)

        host.applets, host.actions = applets, actions
        yield


async def _read(b: Any, names: list[str]) -> Mapping[str, str]:
    found = {}
    for name in names:
        with contextlib.suppress(Exception):  # a missing one faults the run, as the DSL says
            found[name] = await b.secrets.get(name)
    return found


def _show(record: StepRecord) -> None:
    if record.status == TaskStatus.RUNNING:
        return
    ms = ((record.finished_at or record.started_at) - record.started_at) * 1000
    mark = {"completed": "[green]✓[/]", "skipped": "[dim]-[/]"}.get(record.status, "[red]✗[/]")
    errors.print(
        f"{mark} {literal(record.reference)} [dim]{record.status} {ms:.1f} ms[/]", soft_wrap=True
    )


async def _run(
    file: Path,
    input: Any,
    events: list[Any],
    project: Path | None,
    data: Path | None,
    quiet: bool,
) -> Report:
    try:
        blueprint = load_blueprint(file)
    except ConfigError as exc:
        print_problems(exc)
        raise typer.Exit(EXIT_CONFIG) from None
    sender = HttpxSender()
    host = LocalHost(http=sender, on_step=None if quiet else _show)
    for event in events:
        host.inject(event)
    try:
        async with _project_host(project, data, blueprint, host):
            return await execute(
                Program(blueprint.definition),
                host,
                input,
                runtime_version=__version__,
            )
    finally:
        await sender.aclose()


def run_blueprint(
    file: Path = typer.Argument(..., help="The blueprint file (YAML or JSON).", exists=True),
    input: str | None = typer.Option(None, "--input", "-i", help="The input: JSON or @file."),
    event: list[str] = typer.Option(
        [], "--event", "-e", help="An event for listeners: JSON or @file (repeat)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """Run a blueprint here, printing each task; exit 0 when it completes, 1 otherwise."""
    configure("console", "warning")
    value = read_json_argument(input, "--input") if input is not None else {}
    events: list[Any] = []
    for item in event:
        parsed = read_json_argument(item, "--event")
        events.extend(parsed if isinstance(parsed, list) else [parsed])
    report = run(_run(file, value, events, _project(project), data, quiet=json_out))
    if report.status == RunStatus.WAITING:  # nothing can send the events it waits for
        report.status = RunStatus.CANCELLED
        report.error = raise_error(
            ErrorKind.RUNTIME,
            "the run waits for events that cannot arrive in a local run (give them with --event)",
            title="Waiting for events",
        ).to_dict()
    if json_out:
        sys.stdout.write(orjson.dumps(report.to_dict()).decode() + "\n")
    else:
        if report.status == "completed":
            console.print("[green]completed[/]")
            console.print_json(orjson.dumps(report.output).decode())
        else:
            console.print(f"[red]{literal(report.status)}[/]")
            if report.error:
                console.print_json(orjson.dumps(report.error).decode())
    raise typer.Exit(0 if report.status == "completed" else 1)
