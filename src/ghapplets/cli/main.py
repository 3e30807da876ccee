"""The ``ghapplets`` command: one Typer app with a sub-command per task."""

from __future__ import annotations

import os

import typer

from ghapplets import __version__, crashpoints
from ghapplets.cli import (
    action,
    actions,
    backup,
    debug,
    export,
    fakes,
    github,
    init,
    invoke,
    records,
    run_blueprint,
    runs,
    secrets_cmd,
    send,
    serve,
    tokens,
    validate,
)
from ghapplets.exceptions import ConfigError

app = typer.Typer(
    name="ghapplets",
    help="Ghapplets: verified webhooks, a durable queue, and applets in any language.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command()(init.init)
app.command()(serve.serve)
app.command()(serve.gateway)
app.command()(serve.worker)
app.command()(send.send)
app.command()(invoke.invoke)
app.command()(validate.validate)
app.command(name="run")(run_blueprint.run_blueprint)
app.command()(records.replay)
app.command()(fakes.fakes)
app.command()(actions.actions)
app.command()(action.action)
app.command()(backup.backup)
app.command()(backup.restore)
app.add_typer(records.deliveries_app, name="deliveries")
app.add_typer(records.jobs_app, name="jobs")
app.add_typer(runs.app, name="runs")
app.add_typer(secrets_cmd.app, name="secrets")
app.add_typer(tokens.app, name="tokens")
app.add_typer(debug.app, name="debug")
app.add_typer(github.app, name="github")
app.add_typer(export.app, name="export")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ghapplets {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Ghapplets command line."""
    try:
        crashpoints.arm(os.environ.get(crashpoints.CRASH_ENV))
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def main() -> None:
    app()
