"""``ghapplets backup FILE``, ``backup --dir DIR [--keep N]``, ``backup verify FILE`` and
``restore FILE``: a logical archive of the store (``docs/backup.md``). ``--dir`` names the
archive by the time and, with ``--keep``, prunes the older ones (:mod:`ghapplets.backup.rotation`)
once it is written, so a CronJob or a systemd timer runs one command and no script.

Exit codes: 0 ok; 1 the store failed, a server holds the embedded data folder, the target is
not empty (``restore`` without ``--force``), or ``--dir`` could not be created or pruned; 2 a
damaged, truncated or unknown archive, or bad usage; 4 no data (or, with ``--include-key``, no
key) to back up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
from rich.progress import Progress as Bar

from ghapplets.backends import DB_FILE, embedded, open_backends
from ghapplets.backup.archive import Archive, ArchiveWriter, Manifest, private_output, verify
from ghapplets.backup.restore import (
    Loaded,
    load_postgres,
    load_sqlite,
    requeue,
    seed_broker_file,
)
from ghapplets.backup.rotation import archive_name, clear_abandoned, prune
from ghapplets.backup.snapshot import Progress, quiet, snapshot
from ghapplets.backup.tables import KEY_MEMBER, member_of
from ghapplets.cli.project import (
    EXIT_FAILURE,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    DataDirOpt,
    ProjectOpt,
    console,
    data_dir,
    errors,
    fail,
    literal,
    project_config,
    run,
)
from ghapplets.config.models import ProjectConfig
from ghapplets.crashpoints import CrashPoint, reached
from ghapplets.datadir import hold, private_dir
from ghapplets.exceptions import (
    BackupError,
    BackupInvalid,
    DataFolderBusy,
    RestoreRefused,
    SecretKeyError,
    Unavailable,
)
from ghapplets.secrets.crypto import (
    KEY_ENV,
    KEY_FILE,
    OLD_KEY_FILE,
    decode_key,
    encode_key,
    load_keyring,
    load_or_create_key,
    write_key_file,
)
from ghapplets.store.schema import secrets as secrets_table

KEY_WARNING = (
    "the archive holds the secrets key: whoever has it can decrypt every secret in it. "
    "Keep it apart from archives without the key, encrypted, and delete it when done."
)


@contextlib.contextmanager
def progress_bar(verb: str) -> Iterator[Progress]:
    """A progress bar per table on stderr when it is a terminal; otherwise nothing."""
    if not errors.is_terminal:
        yield quiet
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Bar(*columns, console=errors, transient=True) as bar:
        tasks: dict[str, object] = {}

        def update(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(f"{verb} {table}", total=total)
            bar.update(tasks[table], completed=done)  # type: ignore[arg-type]

        yield update


def _counts(counts: dict[str, int], out: Console = console) -> None:
    for table, rows in counts.items():
        out.print(f"  {literal(table):<22} {rows}", highlight=False)


def backup(
    target: str | None = typer.Argument(
        None,
        metavar="FILE",
        help="The archive to write ('-': standard output), or 'verify'. Or give --dir.",
        show_default=False,
    ),
    archive: Path | None = typer.Argument(
        None, metavar="ARCHIVE", help="With 'verify': the archive to check."
    ),
    directory: Path | None = typer.Option(
        None,
        "--dir",
        metavar="DIR",
        help="Write the archive into DIR (created 0700) as ghapplets-<UTC time>.tgz, not FILE.",
    ),
    keep: int | None = typer.Option(
        None,
        "--keep",
        min=1,
        metavar="N",
        help="With --dir: then delete the archives of DIR older than the N newest "
        "(default: keep all).",
        show_default=False,
    ),
    include_key: bool = typer.Option(
        False, "--include-key", help="Put the secrets key in the archive too (a warning says so)."
    ),
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """Write a backup of the store to FILE, or into --dir DIR; 'backup verify FILE' checks an
    archive instead."""
    if target == "verify":
        if archive is None:
            fail("backup verify takes the archive to check: backup verify FILE", EXIT_USAGE)
        if directory is not None or keep is not None:
            fail("backup verify takes no --dir or --keep", EXIT_USAGE)
        _verify(archive)
        return
    _check_usage(target, archive, directory, keep)
    config = project_config(project)
    folder = data_dir(project, data)
    if config.storage.backend == "sqlite" and not (folder / DB_FILE).exists():
        fail(f"no Ghapplets data in {folder} to back up", EXIT_NOT_FOUND)
    path = _destination(target, directory)
    key = _key_to_include(folder) if include_key else None
    manifest = _write(config, folder, path, key)
    report = errors if path is None else console
    shown = str(path) if directory is not None else target
    report.print(
        f"backed up to {literal(shown)}: schema {manifest.schema}, rows per table:", soft_wrap=True
    )
    _counts(manifest.counts, report)
    if directory is not None:
        assert path is not None
        _tidy(path, keep)


def _check_usage(
    target: str | None, archive: Path | None, directory: Path | None, keep: int | None
) -> None:
    if archive is not None:
        fail("backup takes one FILE (to check an archive: backup verify FILE)", EXIT_USAGE)
    if target is not None and directory is not None:
        fail("backup writes to FILE or into --dir DIR, not both", EXIT_USAGE)
    if target is None and directory is None:
        fail("backup needs a FILE to write ('-': standard output), or --dir DIR", EXIT_USAGE)
    if keep is not None and directory is None:
        fail("--keep prunes the archives of a --dir DIR: give --dir too", EXIT_USAGE)


def _destination(target: str | None, directory: Path | None) -> Path | None:
    """Where the archive goes: a file (a new, timestamped one in ``directory``), or ``None``
    for standard output."""
    if directory is not None:
        folder = directory.resolve()
        if folder.exists() and not folder.is_dir():
            fail(f"--dir {folder} is not a folder", EXIT_USAGE)
        try:
            private_dir(folder)
        except OSError as exc:
            fail(f"cannot create the backup folder {folder}: {exc.strerror}", EXIT_FAILURE)
        path = folder / archive_name(datetime.now(UTC))
        if path.exists():  # two backups within one second
            fail(f"{path} exists already: another backup was taken this second", EXIT_FAILURE)
        return path
    assert target is not None  # _check_usage
    if target == "-":
        if sys.stdout.isatty():
            fail("will not write an archive to a terminal: redirect it, or give a FILE", EXIT_USAGE)
        return None
    path = Path(target).resolve()
    if not path.parent.is_dir():
        fail(f"no folder {path.parent} to write {path.name} into", EXIT_USAGE)
    return path


def _write(config: ProjectConfig, folder: Path, path: Path | None, key: bytes | None) -> Manifest:
    """Snapshot the store into an archive at ``path`` (standard output when ``None``)."""
    writer = ArchiveWriter()
    try:
        with progress_bar("reading") as progress:
            try:
                manifest = run(snapshot(config, folder, writer, progress))
            except (BackupError, Unavailable) as exc:
                fail(str(exc), EXIT_FAILURE)
        if key is not None:
            writer.member(KEY_MEMBER).write_bytes(key, rows=1)
            manifest.key = True
            errors.print(f"[bold yellow]warning:[/] {KEY_WARNING}", soft_wrap=True)
        if path is None:
            writer.write(manifest, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            with private_output(path) as out:
                writer.write(manifest, out)
    finally:
        writer.close()
    return manifest


def _tidy(written: Path, keep: int | None) -> None:
    """Delete what backups killed on the way left beside ``written`` and, with ``keep``, the
    archives older than the ``keep`` newest, naming each."""
    folder = written.parent
    try:
        abandoned = clear_abandoned(folder)
        removed = [] if keep is None else prune(folder, keep, written)
    except OSError as exc:
        fail(f"backed up, but could not tidy {folder} up: {exc}", EXIT_FAILURE)
    if abandoned:
        console.print(f"removed {len(abandoned)} unfinished archive(s) of killed backups:")
        for old in abandoned:
            console.print(f"  {literal(old.name)}", highlight=False)
    if removed:
        console.print(f"removed {len(removed)} archive(s) older than the {keep} newest:")
        for old in removed:
            console.print(f"  {literal(old.name)}", highlight=False)


def _key_to_include(folder: Path) -> bytes:
    try:
        key = load_or_create_key(folder, create=False)
    except SecretKeyError as exc:
        fail(f"--include-key: {exc}", EXIT_NOT_FOUND)
    return (encode_key(key) + "\n").encode()


def _verify(path: Path) -> Manifest:
    try:
        manifest = verify(path)
    except BackupInvalid as exc:
        fail(str(exc), EXIT_USAGE)
    key = "with the secrets key" if manifest.key else "without the secrets key"
    console.print(
        f"ok: {literal(path)}: format {manifest.format}, Ghapplets {literal(manifest.ghapplets)}, "
        f"schema {literal(manifest.schema)}, from {literal(manifest.storage)}/"
        f"{literal(manifest.broker)} at {literal(manifest.created_at)}, {key}; rows per table:",
        soft_wrap=True,
    )
    _counts(manifest.counts)
    return manifest


@contextlib.contextmanager
def _spooled(file: Path) -> Iterator[Path]:
    """FILE, or for '-' standard input copied into a private temporary file (under TMPDIR):
    an archive is read twice, checked whole before anything is restored."""
    if str(file) != "-":
        yield file
        return
    if sys.stdin.isatty():
        fail("will not read an archive from a terminal: pipe it in, or give a FILE", EXIT_USAGE)
    with tempfile.NamedTemporaryFile(prefix="ghapplets-restore-", suffix=".tgz") as spool:
        shutil.copyfileobj(sys.stdin.buffer, spool)
        spool.flush()
        yield Path(spool.name)


def restore(
    file: Path = typer.Argument(..., help="The archive to restore ('-': standard input)."),
    force: bool = typer.Option(
        False, "--force", help="Replace what the target store holds (its records are deleted)."
    ),
    project: Path | None = ProjectOpt,
    data: Path | None = DataDirOpt,
) -> None:
    """Restore a backup into an empty store, then queue its unfinished work again."""
    config = project_config(project)
    folder = data_dir(project, data)
    with _spooled(file) as path:
        _restore_archive(config, folder, path, force=force, named=str(file))


def _restore_archive(
    config: ProjectConfig, folder: Path, file: Path, *, force: bool, named: str
) -> None:
    try:
        archive = Archive(file)
    except BackupInvalid as exc:
        fail(str(exc), EXIT_USAGE)
    lock: int | None = None
    if embedded(config):
        try:
            lock = hold(folder, grace=0)  # no server may run on the folder meanwhile
        except DataFolderBusy as exc:
            fail(str(exc), EXIT_FAILURE)
    try:
        _install_key(archive, folder, force=force)
        with progress_bar("restoring") as progress:
            loaded = run(_restore(config, folder, archive, force=force, progress=progress))
    except RestoreRefused as exc:
        fail(str(exc), EXIT_FAILURE)
    except BackupInvalid as exc:
        fail(str(exc), EXIT_USAGE)
    except (BackupError, Unavailable) as exc:
        fail(str(exc), EXIT_FAILURE)
    finally:
        if lock is not None:
            os.close(lock)
    console.print(f"restored {literal(named)} (schema {archive.manifest.schema}), rows per table:")
    _counts(loaded.counts)
    if loaded.purged:
        console.print(f"deleted the old queue's {loaded.purged} message(s) from NATS")
    console.print(
        f"queued again: {len(loaded.jobs)} unfinished job(s), {len(loaded.runs)} run(s), "
        f"{len(loaded.events)} event(s) not yet dispatched"
    )
    if archive.manifest.counts.get("secrets") and not archive.manifest.key:
        _check_key(folder, archive)


async def _restore(
    config: ProjectConfig, folder: Path, archive: Archive, *, force: bool, progress: Progress
) -> Loaded:
    if config.storage.backend == "postgresql":
        assert config.storage.url is not None  # the config requires it
        loaded = await load_postgres(config.storage.url, archive, force=force, progress=progress)
        if config.broker.backend == "sqlite":  # the queue is in the data folder, apart
            await asyncio.to_thread(
                seed_broker_file, folder / DB_FILE, archive, loaded, force=force
            )
    else:
        loaded = await asyncio.to_thread(
            load_sqlite,
            folder / DB_FILE,
            archive,
            force=force,
            embedded_broker=config.broker.backend == "sqlite",
            progress=progress,
        )
    reached(CrashPoint.RESTORE_LOADED)
    async with open_backends(config, folder, create_key=False) as b:
        if force and config.broker.backend == "nats":
            # the old store's queue: jobs and events the restored store knows nothing of
            # (the embedded broker's is cleared with the store, in one transaction)
            from ghapplets.broker.nats import NatsBroker

            assert isinstance(b.broker, NatsBroker)
            loaded.purged = await b.broker.purge()
        await requeue(b.store, b.broker, loaded)
    return loaded


def _install_key(archive: Archive, folder: Path, *, force: bool) -> None:
    """Write the archive's key (if it holds one) as the data folder's key file."""
    if not archive.manifest.key:
        return
    text = archive.raw(KEY_MEMBER)
    key = decode_key(text.decode(errors="replace"), f"the archive's {KEY_MEMBER}")
    env = os.environ.get(KEY_ENV)
    if env:
        if decode_key(env, KEY_ENV) != key:
            errors.print(
                f"[bold yellow]warning:[/] the archive's key is not the one in {KEY_ENV}: "
                "set it to the archive's key, or its secrets cannot be read",
                soft_wrap=True,
            )
        return
    path = folder / KEY_FILE
    if path.exists():
        with contextlib.suppress(SecretKeyError):
            if load_or_create_key(folder, create=False) == key:
                return
        if not force:
            raise RestoreRefused(
                f"{path} holds another key than the archive's: move it away, or give --force "
                f"(it is then kept as {OLD_KEY_FILE})"
            )
        path.replace(folder / OLD_KEY_FILE)
    write_key_file(path, key)
    errors.print(f"wrote the archive's secrets key to {literal(path)} (0600)")


def _check_key(folder: Path, archive: Archive) -> None:
    """Warn when the restored secrets cannot be read with the keys here: none at all, or not
    the ones that encrypted them (by the key ids stored beside the secrets)."""
    try:
        ring = load_keyring(folder, create=False)
    except SecretKeyError:
        errors.print(
            f"[bold yellow]warning:[/] the backup holds encrypted secrets but no key, and there "
            f"is no {KEY_FILE} here nor {KEY_ENV}: copy the source's key, or they cannot be read",
            soft_wrap=True,
        )
        return
    used = {row.get("key_id") for row in archive.rows(member_of(secrets_table))} - {None}
    unknown = sorted(str(i) for i in used if i not in ring)
    if unknown:
        errors.print(
            f"[bold yellow]warning:[/] the backup's secrets were encrypted with the key "
            f"{', '.join(unknown)}, and the key here is {ring.current.key_id}: they cannot be "
            f"read until {KEY_ENV} or {KEY_FILE} holds the source's key",
            soft_wrap=True,
        )
