"""``ghapplets validate``: check the config, every applet manifest and every blueprint, with
located errors; ``ghapplets validate FILE`` checks one blueprint file."""

from __future__ import annotations

from pathlib import Path

import typer

from ghapplets.applets.loader import discover
from ghapplets.blueprints.checks import project_catalog
from ghapplets.blueprints.loader import Blueprint, load_blueprint, load_blueprints
from ghapplets.cli.project import (
    EXIT_CONFIG,
    ProjectOpt,
    console,
    literal,
    load,
    print_problems,
)
from ghapplets.config.loader import CONFIG_FILE
from ghapplets.exceptions import ConfigError


def validate(
    file: Path | None = typer.Argument(
        None, help="One blueprint file to check (a project around it is optional)."
    ),
    project: Path | None = ProjectOpt,
) -> None:
    """Validate ghapplets.yaml, its applets and blueprints (or one blueprint FILE); exit 3 with
    file:line:col errors."""
    if file is not None:
        _one_blueprint(file, project)
        return
    loaded = load(project)
    try:
        specs = discover(loaded.config.applet_dirs(), connectors=loaded.config.connectors)
        catalog = project_catalog(specs)
        blueprints = load_blueprints(loaded.config.blueprint_dirs(), catalog)
    except ConfigError as exc:
        print_problems(exc)
        raise typer.Exit(EXIT_CONFIG) from None
    console.print(
        f"[green]ok[/] {literal(loaded.path)}: {len(loaded.sources)} source(s), "
        f"{len(specs)} applet(s), {len(blueprints)} blueprint(s)",
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
    for blueprint in blueprints:
        _describe(blueprint)


def _one_blueprint(file: Path, project: Path | None) -> None:
    catalog = None
    root = project or (Path.cwd() if (Path.cwd() / CONFIG_FILE).exists() else None)
    if root is not None:
        loaded = load(root)
        try:
            specs = discover(loaded.config.applet_dirs(), connectors=loaded.config.connectors)
        except ConfigError as exc:
            print_problems(exc)
            raise typer.Exit(EXIT_CONFIG) from None
        catalog = project_catalog(specs)
    try:
        blueprint = load_blueprint(file, catalog)
    except ConfigError as exc:
        print_problems(exc)
        raise typer.Exit(EXIT_CONFIG) from None
    console.print(f"[green]ok[/] {literal(file)}", soft_wrap=True)
    _describe(blueprint)


def _describe(blueprint: Blueprint) -> None:
    tasks = len(blueprint.definition.get("do") or [])
    console.print(
        f"  {literal(blueprint.namespace)}/{literal(blueprint.name)} "
        f"{literal(blueprint.version)}: {tasks} task(s)",
        soft_wrap=True,
    )
