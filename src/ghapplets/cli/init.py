"""``ghapplets init``: scaffold a project with example applets, a test and a webhook secret."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

import typer

from ghapplets.applets.model import NAME_PATTERN
from ghapplets.cli.project import DataDirOpt, backends, console, data_dir, fail, literal, run
from ghapplets.exceptions import SecretKeyError
from ghapplets.scaffold import scaffold
from ghapplets.secrets.crypto import KEY_ENV, KEY_FILE, load_or_create_key

WEBHOOK_SECRET_NAME = "github-webhook"  # noqa: S105 - a name, not a value


def project_name(folder: Path) -> str:
    """A valid project name (``NAME_PATTERN``) derived from the folder's name."""
    name = re.sub(r"[^a-z0-9_.-]+", "-", folder.name.lower())
    name = re.sub(r"^[^a-z0-9]+", "", name)[:63].rstrip("-._")
    return name or "ghapplets"


def init(
    folder: Path = typer.Argument(Path("."), help="Folder to create the project in."),
    name: str | None = typer.Option(None, help="Project name (default: the folder's name)."),
    force: bool = typer.Option(False, "--force", help="Overwrite files that exist."),
    data: Path | None = DataDirOpt,
) -> None:
    """Create ghapplets.yaml, a Python and a shell applet, their tests, and a webhook secret."""
    folder = folder.resolve()
    if name is not None and not re.fullmatch(NAME_PATTERN, name):
        fail(f"invalid project name {name!r}: lower-case letters, digits, '_', '.', '-'", 2)
    project = name or project_name(folder)
    target = data_dir(folder, data)
    # check a given or existing key before writing anything
    if os.environ.get(KEY_ENV) or (target / KEY_FILE).exists():
        try:
            load_or_create_key(target, create=False)
        except SecretKeyError as exc:
            fail(str(exc), 3)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        written = scaffold(folder, project, force=force)
    except FileExistsError as exc:
        fail(str(exc), 1)
    load_or_create_key(target)

    async def store_secret() -> bool:
        async with backends(folder, data, create=True) as b:
            if WEBHOOK_SECRET_NAME in {s.name for s in await b.vault.list()}:
                return False  # --force over a project: keep the secret GitHub already has
            await b.vault.set(WEBHOOK_SECRET_NAME, secrets.token_urlsafe(32))
            return True

    created = run(store_secret())
    for path in written:
        console.print(f"  created {literal(path.relative_to(folder))}")
    stored = "is stored encrypted" if created else "was already stored (kept)"
    key = KEY_ENV if os.environ.get(KEY_ENV) else literal(target / KEY_FILE)
    console.print(
        f"\nProject [bold]{literal(project)}[/] is ready in {literal(folder)}.\n"
        f"A webhook secret {stored} as [bold]{WEBHOOK_SECRET_NAME}[/] "
        f"(key in {key}; keep it out of version control).\n\n"
        "Next:\n"
        "  ghapplets serve                      # gateway on http://127.0.0.1:8080\n"
        "  ghapplets send issues.opened         # a signed test webhook\n"
        "  ghapplets deliveries                 # what arrived and what ran\n"
        "  pytest tests                         # the applets' tests"
    )
