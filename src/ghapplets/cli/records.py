"""``ghapplets deliveries``, ``jobs`` and ``replay``: inspect history and run work again."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.table import Table

from ghapplets.applets.loader import discover
from ghapplets.applets.matching import Matcher
from ghapplets.backends import Backends
from ghapplets.cli.project import (
    DataDirOpt,
    JsonOpt,
    ProjectOpt,
    backends,
    console,
    fail,
    literal,
    load,
    print_json_lines,
    run,
    with_backends,
)
from ghapplets.dispatch.replay import replay_delivery, replay_job
from ghapplets.exceptions import ConfigError, NotFound
from ghapplets.store.records import (
    DeliveryRecord,
    DeliveryStatus,
    JobRecord,
    JobStatus,
    RunStatus,
)

deliveries_app = typer.Typer(
    help="List and show deliveries (webhooks received).",
    invoke_without_command=True,
    no_args_is_help=False,
)
jobs_app = typer.Typer(help="List and show jobs (applet runs).", invoke_without_command=True)

STATUS_STYLE: dict[str, str] = {
    JobStatus.SUCCEEDED: "green",
    DeliveryStatus.SUCCEEDED: "green",
    DeliveryStatus.FAILED: "red",
    JobStatus.DEAD: "red",
    JobStatus.RETRYING: "yellow",
    JobStatus.RUNNING: "cyan",
    DeliveryStatus.DISPATCHED: "cyan",
    JobStatus.QUEUED: "cyan",
    DeliveryStatus.UNMATCHED: "dim",
    RunStatus.COMPLETED: "green",
    RunStatus.FAULTED: "red",
    RunStatus.WAITING: "yellow",
    RunStatus.SUSPENDED: "magenta",
    RunStatus.PENDING: "cyan",
    RunStatus.CANCELLED: "dim",
}


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def styled(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{literal(status)}[/]"


def _delivery_row(d: DeliveryRecord) -> dict[str, Any]:
    return {
        "id": d.id,
        "source": d.source,
        "type": d.type,
        "subject": d.subject,
        "status": d.status,
        "received_at": d.received_at,
        "jobs_total": d.jobs_total,
        "jobs_succeeded": d.jobs_succeeded,
        "jobs_dead": d.jobs_dead,
    }


def where(
    ctx: typer.Context, project: Path | None, data: Path | None
) -> tuple[Path | None, Path | None]:
    """``--project`` / ``--data-dir`` given after ``show`` win over those given before it."""
    outer_project, outer_data = ctx.obj or (None, None)
    return project or outer_project, data or outer_data


@deliveries_app.callback()
def deliveries(
    ctx: typer.Context,
    source: str | None = typer.Option(None, help="Only this source."),
    status: DeliveryStatus | None = typer.Option(None, help="Only deliveries in this status."),
    type_prefix: str | None = typer.Option(None, "--type", help="Type prefix, e.g. com.github."),
    limit: int = typer.Option(50, min=1, max=100_000),
    as_json: bool = JsonOpt,
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """List recent deliveries, newest first."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = (project, data)
        return

    rows = with_backends(
        project,
        data,
        lambda b: b.store.list_deliveries(
            source=source, status=status, type_prefix=type_prefix, limit=limit
        ),
    )
    if as_json:
        print_json_lines([_delivery_row(d) for d in rows])
        return
    table = Table("received", "source", "id", "type", "subject", "status", "jobs")
    for d in rows:
        table.add_row(  # cells are markup; ids, types, subjects come from webhooks
            when(d.received_at),
            literal(d.source),
            literal(d.id),
            literal(d.type),
            literal(d.subject),
            styled(d.status),
            f"{d.jobs_succeeded}/{d.jobs_total}",
        )
    console.print(table)


