"""``ghapplets secrets``: set, get (masked unless --reveal), list, remove, rotate the key, and
the audit log of reads.

Every command works on the backend ``secrets.backend`` names (the embedded store, OpenBao, or
Kubernetes files, which only read: writes to it exit 2); ``rotate-key`` only on the embedded
one, whose values the secrets key encrypts. ``get`` is a read like any other: it is audited as
``cli``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.table import Table

from ghapplets.cli.project import (
    DataDirOpt,
    JsonOpt,
    ProjectOpt,
    backends,
    console,
    data_dir,
    fail,
    literal,
    print_json_lines,
    project_config,
    run,
    with_backends,
)
from ghapplets.exceptions import GhappletsError, InvalidSecret, NotFound, SecretKeyError
from ghapplets.secrets.config import BackendKind
from ghapplets.secrets.crypto import (
    KEY_ENV,
    KEY_FILE,
    NEW_KEY_FILE,
    OLD_KEY_FILE,
    generate_key,
    install_new_key,
    key_id,
    read_key_file,
    write_key_file,
)
from ghapplets.secrets.scopes import Scope
from ghapplets.secrets.vault import Rotation
from ghapplets.store.records import SecretReadRecord

app = typer.Typer(
    help="Secrets (tokens, webhook secrets, keys) and the audit log of their reads.",
    no_args_is_help=True,
)


def _mask(value: str) -> str:
    return "*" * 8 + (f" ({len(value)} characters)" if value else "")


def _scope(text: str | None) -> Scope | None:
    if text is None:
        return None
    try:
        return Scope.parse(text)
    except InvalidSecret as exc:
        fail(str(exc), 2)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _external(project: Path | None) -> bool:
    """Are the values kept outside the store? Then reading them needs no data there yet: the
    store is made, if need be, for the audit log (the embedded store refuses to start one on a
    read, which could only fail)."""
    return project_config(project).secrets.backend != BackendKind.EMBEDDED


ScopeOpt = typer.Option(
    None,
    "--scope",
    help="The secret of this scope (global, applet:<name>); default: the embedded store's "
    "secret of that name whatever its scope, OpenBao's and Kubernetes' global one.",
)


@app.command("set")
def set_secret(
    name: str = typer.Argument(..., help="Secret name, e.g. github-webhook."),
    value: str | None = typer.Option(
        None, "--value", help="The value (prefer stdin or the prompt: shells keep history)."
    ),
    scope: str | None = typer.Option(
        None,
        help="global, applet:<name> or blueprint:<name> (default: on the embedded store the "
        "secret's scope if it exists, else global; on OpenBao global).",
    ),
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """Store NAME in the secrets backend (encrypted, on the embedded store). The value comes
    from --value, standard input, or a hidden prompt."""
    if value is None:
        if sys.stdin.isatty():
            value = typer.prompt(f"value for {name}", hide_input=True, confirmation_prompt=True)
        else:
            value = sys.stdin.read().rstrip("\r\n")

    where = _scope(scope)
    try:  # a malformed key exits 3 from run(), a backend that only reads 2
        stored = with_backends(
            project,
            data,
            lambda b: b.secret_backend.set(name, value or "", where),
            create=True,
        )
    except ValueError as exc:
        fail(str(exc), 2)
    console.print(f"stored secret [bold]{literal(name)}[/] ({literal(stored)})")


@app.command("get")
def get_secret(
    name: str = typer.Argument(...),
    reveal: bool = typer.Option(False, "--reveal", help="Print the value itself."),
    scope: str | None = ScopeOpt,
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """Show that NAME exists; print its value only with --reveal. Audited as a read by cli."""

    where = _scope(scope)
    try:  # a wrong or malformed key exits 3 from run()
        value = with_backends(
            project, data, lambda b: b.secrets.get(name, where), create=_external(project)
        )
    except NotFound as exc:
        fail(str(exc), 4)
    except InvalidSecret as exc:
        fail(str(exc), 2)
    if reveal:
        sys.stdout.write(value + "\n")
    else:
        console.print(f"{literal(name)}: {_mask(value)}  (use --reveal to print it)")


@app.command("list")
def list_secrets(
    as_json: bool = JsonOpt, project: Path | None = ProjectOpt, data: Path | None = DataDirOpt
) -> None:
    """List secret names and scopes (never values)."""

    rows = with_backends(
        project, data, lambda b: b.secret_backend.list(), create=_external(project)
    )
    if as_json:
        print_json_lines(
            [
                {
                    "name": r.name,
                    "scope": r.scope,
                    "created_at": r.created_at,
                    "updated_at": r.updated_at,
                    "key_id": r.key_id,
                }
                for r in rows
            ]
        )
        return
    embedded = not _external(project)
    table = Table("name", "scope", "updated", "key")
    for r in rows:
        table.add_row(
            literal(r.name),
            literal(r.scope),
            _when(r.updated_at),
            r.key_id or ("(before key ids)" if embedded else "-"),
        )
    console.print(table)


@app.command("rm")
def remove_secret(
    name: str = typer.Argument(...),
    scope: str | None = ScopeOpt,
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """Delete NAME (on OpenBao: every version of it, as 'bao kv metadata delete')."""

    where = _scope(scope)
    try:
        removed = with_backends(
            project, data, lambda b: b.secret_backend.delete(name, where), create=_external(project)
        )
    except InvalidSecret as exc:
        fail(str(exc), 2)
    if not removed:
        fail(f"no secret named {name!r}" + (f" of scope {where}" if where else ""), 4)
    console.print(f"removed secret [bold]{literal(name)}[/]")


def _random_key() -> bytes:
    return base64.urlsafe_b64decode(generate_key())


def _read_given_key(path: Path) -> bytes:
    try:
        return read_key_file(path)
    except SecretKeyError as exc:
        fail(str(exc), 2)


def _target_key(
    folder: Path, in_env: bool, given: bytes | None, new_key_file: Path | None
) -> tuple[bytes, Path | None]:
    """The key to rotate to, written down before any secret is re-encrypted with it, and the
    file this run wrote it to (to remove if the rotation does not happen)."""
    if in_env:
        target = given if given is not None else _random_key()
        if new_key_file is None:
            return target, None
        try:
            write_key_file(new_key_file, target)
        except FileExistsError:
            fail(f"{new_key_file} exists: name a new file for the new key", 2)
        return target, new_key_file
    pending = folder / NEW_KEY_FILE
    if pending.exists():  # a rotation was interrupted: finish it, to the same key
        target = read_key_file(pending)
        if given is not None and given != target:
            fail(
                f"{pending} is left from an interrupted rotation: run rotate-key without "
                "--key-file to finish it first",
                2,
            )
        console.print(f"finishing the rotation to the key in {literal(pending)}")
        return target, None
    target = given if given is not None else _random_key()
    write_key_file(pending, target)
    return target, pending


async def _rotate(
    project: Path | None, data: Path | None, target: bytes, staged: Path | None, in_env: bool
) -> tuple[str, Rotation]:
    """Re-encrypt every secret under ``target``; the id of the key before, and what was done.
    ``staged`` (the key file this run wrote) is removed if the secrets did not change."""
    attempted = False
    try:
        async with backends(project, data) as b:
            was = b.vault.keys.current.key_id
            attempted = True
            try:
                return was, await b.vault.rotate(target)
            except GhappletsError as exc:
                code = 3 if isinstance(exc, SecretKeyError) else 1
                try:  # a lost answer may hide a commit: is any secret under the new key?
                    used = await b.vault.uses_key(key_id(target))
                except GhappletsError:
                    used = True
                if not used:
                    if staged is not None:
                        await asyncio.to_thread(staged.unlink, missing_ok=True)
                    fail(f"{exc}; the secrets were not changed", code)
                again = "--key-file FILE-WITH-THE-NEW-KEY" if in_env else "(it finishes)"
                fail(f"{exc}; the rotation may have committed: run rotate-key again {again}", code)
    except BaseException:
        if staged is not None and not attempted:
            await asyncio.to_thread(staged.unlink, missing_ok=True)
        raise


@app.command("rotate-key")
def rotate_key(
    key_file: Path | None = typer.Option(
        None,
        "--key-file",
        help="Re-encrypt under the key in this file instead of a new random one "
        "(e.g. secret.key.old, to roll back).",
    ),
    new_key_file: Path | None = typer.Option(
        None,
        "--new-key-file",
        help=f"With {KEY_ENV} set: write the new random key to this new file (mode 0600).",
    ),
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """Re-encrypt every secret under a new key, in one transaction, and replace the key.

    With the key in <data dir>/secret.key: the new key is written to secret.key.new first, the
    secrets are re-encrypted, then secret.key is replaced (the previous key kept as
    secret.key.old). With GHAPPLETS_SECRET_KEY set, give --new-key-file (or --key-file) and set
    the variable to the new key everywhere afterwards. The key itself is never printed."""
    backend = project_config(project).secrets.backend
    if backend != BackendKind.EMBEDDED:
        fail(
            f"secrets.backend is {backend}: the values are kept (and encrypted) there, not with "
            "the secrets key, so there is nothing to re-encrypt; the key now protects only the "
            "connectors' token cache, which a new key simply empties",
            2,
        )
    folder = data_dir(project, data)
    in_env = bool(os.environ.get(KEY_ENV))
    if key_file is not None and new_key_file is not None:
        fail("give --key-file (a key you have) or --new-key-file (where to put a new one)", 2)
    if in_env and key_file is None and new_key_file is None:
        fail(
            f"the key is in {KEY_ENV}, so the new key cannot replace a key file: give "
            "--new-key-file PATH (a new random key is written there, owner-only, before any "
            f"secret is re-encrypted; then set {KEY_ENV} to it everywhere) or --key-file PATH",
            2,
        )
    if not in_env and new_key_file is not None:
        fail(
            f"--new-key-file is for a key in {KEY_ENV}; without it the new key replaces "
            f"{folder / KEY_FILE} (use --key-file to choose the key)",
            2,
        )
    if not in_env and not (folder / KEY_FILE).exists():
        fail(f"no key to rotate: {folder / KEY_FILE} does not exist and {KEY_ENV} is not set", 4)
    given = _read_given_key(key_file) if key_file is not None else None
    target, staged = _target_key(folder, in_env, given, new_key_file)
    was, done = run(_rotate(project, data, target, staged, in_env))
    if not in_env:
        install_new_key(folder)
    plural = "" if done.count == 1 else "s"
    upgraded = f"; {done.upgraded} from the v1 format" if done.upgraded else ""
    lines = [
        f"re-encrypted {done.count} secret{plural} under key {done.key_id} (was {was}{upgraded})"
    ]
    if in_env:
        where = literal(new_key_file or key_file)
        lines += [
            f"now set {KEY_ENV} to the key in {where} for every process and restart them "
            "(until then they cannot read the secrets; jobs that need one are retried), then "
            "delete that file",
            "To roll back: ghapplets secrets rotate-key --key-file FILE-WITH-THE-PREVIOUS-KEY",
        ]
    else:
        old = literal(folder / OLD_KEY_FILE)
        lines += [
            f"{literal(folder / KEY_FILE)} holds the new key; the previous one is kept in "
            f"{old}. Processes that read the key file pick up the new key by themselves.",
            f"To roll back: ghapplets secrets rotate-key --key-file {old}",
            f"Delete {old} once every process runs with the new key and the new key is backed up.",
        ]
    for line in lines:
        console.print(line, soft_wrap=True)


_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _since(text: str) -> float:
    """``--since``: a time ago (``30m``, ``12h``, ``7d``, ``2w``) or a date or time in ISO 8601
    (``2026-05-01``, ``2026-05-01T10:00``, with a zone or read as UTC); epoch seconds."""
    match = _DURATION_RE.match(text.strip())
    if match:
        return time.time() - float(match.group(1)) * _SECONDS[match.group(2)]
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        fail(f"--since {text!r}: give a time ago (30m, 12h, 7d) or an ISO date or time", 2)
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _read_row(r: SecretReadRecord) -> dict[str, object]:
    row = r.to_dict()
    del row["id"]
    return row


@app.command("audit")
def audit(
    name: str | None = typer.Option(None, "--name", help="Only reads of this secret."),
    since: str | None = typer.Option(
        None, "--since", help="Only reads since then: 30m, 12h, 7d, or an ISO date or time."
    ),
    limit: int = typer.Option(100, min=1, max=100_000, help="At most this many lines."),
    as_json: bool = JsonOpt,
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """List the audit log of secret reads, newest first (never a value).

    Each line: when, who read (applet:<name>, source:<name>, connector:<name>, cli), which
    secret, the scope it was found in, from which backend, and how the read ended (ok,
    not_found, denied, invalid, failed); reads alike made together are one line with a count."""
    after = None if since is None else _since(since)
    rows = with_backends(
        project,
        data,
        lambda b: b.secret_store.list_secret_reads(name=name, since=after, limit=limit),
    )
    if as_json:
        print_json_lines([_read_row(r) for r in rows])
        return
    table = Table("at", "reader", "secret", "scope", "backend", "outcome", "count")
    for r in rows:
        table.add_row(
            _when(r.at),
            literal(r.reader),
            literal(r.name),
            literal(r.scope or "-"),
            literal(r.backend),
            literal(r.outcome),
            str(r.count),
        )
    console.print(table)
