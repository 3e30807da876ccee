"""The data folder of the embedded backends: private to its owner, served by one server at a time.

**Private.** The folder holds every event received (bodies and headers), job results and the
secrets key, so nobody but its owner may read it: :func:`private_dir` creates it ``0700``, and
the database, its ``-wal`` and ``-shm`` files (SQLite gives them the database file's mode), the
lock files and the key file are created ``0600`` whatever the umask. :func:`tighten` makes an
existing folder and database files that others can read owner-only again, with a warning (older
versions created them ``0755`` and ``0644``). The key file is not tightened: one that others can
read is refused (:mod:`ghapplets.secrets.crypto`), as ``ssh`` refuses a loose private key.

**One server.** ``serve``, ``gateway`` and ``worker`` on the embedded backends hold an exclusive
``flock`` on ``<data>/ghapplets.lock`` (:func:`hold`) for as long as they run, and write their PID
and command into it; a second one exits with a message naming the holder. ``serve`` (and
``gateway --processes N``) holds it in the supervisor and hands the locked file description to
its children: they inherit the descriptor and name it in :data:`LOCK_FD_ENV`, and a child
*adopts* it only if it is that very file and ``flock`` on it succeeds, which only the holder's
own open file description can do. A process started by hand with the variable set gets nothing
from it. The lock goes when every process holding the description has exited (``kill -9``
included); a server restarted at once waits a few seconds for the children of a holder that has
died to go. Commands that only read or queue work (``deliveries``, ``jobs``, ``replay``,
``secrets``...) take no lock and run beside a server. NATS + PostgreSQL processes are
stateless and take none either.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shlex
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ghapplets.exceptions import DataFolderBusy
from ghapplets.logging import get_logger

log = get_logger("ghapplets.datadir")

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
LOCK_FILE = "ghapplets.lock"
LOCK_FD_ENV = "GHAPPLETS_DATA_LOCK_FD"  # a supervisor's child: the inherited, locked descriptor
DEAD_HOLDER_GRACE = 10.0  # seconds to wait for the children of a holder that has died
# the database files the embedded backends keep in the folder (the key file is checked apart)
DB_FILES = ("ghapplets.db", "ghapplets.db-wal", "ghapplets.db-shm")
LOCK_FILES = ("ghapplets.db.write.lock", "ghapplets.db.consumer.lock", LOCK_FILE)


def private_dir(path: Path) -> None:
    """Create the folder ``path`` (and missing parents, with the usual mode) owner-only."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode ``0600`` unless it exists."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE))


def loose(mode: int) -> bool:
    """Can users other than the owner read, write or enter it?"""
    return bool(stat.S_IMODE(mode) & 0o077)


def tighten(data_dir: Path) -> list[Path]:
    """Make the folder and its database and lock files owner-only where others have access;
    each change is logged as a warning. The paths changed."""
    changed: list[Path] = []
    targets = [(data_dir, PRIVATE_DIR)] + [
        (data_dir / name, PRIVATE_FILE) for name in (*DB_FILES, *LOCK_FILES)
    ]
    for path, mode in targets:
        try:
            before = path.lstat().st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(before) or not loose(before):
            continue
        try:
            path.chmod(mode)
        except OSError as exc:
            log.warning(
                "other users can read this data file and it cannot be made private",
                path=str(path),
                mode=oct(stat.S_IMODE(before)),
                error=exc.strerror or str(exc),
            )
            continue
        log.warning(
            "other users could read this data file: made it private",
            path=str(path),
            mode_was=oct(stat.S_IMODE(before)),
            mode=oct(mode),
        )
        changed.append(path)
    return changed


@dataclass(frozen=True, slots=True)
class Holder:
    pid: int | None
    command: str

    def __str__(self) -> str:
        if self.pid is None:
            return "another Ghapplets process (PID unknown)"
        return f"another Ghapplets process (PID {self.pid}: {self.command or '?'})"

    def alive(self) -> bool:
        if self.pid is None:
            return True  # it is writing its name now
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def read_holder(path: Path) -> Holder:
    """Who holds the lock file ``path``, as it wrote itself in: PID, then command."""
    try:
        first, _, rest = path.read_text(errors="replace").partition("\n")
        pid = int(first)
    except (OSError, ValueError):
        return Holder(None, "")
    return Holder(pid, rest.strip())


def _command() -> str:
    return shlex.join(["ghapplets", *sys.argv[1:]])


def _adopt(path: Path, value: str) -> int | None:
    """The descriptor ``value`` names when it is the locked file description of ``path``
    inherited from the supervisor, else None."""
    try:
        fd = int(value)
        inherited, there = os.fstat(fd), os.stat(path)
    except (ValueError, OSError):
        return None
    if (inherited.st_dev, inherited.st_ino) != (there.st_dev, there.st_ino):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a no-op on the holder's description
    except OSError:
        return None
    os.set_inheritable(fd, False)  # an exec applet must not hold it
    return fd


def hold(data_dir: Path, *, grace: float = DEAD_HOLDER_GRACE) -> int:
    """Hold the data folder's lock for the life of this process: adopt the supervisor's
    (:data:`LOCK_FD_ENV`) or take it, write this process's PID and command into it, and
    tighten the folder's modes. The descriptor (kept open: closing it lets go). Raises
    :class:`DataFolderBusy` when another process holds it; when the holder named in the file
    has died, waits up to ``grace`` seconds for its children to exit first."""
    path = data_dir / LOCK_FILE
    inherited = os.environ.get(LOCK_FD_ENV)
    if inherited:
        fd = _adopt(path, inherited)
        if fd is not None:
            return fd
        log.warning(
            f"{LOCK_FD_ENV} does not name this data folder's lock held by a supervisor: "
            "taking the lock as a server of its own"
        )
    private_dir(data_dir)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
    deadline = time.monotonic() + grace
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                os.close(fd)
                raise
        holder = read_holder(path)
        if holder.alive() or time.monotonic() >= deadline:
            os.close(fd)
            raise DataFolderBusy(
                f"the data folder {data_dir} is in use by {holder}; stop it first, or give "
                "this one another --data-dir",
                pid=holder.pid,
            )
        time.sleep(0.05)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n{_command()}\n".encode(), 0)
    tighten(data_dir)
    return fd