@deliveries_app.command("show")
def delivery_show(
    ctx: typer.Context,
    delivery_id: str = typer.Argument(...),
    source: str | None = typer.Option(None),
    as_json: bool = JsonOpt,
    body: bool = typer.Option(False, "--body", help="Print the stored payload too."),
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """Show one delivery with its jobs."""
    project, data = where(ctx, project, data)

    async def show(b: Backends) -> tuple[DeliveryRecord, list[JobRecord]]:
        d = await b.store.get_delivery(delivery_id, source)
        return d, await b.store.list_jobs(delivery_id=d.id, limit=10_000)

    try:
        d, jobs = with_backends(project, data, show)
    except NotFound as exc:
        fail(str(exc), 4)
    doc = {
        **_delivery_row(d),
        "attributes": d.attributes,
        "headers": d.headers,
        "jobs": [j.to_dict() for j in jobs if j.source == d.source],
    }
    if body:
        doc["data"] = orjson.loads(d.body) if d.body[:1] in (b"{", b"[") else d.body.decode()
    if as_json:
        print_json_lines([doc])
    else:
        console.print_json(orjson.dumps(doc, default=str).decode())


@jobs_app.callback()
def jobs(
    ctx: typer.Context,
    delivery: str | None = typer.Option(None, help="Only jobs of this delivery id."),
    applet: str | None = typer.Option(None, help="Only this applet."),
    status: JobStatus | None = typer.Option(None, help="Only jobs in this status."),
    limit: int = typer.Option(50, min=1, max=100_000),
    as_json: bool = JsonOpt,
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """List recent jobs, most recently updated first."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = (project, data)
        return

    rows = with_backends(
        project,
        data,
        lambda b: b.store.list_jobs(
            delivery_id=delivery, applet=applet, status=status, limit=limit
        ),
    )
    if as_json:
        print_json_lines([j.to_dict() for j in rows])
        return
    table = Table("updated", "job", "applet", "status", "attempts", "error")
    for j in rows:
        error = f"{j.error_type}: {j.error_message}" if j.error_type else ""
        table.add_row(  # cells are markup; ids and errors come from webhooks and applets
            when(j.updated_at),
            literal(j.id),
            literal(j.applet),
            styled(j.status),
            str(j.attempts),
            literal(error[:80]),
        )
    console.print(table)


@jobs_app.command("show")
def job_show(
    ctx: typer.Context,
    job_id: str = typer.Argument(...),
    as_json: bool = JsonOpt,
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """Show one job with every attempt."""
    project, data = where(ctx, project, data)

    async def show(b: Backends) -> dict[str, Any]:
        job = await b.store.get_job(job_id)
        attempts = await b.store.list_attempts(job_id)
        return {**job.to_dict(), "attempt_log": [a.to_dict() for a in attempts]}

    try:
        doc = with_backends(project, data, show)
    except NotFound as exc:
        fail(str(exc), 4)
    if as_json:
        print_json_lines([doc])
    else:
        console.print_json(orjson.dumps(doc, default=str).decode())


def replay(
    delivery_id: str | None = typer.Argument(None, help="Delivery id to replay."),
    job: str | None = typer.Option(None, "--job", help="Replay only this job id."),
    source: str | None = typer.Option(None, help="Source of the delivery, if ids collide."),
    as_json: bool = JsonOpt,
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """Run a delivery's applets again (or one job). A running server picks it up at once."""
    if (delivery_id is None) == (job is None):
        fail("give a delivery id, or --job JOB_ID", 2)

    async def go() -> list[JobRecord]:
        async with backends(project, data) as b:
            if job is not None:
                return [await replay_job(b.store, b.broker, job)]
            loaded = load(project)
            try:
                matcher = Matcher(discover(loaded.config.applet_dirs()))
            except ConfigError as exc:
                fail(str(exc), 3)
            assert delivery_id is not None
            return await replay_delivery(b.store, b.broker, matcher, delivery_id, source)

    try:
        queued = run(go())
    except NotFound as exc:
        fail(str(exc), 4)
    if as_json:
        print_json_lines([j.to_dict() for j in queued])
        return
    if not queued:
        console.print("no applet matches this delivery now; nothing queued")
    for j in queued:
        console.print(f"queued [bold]{literal(j.id)}[/] (applet {literal(j.applet)})")
