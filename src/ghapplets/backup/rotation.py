"""Archives in a backup folder: their names, and keeping only the newest (``backup --dir``).

An archive written into a folder is named ``ghapplets-<UTC time>.tgz``, the time as
``20261204T103000Z`` (ISO 8601 basic format, to the second), so names sort by time and a
scheduler (a Kubernetes CronJob, a systemd timer) needs no script to name or prune them.
:func:`prune` deletes the oldest archives beyond a count. It touches nothing else: only regular
files whose whole name matches :data:`ARCHIVE_NAME` (not the hidden ``.partial`` files of a
backup being written, not symbolic links, folders or other files), and never the archive just
written, even when a clock set back makes another one look newer. :func:`clear_abandoned`
deletes the staged files that backups killed on the way left behind (a backup holds a lock on
its staged file while it writes it: one nobody holds is abandoned).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from datetime import UTC, datetime
from pathlib import Path

ARCHIVE_NAME = re.compile(r"ghapplets-(\d{8}T\d{6}Z)\.tgz")
_STAMP = "%Y%m%dT%H%M%SZ"
# the file an archive is written to before it is moved into place (archive.private_output)
STAGED_NAME = re.compile(r"\.ghapplets-\d{8}T\d{6}Z\.tgz\.\d+\.[0-9a-f]{8}\.partial")


def archive_name(when: datetime) -> str:
    """The name of the archive taken at ``when`` (an aware time; written in UTC)."""
    return f"ghapplets-{when.astimezone(UTC).strftime(_STAMP)}.tgz"


def archives(folder: Path) -> list[Path]:
    """The archives in ``folder``, oldest first: regular files named as :func:`archive_name`."""
    found = [
        path
        for path in folder.iterdir()
        if ARCHIVE_NAME.fullmatch(path.name) and path.is_file() and not path.is_symlink()
    ]
    return sorted(found, key=lambda path: path.name)  # the name is the time, to the second


def prune(folder: Path, keep: int, written: Path) -> list[Path]:
    """Delete the archives of ``folder`` older than the ``keep`` newest; the ones deleted.

    ``written`` (the archive just made) is never deleted, and counts among those kept."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1, not {keep}")
    others = [path for path in archives(folder) if path.name != written.name]
    doomed = others[: max(len(others) - (keep - 1), 0)]
    for path in doomed:
        path.unlink(missing_ok=True)  # another pruner may have been first
    return doomed


def clear_abandoned(folder: Path) -> list[Path]:
    """Delete the staged archives of ``folder`` that no running backup is writing (left by one
    that was killed); the ones deleted. One being written is locked, and stays."""
    cleared = []
    for path in sorted(folder.iterdir()):
        if not STAGED_NAME.fullmatch(path.name) or path.is_symlink() or not path.is_file():
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue  # gone meanwhile: its backup finished
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a backup is writing it
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                cleared.append(path)
        finally:
            os.close(fd)
    return cleared
