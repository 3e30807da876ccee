"""``ghapplets validate``: check the config and every applet manifest, with located errors."""

from __future__ import annotations

from pathlib import Path

import typer

from ghapplets.applets.loader import discover
from ghapplets.cli.project import ProjectOpt, console, errors, load
from ghapplets.config.located import ConfigError


def validate(project: Path | None = ProjectOpt) -> None:
    """Validate ghapplets.yaml and the applets it lists; exit 3 with file:line:col errors."""
    loaded = load(project)
    try:
        specs = discover(loaded.config.applet_dirs())
    except ConfigError as exc:
        for problem in exc.problems:
            errors.print(f"[red]{problem}[/]", soft_wrap=True)
        raise typer.Exit(3) from None
    console.print(
        f"[green]ok[/] {loaded.path}: {len(loaded.sources)} source(s), {len(specs)} applet(s)"
    )
    for spec in specs:
        subs = ", ".join(s.type + (f" when {s.when}" if s.when else "") for s in spec.on)
        console.print(f"  {spec.name} ({spec.runtime}): {subs or 'no subscriptions'}")
