"""The backup archive: a gzip-compressed tar of ``manifest.json`` and one member per table.

Format 1 (:data:`FORMAT`):

- ``manifest.json`` comes first: ``format`` (1), ``ghapplets`` (the version that wrote it),
  ``schema`` (the store's Alembic revision), ``storage`` and ``broker`` (the backends it was
  taken from), ``created_at`` (ISO 8601, UTC), ``key`` (whether the secrets key is in it),
  ``counts`` (rows per table) and ``members``: for each other member its ``sha256``, its size
  in ``bytes``, its ``rows`` and its ``binary`` columns.
- ``tables/<table>.jsonl``: one JSON object per line and row, ``{column: value}``, ordered by
  primary key. Text, integers, floats (written exactly: the shortest text that reads back as
  the same double) and nulls are JSON values; the ``binary`` columns' bytes are standard base64
  strings. Secrets and connector tokens are the ciphertext the store holds.
- ``broker/dedup.jsonl`` and ``broker/events.jsonl`` (from the embedded broker): the ids of the
  events already accepted, and the events accepted but not yet dispatched.
- ``secret.key`` (only with ``--include-key``): the secrets key as in the key file.

A reader of a later version reads every earlier format: :data:`UPGRADES` turns an older
manifest into the current one, step by step. A newer format, a member that is missing or
extra, a checksum, size or row count that does not match, or a file that ends early is
:class:`BackupInvalid`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import io
import os
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from ghapplets.backup.tables import TABLE_PREFIX
from ghapplets.exceptions import BackupInvalid

FORMAT = 1
MANIFEST = "manifest.json"
CHUNK = 1 << 20
# format n -> the function that turns a format-n manifest into a format n+1 one (none yet)
UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}
_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError, UnicodeDecodeError)


@dataclass(frozen=True, slots=True)
class Member:
    """What the manifest says of one member."""

    sha256: str
    bytes: int
    rows: int
    binary: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "bytes": self.bytes, "rows": self.rows,
                "binary": list(self.binary)}  # fmt: skip


@dataclass(slots=True)
class Manifest:
    schema: str
    storage: str
    broker: str
    ghapplets: str
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    key: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)
    format: int = FORMAT

    def to_json(self) -> bytes:
        doc = {
            "format": self.format,
            "ghapplets": self.ghapplets,
            "schema": self.schema,
            "storage": self.storage,
            "broker": self.broker,
            "created_at": self.created_at,
            "key": self.key,
            "counts": self.counts,
            "members": {name: m.to_json() for name, m in self.members.items()},
        }
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        try:
            doc = orjson.loads(raw)
            version = doc["format"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise BackupInvalid(f"{MANIFEST} is not a backup manifest: {exc}") from None
        if not isinstance(version, int) or version < 1:
            raise BackupInvalid(f"{MANIFEST} names no format this version knows: {version!r}")
        if version > FORMAT:
            raise BackupInvalid(
                f"the backup is of format {version}, made by a newer Ghapplets "
                f"({doc.get('ghapplets', '?')}); this one reads formats 1 to {FORMAT}"
            )
        while doc["format"] < FORMAT:
            doc = UPGRADES[doc["format"]](doc)
        try:
            return cls(
                format=doc["format"],
                ghapplets=str(doc["ghapplets"]),
                schema=str(doc["schema"]),
                storage=str(doc["storage"]),
                broker=str(doc["broker"]),
                created_at=str(doc["created_at"]),
                key=bool(doc["key"]),
                counts={str(k): int(v) for k, v in doc["counts"].items()},
                members={
                    str(name): Member(
                        str(m["sha256"]), int(m["bytes"]), int(m["rows"]), tuple(m["binary"])
                    )
                    for name, m in doc["members"].items()
                },
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BackupInvalid(f"{MANIFEST} is incomplete or malformed: {exc!r}") from None


# -- rows --------------------------------------------------------------------------------------
def encode_row(row: Mapping[str, Any], binary: Sequence[str]) -> bytes:
    doc = {str(k): v for k, v in row.items()}  # column names are str subclasses
    for name in binary:
        value = doc.get(name)
        if value is not None:
            doc[name] = base64.b64encode(bytes(value)).decode()
    return orjson.dumps(doc) + b"\n"


def decode_row(line: bytes, binary: Sequence[str]) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(line)
    for name in binary:
        value = doc.get(name)
        if value is not None:
            doc[name] = base64.b64decode(value, validate=True)
    return doc


# -- writing -----------------------------------------------------------------------------------
class MemberSink:
    """Rows of one member, written to a private temporary file, hashed and counted."""

    def __init__(self, binary: Sequence[str]) -> None:
        self.binary = tuple(binary)
        self.file: IO[bytes] = tempfile.TemporaryFile()
        self.hash = hashlib.sha256()
        self.size = 0
        self.rows = 0

    def write_bytes(self, data: bytes, rows: int = 0) -> None:
        self.file.write(data)
        self.hash.update(data)
        self.size += len(data)
        self.rows += rows

    def write(self, row: Mapping[str, Any]) -> None:
        self.write_bytes(encode_row(row, self.binary), 1)

    def member(self) -> Member:
        return Member(self.hash.hexdigest(), self.size, self.rows, self.binary)


class ArchiveWriter:
    """Collects the members, then writes the archive (the manifest first) in one pass."""

    def __init__(self) -> None:
        self.sinks: dict[str, MemberSink] = {}

    def member(self, name: str, binary: Sequence[str] = ()) -> MemberSink:
        sink = self.sinks[name] = MemberSink(binary)
        return sink

    def write(self, manifest: Manifest, out: IO[bytes]) -> Manifest:
        """Write the archive to ``out`` (a file or a pipe: it is written as a stream)."""
        manifest.members = {name: s.member() for name, s in self.sinks.items()}
        now = time.time()
        with tarfile.open(fileobj=out, mode="w|gz") as tar:
            _add(tar, MANIFEST, io.BytesIO(manifest.to_json()), len(manifest.to_json()), now)
            for name, sink in self.sinks.items():
                sink.file.seek(0)
                _add(tar, name, sink.file, sink.size, now)
        return manifest

    def close(self) -> None:
        for sink in self.sinks.values():
            sink.file.close()


def _add(tar: tarfile.TarFile, name: str, data: IO[bytes], size: int, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = int(mtime)
    tar.addfile(info, data)


@contextlib.contextmanager
def private_output(path: Path) -> Iterator[IO[bytes]]:
    """A new file at ``path``, mode 0600 whatever the umask, written aside and moved into place
    only once complete (a failed backup leaves no partial archive behind). The staged file is
    locked (``flock``) while it is written, so a staged file nobody holds is one a killed backup
    left (see :func:`ghapplets.backup.rotation.clear_abandoned`)."""
    staged = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.partial")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when the file is closed, or the process dies
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(staged, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            staged.unlink()


# -- reading -----------------------------------------------------------------------------------
class Archive:
    """A backup archive on disk, verified on open: its members are what the manifest says."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.manifest = verify(path)

    def rows(self, name: str) -> Iterator[dict[str, Any]]:
        """The rows of member ``name`` (none when the archive has no such member)."""
        member = self.manifest.members.get(name)
        if member is None:
            return
        try:
            with tarfile.open(self.path, mode="r:*") as tar:
                data = tar.extractfile(name)
                if data is None:
                    raise BackupInvalid(f"the backup's member {name} is not a file")
                for line in data:
                    yield decode_row(line, member.binary)
        except BackupInvalid:
            raise
        except (*_READ_ERRORS, orjson.JSONDecodeError, binascii.Error, KeyError) as exc:
            raise BackupInvalid(f"cannot read {name} from {self.path}: {exc}") from None

    def raw(self, name: str) -> bytes:
        try:
            with tarfile.open(self.path, mode="r:*") as tar:
                data = tar.extractfile(name)
                assert data is not None  # verified: a file member
                return data.read()
        except (*_READ_ERRORS, KeyError) as exc:
            raise BackupInvalid(f"cannot read {name} from {self.path}: {exc}") from None


