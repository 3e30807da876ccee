"""``ghapplets tokens``: create, list and revoke the admin API's bearer tokens.

``create`` prints the token once, as the last line of standard output (what it made goes to
standard error before it), so ``TOKEN=$(ghapplets tokens create ci --role operator)`` works;
only its hash is stored. Each change is written to the admin API's audit log as ``cli:<user>``.
"""

from __future__ import annotations

import getpass
import re
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.table import Table

from ghapplets.admin.audit import AuditAction, audited
from ghapplets.admin.tokens import TOKEN_NAME_PATTERN, NewToken, TokenStore
from ghapplets.backends import Backends
from ghapplets.cli.project import (
    EXIT_FAILURE,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    DataDirOpt,
    JsonOpt,
    ProjectOpt,
    console,
    errors,
    fail,
    literal,
    print_json_lines,
    with_backends,
)
from ghapplets.exceptions import AlreadyExists, NotFound
from ghapplets.store.records import ApiTokenRecord, Role

app = typer.Typer(help="Create, list and revoke the admin API's bearer tokens.")


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (a container's arbitrary user)
        return "cli"


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


def _row(t: ApiTokenRecord) -> dict[str, object]:
    return {
        "id": t.id,
        "name": t.name,
        "role": t.role.value,
        "created_at": t.created_at,
        "last_used_at": t.last_used_at,
        "revoked_at": t.revoked_at,
    }


@app.command("create")
def create(
    name: str = typer.Argument(..., help="A name for the token (who or what uses it)."),
    role: Role = typer.Option(..., "--role", help="viewer | operator | admin"),
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """Make a token and print it once, as the last line (only its hash is kept)."""
    if not re.match(TOKEN_NAME_PATTERN, name):
        fail(f"{name!r} is not a token name: letters, digits and _.@- (up to 64)", EXIT_USAGE)

    async def go(b: Backends) -> NewToken:
        tokens = TokenStore(b.store)
        return await audited(
            b.store,
            _actor(),
            AuditAction.TOKEN_CREATE,
            name,
            lambda: tokens.create(name, role),
            detail=lambda made: {"role": made.record.role.value, "id": made.record.id},
        )

    try:
        new = with_backends(project, data, go, create=True)
    except AlreadyExists as exc:
        fail(str(exc), EXIT_FAILURE)
    errors.print(
        f"token {literal(name)} ({role.value}) created; it is shown once, below: keep it now",
        soft_wrap=True,
    )
    print(new.token, flush=True)


@app.command("list")
def list_tokens(
    as_json: bool = JsonOpt,
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """List the tokens (never a token itself): name, role, when made, last used, revoked."""
    found = with_backends(project, data, lambda b: TokenStore(b.store).list())
    if as_json:
        print_json_lines([_row(t) for t in found])
        return
    table = Table("name", "role", "created", "last used", "revoked")
    for t in found:
        table.add_row(
            literal(t.name),
            t.role.value,
            _when(t.created_at),
            _when(t.last_used_at),
            _when(t.revoked_at),
        )
    console.print(table)


@app.command("revoke")
def revoke(
    name: str = typer.Argument(..., help="The token's name."),
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """Revoke a token: the API refuses it from now on."""

    async def go(b: Backends) -> ApiTokenRecord:
        tokens = TokenStore(b.store)
        return await audited(
            b.store, _actor(), AuditAction.TOKEN_REVOKE, name, lambda: tokens.revoke(name)
        )

    try:
        with_backends(project, data, go)
    except NotFound as exc:
        fail(str(exc), EXIT_NOT_FOUND)
    console.print(f"token {literal(name)} revoked")
