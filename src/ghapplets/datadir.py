"""The data folder of the embedded backends: private to its owner.

**Private.** The folder holds every event received (bodies and headers), job results and the
secrets key, so nobody but its owner may read it: :func:`private_dir` creates it ``0700``, and
the database, its ``-wal`` and ``-shm`` files (SQLite gives them the database file's mode), the
lock files and the key file are created ``0600`` whatever the umask. A key file that others can
read is refused (:mod:`ghapplets.secrets.crypto`), as ``ssh`` refuses a loose private key.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path) -> None:
    """Create the folder ``path`` (and missing parents, with the usual mode) owner-only."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode ``0600`` unless it exists."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE))
