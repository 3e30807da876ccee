"""``ghapplets init``: scaffold a project with example applets, a test and a webhook secret."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import typer

from ghapplets.cli.project import DataDirOpt, backends, console, data_dir, fail, run
from ghapplets.scaffold import scaffold
from ghapplets.secrets.crypto import load_or_create_key

WEBHOOK_SECRET_NAME = "github-webhook"  # noqa: S105 - a name, not a value


def init(
    folder: Path = typer.Argument(Path("."), help="Folder to create the project in."),
    name: str | None = typer.Option(None, help="Project name (default: the folder's name)."),
    force: bool = typer.Option(False, "--force", help="Overwrite files that exist."),
    data: Path | None = DataDirOpt,
) -> None:
    """Create ghapplets.yaml, a Python and a shell applet, their tests, and a webhook secret."""
    folder = folder.resolve()
    project = name or re.sub(r"[^a-z0-9_.-]+", "-", folder.name.lower()).strip("-.") or "ghapplets"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        written = scaffold(folder, project, force=force)
    except FileExistsError as exc:
        fail(str(exc), 1)
    target = data_dir(folder, data)
    load_or_create_key(target)
    webhook_secret = secrets.token_urlsafe(32)

    async def store_secret() -> None:
        async with backends(folder, data) as b:
            await b.vault.set(WEBHOOK_SECRET_NAME, webhook_secret)

    run(store_secret())
    for path in written:
        console.print(f"  created {path.relative_to(folder)}")
    console.print(
        f"\nProject [bold]{project}[/] is ready in {folder}.\n"
        f"A webhook secret is stored encrypted as [bold]{WEBHOOK_SECRET_NAME}[/] "
        f"(key in {target}/secret.key; keep it out of version control).\n\n"
        "Next:\n"
        "  ghapplets serve                      # gateway on http://127.0.0.1:8080\n"
        "  ghapplets send issues.opened         # a signed test webhook\n"
        "  ghapplets deliveries                 # what arrived and what ran\n"
        "  pytest tests                         # the applets' tests"
    )