def verify(path: Path) -> Manifest:
    """Read the whole archive and check it against its manifest: the format, every member's
    presence, size, sha256 and row count. Writes nothing. The manifest, or BackupInvalid."""
    try:
        with tarfile.open(path, mode="r:*") as tar:
            return _verify(tar, path)
    except BackupInvalid:
        raise
    except FileNotFoundError:
        raise BackupInvalid(f"no backup at {path}") from None
    except _READ_ERRORS as exc:
        raise BackupInvalid(f"{path} is not a whole backup archive: {exc}") from None


def _verify(tar: tarfile.TarFile, path: Path) -> Manifest:
    first = tar.next()
    if first is None or first.name != MANIFEST:
        raise BackupInvalid(f"{path} is not a Ghapplets backup: it does not start with {MANIFEST}")
    data = tar.extractfile(first)
    if data is None:
        raise BackupInvalid(f"{MANIFEST} in {path} is not a file")
    manifest = Manifest.from_json(data.read())
    seen: set[str] = set()
    while (info := tar.next()) is not None:
        expected = manifest.members.get(info.name)
        if expected is None or not info.isfile() or info.name in seen:
            raise BackupInvalid(f"{path} holds a member its manifest does not name: {info.name}")
        seen.add(info.name)
        digest, size, rows = hashlib.sha256(), 0, 0
        body = tar.extractfile(info)
        assert body is not None  # a file
        while chunk := body.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            rows += chunk.count(b"\n")
        if size != expected.bytes or digest.hexdigest() != expected.sha256:
            raise BackupInvalid(
                f"{info.name} in {path} is damaged: its sha256 or size does not match the manifest"
            )
        if rows != expected.rows:
            raise BackupInvalid(
                f"{info.name} in {path} holds {rows} rows, the manifest says {expected.rows}"
            )
    missing = sorted(set(manifest.members) - seen)
    if missing:
        raise BackupInvalid(f"{path} is missing member(s) {', '.join(missing)}")
    for table, count in manifest.counts.items():
        member = manifest.members.get(f"{TABLE_PREFIX}{table}.jsonl")
        if member is None or member.rows != count:
            raise BackupInvalid(f"the manifest of {path} counts {count} rows of {table}, not so")
    return manifest
