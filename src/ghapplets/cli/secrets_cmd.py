"""``ghapplets secrets``: set, get (masked unless --reveal), list and remove stored secrets."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.table import Table

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
from ghapplets.exceptions import NotFound

app = typer.Typer(help="Encrypted secrets: tokens, webhook secrets, keys.", no_args_is_help=True)


def _mask(value: str) -> str:
    return "*" * 8 + (f" ({len(value)} characters)" if value else "")


@app.command("set")
def set_secret(
    name: str = typer.Argument(..., help="Secret name, e.g. github-webhook."),
    value: str | None = typer.Option(
        None, "--value", help="The value (prefer stdin or the prompt: shells keep history)."
    ),
    scope: str = typer.Option("global", help="global, applet:<name> or blueprint:<name>."),
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """Store NAME encrypted. The value comes from --value, standard input, or a hidden prompt."""
    if value is None:
        if sys.stdin.isatty():
            value = typer.prompt(f"value for {name}", hide_input=True, confirmation_prompt=True)
        else:
            value = sys.stdin.read().rstrip("\r\n")

    try:  # a malformed key exits 3 from run()
        with_backends(project, data, lambda b: b.vault.set(name, value or "", scope), create=True)
    except ValueError as exc:
        fail(str(exc), 2)
    console.print(f"stored secret [bold]{literal(name)}[/] ({literal(scope)})")


@app.command("get")
def get_secret(
    name: str = typer.Argument(...),
    reveal: bool = typer.Option(False, "--reveal", help="Print the value itself."),
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """Show that NAME exists; print its value only with --reveal."""

    try:  # a wrong or malformed key exits 3 from run()
        value = with_backends(project, data, lambda b: b.vault.get(name))
    except NotFound as exc:
        fail(str(exc), 4)
    if reveal:
        sys.stdout.write(value + "\n")
    else:
        console.print(f"{literal(name)}: {_mask(value)}  (use --reveal to print it)")


@app.command("list")
def list_secrets(
    as_json: bool = JsonOpt, project: Path | None = ProjectOpt, data: Path | None = DataDirOpt
) -> None:
    """List secret names and scopes (never values)."""

    rows = with_backends(project, data, lambda b: b.vault.list())
    if as_json:
        print_json_lines(
            [
                {
                    "name": r.name,
                    "scope": r.scope,
                    "created_at": r.created_at,
                    "updated_at": r.updated_at,
                }
                for r in rows
            ]
        )
        return
    table = Table("name", "scope", "updated")
    for r in rows:
        table.add_row(
            literal(r.name),
            literal(r.scope),
            datetime.fromtimestamp(r.updated_at, UTC).strftime("%Y-%m-%d %H:%M:%S"),
        )
    console.print(table)


@app.command("rm")
def remove_secret(
    name: str = typer.Argument(...),
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """Delete NAME."""

    if not with_backends(project, data, lambda b: b.vault.delete(name)):
        fail(f"no secret named {name!r}", 4)
    console.print(f"removed secret [bold]{literal(name)}[/]")
