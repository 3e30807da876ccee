"""``ghapplets validate``: check the config, every applet manifest and every blueprint, with
located errors; ``ghapplets validate FILE`` checks one blueprint file.

``--format`` says how: ``text`` (``file:line:col: key: message`` on stderr, a summary of what is
valid on stdout), ``json`` (one document on stdout: what was checked and every problem) or
``github`` (a GitHub Actions ``::error`` workflow command per problem, so each one annotates
its line in a pull request). Each problem is formatted in :mod:`ghapplets.cli.problems`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import typer

from ghapplets.applets.loader import discover
from ghapplets.applets.model import AppletSpec
from ghapplets.blueprints.checks import project_catalog
from ghapplets.blueprints.loader import Blueprint, load_blueprint, load_blueprints
from ghapplets.cli.problems import (
    ProblemFormat,
    as_github,
    as_json,
    as_text,
    shown_path,
    workflow_command,
)
from ghapplets.cli.project import EXIT_CONFIG, ProjectOpt, console, errors, literal
from ghapplets.config.loader import CONFIG_FILE, LoadedConfig, find_config, load_config
from ghapplets.exceptions import ConfigError


@dataclass
class Checked:
    """What one ``validate`` looked at, and what it found wrong. ``None``: not reached (an
    earlier problem stopped it)."""

    config: Path | None = None
    sources: int | None = None
    applets: list[AppletSpec] | None = None
    blueprints: list[Blueprint] | None = None
    file: Path | None = None  # validate FILE: the blueprint file
    notes: list[str] = field(default_factory=list)
    problems: list[object] = field(default_factory=list)


FormatOpt = typer.Option(
    ProblemFormat.TEXT,
    "--format",
    help="text: file:line:col: key: message; json: one document with what was checked and "
    "each problem; github: GitHub Actions ::error annotations.",
    case_sensitive=False,
)


def validate(
    file: Path | None = typer.Argument(
        None, help="One blueprint file to check (a project around it is optional)."
    ),
    project: Path | None = ProjectOpt,
    format: ProblemFormat = FormatOpt,
) -> None:
    """Validate ghapplets.yaml, its applets and blueprints (or one blueprint FILE); exit 3 with
    located errors."""
    checked = _check_file(file, project) if file is not None else _check_project(project)
    match format:
        case ProblemFormat.TEXT:
            _print_text(checked)
        case ProblemFormat.JSON:
            _print_json(checked)
        case ProblemFormat.GITHUB:
            _print_github(checked)
    if checked.problems:
        raise typer.Exit(EXIT_CONFIG)


def _load_config(project: Path | None, checked: Checked) -> LoadedConfig | None:
    """The project's config (``checked.config`` names its file), or None with the problems."""
    path = (project or Path.cwd()).resolve()
    if path.is_dir() and not (path / CONFIG_FILE).exists():
        checked.problems.append(
            f"no {CONFIG_FILE} in {path} (run 'ghapplets init' to create a project)"
        )
        return None
    checked.config = find_config(path)
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        checked.problems.extend(exc.problems)
        return None
    checked.sources = len(loaded.sources)
    checked.notes = list(loaded.config.deprecations())
    return loaded


def _check_project(project: Path | None) -> Checked:
    checked = Checked()
    loaded = _load_config(project, checked)
    if loaded is None:
        return checked
    try:
        specs = discover(loaded.config.applet_dirs(), connectors=loaded.config.connectors)
        checked.applets = specs
        checked.blueprints = load_blueprints(loaded.config.blueprint_dirs(), project_catalog(specs))
    except ConfigError as exc:
        checked.problems.extend(exc.problems)
    return checked


def _check_file(file: Path, project: Path | None) -> Checked:
    checked = Checked(file=file)
    catalog = None
    root = project or (Path.cwd() if (Path.cwd() / CONFIG_FILE).exists() else None)
    if root is not None:
        loaded = _load_config(root, checked)
        if loaded is None:
            return checked
        try:
            specs = discover(loaded.config.applet_dirs(), connectors=loaded.config.connectors)
        except ConfigError as exc:
            checked.problems.extend(exc.problems)
            return checked
        checked.applets = specs
        catalog = project_catalog(specs)
    try:
        checked.blueprints = [load_blueprint(file, catalog)]
    except ConfigError as exc:
        checked.problems.extend(exc.problems)
    return checked


def _summary(checked: Checked) -> str:
    if checked.file is not None:
        return f"[green]ok[/] {literal(checked.file)}"
    return (
        f"[green]ok[/] {literal(checked.config)}: {checked.sources} source(s), "
        f"{len(checked.applets or [])} applet(s), {len(checked.blueprints or [])} blueprint(s)"
    )


def _print_text(checked: Checked) -> None:
    if checked.problems:
        for problem in checked.problems:
            errors.print(f"[red]{literal(as_text(problem))}[/]", soft_wrap=True)
        return
    console.print(_summary(checked), soft_wrap=True)
    for note in checked.notes:
        console.print(f"[yellow]note:[/] {literal(note)}", soft_wrap=True)
    if checked.file is None:
        for spec in checked.applets or []:
            subs = ", ".join(s.type + (f" when {s.when}" if s.when else "") for s in spec.on)
            console.print(
                f"  {literal(spec.name)} ({spec.runtime}): {literal(subs or 'no subscriptions')}",
                soft_wrap=True,
            )
    for blueprint in checked.blueprints or []:
        tasks = len(blueprint.definition.get("do") or [])
        console.print(
            f"  {literal(blueprint.namespace)}/{literal(blueprint.name)} "
            f"{literal(blueprint.version)}: {tasks} task(s)",
            soft_wrap=True,
        )


def _document(checked: Checked) -> dict[str, Any]:
    """``--format json``: whether it is valid, what was checked (paths relative to the current
    folder when inside it; ``null``: not reached) and each problem."""

    def path(p: Path | None) -> str | None:
        return None if p is None else shown_path(p)

    applets = None
    if checked.applets is not None:
        applets = [
            {"name": s.name, "runtime": s.runtime, "folder": path(s.folder)}
            for s in checked.applets
        ]
    blueprints = None
    if checked.blueprints is not None:
        blueprints = [
            {
                "namespace": b.namespace,
                "name": b.name,
                "version": b.version,
                "file": path(b.path),
                "tasks": len(b.definition.get("do") or []),
            }
            for b in checked.blueprints
        ]
    return {
        "valid": not checked.problems,
        "checked": {
            "config": path(checked.config),
            "file": path(checked.file),
            "sources": checked.sources,
            "applets": applets,
            "blueprints": blueprints,
        },
        "notes": checked.notes,
        "problems": [as_json(p) for p in checked.problems],
    }


def _print_json(checked: Checked) -> None:
    out = sys.stdout.buffer
    out.write(orjson.dumps(_document(checked)) + b"\n")
    out.flush()


def _print_github(checked: Checked) -> None:
    """One ``::error`` per problem and a ``::warning`` per deprecation note, on stdout (where
    the runner reads workflow commands), then the summary when valid."""
    lines = [as_github(p) for p in checked.problems]
    config = None if checked.config is None else shown_path(checked.config)
    lines += [workflow_command("warning", note, file=config) for note in checked.notes]
    if lines:
        typer.echo("\n".join(lines))
    if not checked.problems:
        console.print(_summary(checked), soft_wrap=True)
