"""``ghapplets debug``: what the platform can tell about itself for tests and diagnosis."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ghapplets.cli.project import JsonOpt, print_json_lines
from ghapplets.crashpoints import CRASH_ENV, POINTS

app = typer.Typer(help="Diagnostics for tests and operators.", no_args_is_help=True)


@app.command("crash-points")
def crash_points(as_json: bool = JsonOpt) -> None:
    """List the crash points that GHAPPLETS_CRASH_AT=<point>[:<n>] can stop a process at."""
    if as_json:
        print_json_lines(
            [
                {"name": p.point.value, "roles": [r.value for r in p.roles], "durable": p.durable}
                for p in POINTS
            ]
        )
        return
    table = Table("point", "roles", "durable there", title=escape(f"{CRASH_ENV}=<point>[:<n>]"))
    for p in POINTS:
        table.add_row(p.point.value, ", ".join(p.roles), p.durable)
    Console().print(table)
