"""``ghapplets runs``: list, show, cancel, suspend, resume and rerun blueprint runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson
import typer
from rich.table import Table

from ghapplets.backends import Backends
from ghapplets.cli.project import (
    DataDirOpt,
    JsonOpt,
    ProjectOpt,
    console,
    fail,
    literal,
    print_json_lines,
    with_backends,
)
from ghapplets.cli.records import styled, when, where
from ghapplets.dispatch.runs import cancel_run, rerun, resume_run, suspend_run
from ghapplets.exceptions import NotFound
from ghapplets.store.records import RunRecord, RunStatus

T = TypeVar("T")
app = typer.Typer(help="List, show and steer blueprint runs.", invoke_without_command=True)
RunArg = typer.Argument(..., help="The run's id.")


def _row(run: RunRecord) -> dict[str, Any]:
    doc = run.to_dict()
    doc.pop("definition")
    doc["blueprint"] = f"{run.namespace}/{run.name}"
    return doc


def _at(
    ctx: typer.Context,
    project: Path | None,
    data: Path | None,
    work: Callable[[Backends], Awaitable[T]],
) -> T:
    project, data = where(ctx, project, data)
    try:
        return with_backends(project, data, work)
    except NotFound as exc:
        fail(str(exc), 4)


@app.callback()
def runs(
    ctx: typer.Context,
    status: RunStatus | None = typer.Option(None, help="Only runs in this status."),
    blueprint: str | None = typer.Option(None, help="Only runs of this blueprint (its name)."),
    limit: int = typer.Option(50, min=1, max=100_000),
    as_json: bool = JsonOpt,
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """List blueprint runs, most recently started first."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = (project, data)
        return
    found = with_backends(
        project, data, lambda b: b.store.list_runs(status=status, name=blueprint, limit=limit)
    )
    if as_json:
        print_json_lines([_row(r) for r in found])
        return
    table = Table("started", "run", "blueprint", "status", "updated", "wakes")
    for r in found:
        table.add_row(
            when(r.started_at),
            literal(r.id),
            literal(f"{r.namespace}/{r.name} {r.version}"),
            styled(r.status),
            when(r.updated_at),
            when(r.wake_at) if r.wake_at else "",
        )
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    run_id: str = RunArg,
    as_json: bool = JsonOpt,
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """Show a run and every step it took: status, timing, attempts, input, output, error."""

    async def read(b: Backends) -> dict[str, Any]:
        run = await b.store.get_run(run_id)
        return {**_row(run), "steps": await b.store.steps(run_id)}

    doc = _at(ctx, project, data, read)
    if as_json:
        print_json_lines([doc])
        return
    console.print(
        f"run [bold]{literal(doc['id'])}[/] of {literal(doc['blueprint'])} "
        f"{literal(doc['version'])}: {styled(doc['status'])}",
        soft_wrap=True,
    )
    table = Table("step", "status", "started", "ms", "try", "input", "output / error")
    for step in doc["steps"]:
        ended = step.get("finished_at")
        ms = f"{(ended - step['started_at']) * 1000:.1f}" if ended else ""
        result = step.get("error") if step.get("error") else step.get("output")
        table.add_row(
            literal(step["reference"]),
            styled(step["status"]),
            when(step["started_at"]),
            ms,
            str(step.get("attempt", 1)),
            literal(_short(step.get("input"))),
            literal(_short(result)),
        )
    console.print(table)
    if doc.get("error"):
        console.print_json(orjson.dumps(doc["error"]).decode())
    elif doc["status"] == RunStatus.COMPLETED:
        console.print_json(orjson.dumps(doc["output"]).decode())


def _short(value: Any, width: int = 60) -> str:
    text = orjson.dumps(value).decode() if value is not None else ""
    return text if len(text) <= width else text[: width - 1] + "…"


def _control(
    ctx: typer.Context,
    project: Path | None,
    data: Path | None,
    work: Callable[[Backends], Awaitable[bool]],
    done: str,
    refused: str,
) -> None:
    if _at(ctx, project, data, work):
        console.print(done)
    else:
        fail(refused, 1)


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    run_id: str = RunArg,
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """Cancel a run that has not ended."""
    _control(
        ctx, project, data, lambda b: cancel_run(b.store, run_id), "cancelled", "the run has ended"
    )


@app.command("suspend")
def suspend(
    ctx: typer.Context,
    run_id: str = RunArg,
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """Hold a run where it is until it is resumed."""
    _control(
        ctx,
        project,
        data,
        lambda b: suspend_run(b.store, run_id),
        "suspended",
        "only a pending, running or waiting run can be suspended",
    )


@app.command("resume")
def resume(
    ctx: typer.Context,
    run_id: str = RunArg,
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """Let a suspended run go on."""
    _control(
        ctx,
        project,
        data,
        lambda b: resume_run(b.store, b.broker, run_id),
        "resumed",
        "only a suspended run can be resumed",
    )


@app.command("rerun")
def rerun_cmd(
    ctx: typer.Context,
    run_id: str = RunArg,
    from_task: str = typer.Option(
        ..., "--from", help="The task (name or reference) to run again from."
    ),
    as_json: bool = JsonOpt,
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """Run a run again from one of its tasks: a new run, whose earlier steps are the old ones."""
    new = _at(ctx, project, data, lambda b: rerun(b.store, b.broker, run_id, from_task))
    if as_json:
        print_json_lines([{"id": new, "rerun_of": run_id, "from": from_task}])
    else:
        console.print(f"started run [bold]{literal(new)}[/]", soft_wrap=True)
