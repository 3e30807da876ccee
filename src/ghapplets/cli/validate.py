"""``ghapplets validate``: check the config and every applet manifest, with located errors."""

from __future__ import annotations

from pathlib import Path

import typer

from ghapplets.applets.loader import discover
from ghapplets.cli.project import ProjectOpt, console, literal, load, print_problems
from ghapplets.exceptions import ConfigError


def validate(project: Path | None = ProjectOpt) -> None:
    """Validate ghapplets.yaml and the applets it lists; exit 3 with file:line:col errors."""
    loaded = load(project)
    try:
        specs = discover(loaded.config.applet_dirs(), connectors=loaded.config.connectors)
    except ConfigError as exc:
        print_problems(exc)
        raise typer.Exit(3) from None
    console.print(
        f"[green]ok[/] {literal(loaded.path)}: {len(loaded.sources)} source(s), "
        f"{len(specs)} applet(s)",
        soft_wrap=True,
    )
    for note in loaded.config.deprecations():
        console.print(f"[yellow]note:[/] {literal(note)}", soft_wrap=True)
    for spec in specs:
        subs = ", ".join(s.type + (f" when {s.when}" if s.when else "") for s in spec.on)
        console.print(
            f"  {literal(spec.name)} ({spec.runtime}): {literal(subs or 'no subscriptions')}",
            soft_wrap=True,
        )
