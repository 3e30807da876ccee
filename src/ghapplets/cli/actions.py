"""``ghapplets actions``: the action catalog, with each action's input schema."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from ghapplets.cli.project import JsonOpt, print_json_lines
from ghapplets.connectors.catalog import catalog


def actions(as_json: bool = JsonOpt) -> None:
    """List the actions applets can call (ctx.action, ghapplets action), with their input."""
    found = catalog()
    if as_json:
        print_json_lines(
            [
                {
                    "name": a.name,
                    "connector": a.kind.value,
                    "summary": a.summary,
                    "input": a.schema,
                    "output": a.output,
                }
                for a in found
            ]
        )
        return
    table = Table("action", "input (* required)", "summary")
    for a in found:
        required = set(a.schema["required"])
        fields = [f"{k}*" if k in required else k for k in a.schema["properties"]]
        table.add_row(a.name, ", ".join(fields), a.summary)
    Console().print(table)
    typer.echo("the input schemas in full: ghapplets actions --json")
