"""Archives in a backup folder: their names, and keeping only the newest (``backup --dir``).

An archive written into a folder is named ``ghapplets-<UTC time>.tgz``, the time as
``20261204T103000Z`` (ISO 8601 basic format, to the second), so names sort by time and a
scheduler (a Kubernetes CronJob, a systemd timer) needs no script to name or prune them.
:func:`prune` deletes the oldest archives beyond a count. It touches nothing else: only regular
files whose whole name matches :data:`ARCHIVE_NAME` (not the hidden ``.partial`` files of a
backup being written, not symbolic links, folders or other files), and never the archive just
written, even when a clock set back makes another one look newer.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

ARCHIVE_NAME = re.compile(r"ghapplets-(\d{8}T\d{6}Z)\.tgz")
_STAMP = "%Y%m%dT%H%M%SZ"


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
