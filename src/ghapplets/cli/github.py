"""``ghapplets github catch-up``: redeliver the GitHub App webhooks the store never got.

It lists the App's hook deliveries of the window (``--since``, default 24 hours) and asks GitHub
to redeliver each webhook that no attempt delivered and that the store does not hold
(:mod:`ghapplets.connectors.github_catchup`). The worker does the same on a timer
(``catch_up_every`` on the connector); this command is for a gateway that was down, now.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

import typer

from ghapplets.cli.project import (
    EXIT_RETRYABLE,
    EXIT_USAGE,
    DataDirOpt,
    JsonOpt,
    ProjectOpt,
    backends,
    console,
    fail,
    print_json_lines,
    project_config,
    run,
)
from ghapplets.connectors.config import GithubConnector
from ghapplets.connectors.github import GitHub
from ghapplets.connectors.github_catchup import CatchUpReport, catch_up
from ghapplets.connectors.registry import resolved
from ghapplets.exceptions import AppletError, GhappletsError
from ghapplets.secrets.scopes import Reader
from ghapplets.secrets.tokens import TokenCache

app = typer.Typer(help="GitHub App chores.", no_args_is_help=True)
_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: float) -> float:
    """``--since``: a duration back from now (``90m``, ``6h``, ``3d``) or an ISO 8601 time."""
    found = _DURATION.fullmatch(text.strip())
    if found:
        return now - int(found[1]) * _UNIT[found[2]]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise ValueError(
            f"--since {text!r}: give a duration (90m, 6h, 3d) or an ISO time"
        ) from None


def _connector(connectors: dict[str, object], name: str | None) -> tuple[str, GithubConnector]:
    apps = {n: c for n, c in connectors.items() if isinstance(c, GithubConnector) and c.app_id}
    if name is not None:
        if name not in apps:
            fail(f"no GitHub App connector named {name!r} in ghapplets.yaml", EXIT_USAGE)
        return name, apps[name]
    if len(apps) != 1:
        problem = "no GitHub App connector" if not apps else "several: name one with --connector"
        fail(f"the project has {problem}", EXIT_USAGE)
    return next(iter(apps.items()))


async def _catch_up(
    project: Path | None, data: Path | None, name: str | None, since: float, dry_run: bool
) -> CatchUpReport:
    config = project_config(project)
    chosen, settings = _connector(dict(config.connectors), name)
    async with backends(project, data) as b:
        plain = await resolved(settings, b.secrets.lookup(Reader.connector(chosen)))
        github = GitHub(chosen, plain, tokens=TokenCache.of(b.vault))
        try:
            return await catch_up(github, b.store.has_delivery, since=since, dry_run=dry_run)
        finally:
            await github.aclose()


@app.command("catch-up")
def catch_up_command(
    since: str = typer.Option("24h", help="How far back: 90m, 6h, 3d, or an ISO 8601 time."),
    connector: str | None = typer.Option(
        None, help="The GitHub App connector (default: the project's only one)."
    ),
    dry_run: bool = typer.Option(False, help="Show what would be redelivered; ask nothing."),
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Redeliver the App's failed webhooks of the window that the store does not hold; exit 0,
    75 when GitHub is unavailable (try again), 1 when it refused (not an App, a bad key)."""
    try:
        start = parse_since(since, time.time())
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    try:
        report = run(_catch_up(project, data, connector, start, dry_run))
    except AppletError as exc:
        typer.echo(f"error: {exc.type}: {exc.message}", err=True)
        raise typer.Exit(EXIT_RETRYABLE if exc.retryable else 1) from None
    except GhappletsError as exc:
        fail(str(exc), 1)
    if as_json:
        print_json_lines([report.to_json()])
        return
    verb = "would redeliver" if dry_run else "redelivered"
    console.print(
        f"{report.listed} deliveries listed, {report.failed} webhook(s) never delivered: "
        f"{len(report.redelivered)} {verb}, {len(report.held)} already stored"
    )
    for guid in report.redelivered:
        console.print(f"  {verb} {guid}")
    for error in report.errors:
        console.print(f"  [red]refused[/red] {error}")
    if report.errors:
        raise typer.Exit(1)
