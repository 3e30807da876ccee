"""AES-256-GCM encryption of secret values; the secrets key, its id and its rotation files.

The key is 32 random bytes, written URL-safe base64. It comes from ``GHAPPLETS_SECRET_KEY`` when
set, else from ``<data dir>/secret.key`` (created with mode 0600 on first use). A key is known
by its id (:func:`key_id`: 16 hex digits of a domain-separated SHA-256 of it), stored beside each
ciphertext, so a process can tell which key a secret needs and that it lacks it.

Ciphertext formats, named by their first two bytes (the format version):

- ``v2``, written now: ``b"v2" + nonce(12) + ciphertext+tag``, with the associated data
  ``b"ghapplets-secret\\0v2\\0<name>\\0<scope>"``: the value is bound to its name, its scope and
  the format, so a ciphertext copied onto another name or scope fails to decrypt.
- ``v1``, read only: the same layout, bound to the name alone (secrets stored before v2).
  ``ghapplets secrets rotate-key`` rewrites every secret as v2; so does ``secrets set``.

Rotation (:mod:`ghapplets.cli.secrets_cmd`) uses two more files in the data folder:
``secret.key.new`` (the key being rotated to, written before any secret is re-encrypted) and
``secret.key.old`` (the key before the last rotation). A process reads both as extra keys for
decryption (:func:`load_keyring`), so it finds the key of every secret during a rotation, after
one, and after one that was interrupted.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ghapplets.exceptions import SecretKeyError
from ghapplets.secrets.names import KEY_ENV

__all__ = [
    "KEY_ENV",
    "KEY_FILE",
    "NEW_KEY_FILE",
    "OLD_KEY_FILE",
    "Cipher",
    "Keyring",
    "encode_key",
    "generate_key",
    "install_new_key",
    "key_id",
    "load_keyring",
    "load_or_create_key",
    "read_key_file",
    "write_key_file",
]

KEY_FILE = "secret.key"
NEW_KEY_FILE = "secret.key.new"
OLD_KEY_FILE = "secret.key.old"
V1 = b"v1"
V2 = b"v2"
_NONCE = 12
_TAG = 16


def generate_key() -> str:
    return base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode()


def encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def key_id(key: bytes) -> str:
    """The key's public name: safe to store, print and log (it reveals nothing of the key)."""
    return hashlib.sha256(b"ghapplets-secret-key-id\0" + key).hexdigest()[:16]


def _decode_key(text: str, origin: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode())
    except (binascii.Error, ValueError):
        raise SecretKeyError(f"{origin} is not URL-safe base64") from None
    if len(key) != 32:
        raise SecretKeyError(f"{origin} must decode to 32 bytes, not {len(key)}")
    return key


def decode_key(text: str, origin: str) -> bytes:
    """The key ``text`` encodes (URL-safe base64 of 32 bytes); ``origin`` names it in errors."""
    return _decode_key(text, origin)


def read_key_file(path: Path) -> bytes:
    try:
        text = path.read_text()
    except OSError as exc:
        raise SecretKeyError(f"cannot read {path}: {exc.strerror or exc}") from None
    return _decode_key(text, str(path))


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_key_file(path: Path, key: bytes) -> None:
    """Create the file ``path`` holding ``key``, owner-only (0600) whatever the umask, flushed
    to disk (the file and its folder entry) before returning. It appears whole or not at all
    (written aside, then linked into place); :class:`FileExistsError` if ``path`` exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, (encode_key(key) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(staged, path)  # atomic, and fails if the name is taken
    finally:
        staged.unlink()
    _fsync_dir(path.parent)


def _refuse_loose_key_file(path: Path) -> None:
    """Like ssh with a private key: a key file that group or others may access is refused."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SecretKeyError(
            f"the key file {path} is accessible by other users (mode {mode:04o}); it must be "
            f"private: run 'chmod 600 {path}' (and, if others may have read it, rotate the key)"
        )


def load_or_create_key(data_dir: Path, *, create: bool = True) -> bytes:
    env = os.environ.get(KEY_ENV)
    if env:
        return _decode_key(env, KEY_ENV)
    path = data_dir / KEY_FILE
    if path.exists():
        key = read_key_file(path)
        _refuse_loose_key_file(path)
        return key
    if not create:
        raise SecretKeyError(f"no key: set {KEY_ENV} or run 'ghapplets init' (looked for {path})")
    leftovers = [name for name in (NEW_KEY_FILE, OLD_KEY_FILE) if (data_dir / name).exists()]
    if leftovers:  # a new key now would make the stored secrets unreadable for good
        raise SecretKeyError(
            f"{path} is missing but {', '.join(leftovers)} exist(s) beside it: restore "
            f"{KEY_FILE} from a backup (or from {NEW_KEY_FILE} after an interrupted rotation) "
            "instead of letting a new key be created"
        )
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):  # another process created it first: use theirs
        write_key_file(path, base64.urlsafe_b64decode(generate_key()))
    return read_key_file(path)


def load_keyring(data_dir: Path, *, create: bool = True) -> Keyring:
    """The current key (:func:`load_or_create_key`) and, for decryption only, the keys in
    ``secret.key.new`` and ``secret.key.old`` beside it, if there are such files."""
    current = load_or_create_key(data_dir, create=create)
    others = [
        read_key_file(data_dir / name)
        for name in (NEW_KEY_FILE, OLD_KEY_FILE)
        if (data_dir / name).exists()
    ]
    return Keyring(current, others)


def install_new_key(data_dir: Path) -> None:
    """Make ``secret.key.new`` the key: the current ``secret.key`` is kept as ``secret.key.old``
    (replacing an older one), then ``secret.key.new`` is renamed over ``secret.key``. Each step
    is atomic and flushed, and ``secret.key`` exists at every moment."""
    key, new, old = data_dir / KEY_FILE, data_dir / NEW_KEY_FILE, data_dir / OLD_KEY_FILE
    if key.exists():
        staged = data_dir / f".{OLD_KEY_FILE}.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            staged.unlink()
        write_key_file(staged, read_key_file(key))
        os.replace(staged, old)
    os.chmod(new, 0o600)
    os.replace(new, key)
    _fsync_dir(data_dir)


def _associated_data(name: str, scope: str) -> bytes:
    # neither a name nor a scope can hold a NUL, so the fields cannot run into each other
    return b"ghapplets-secret\0v2\0" + name.encode() + b"\0" + scope.encode()


class Cipher:
    """Encryption under one key."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self.key_id = key_id(key)

    def encrypt(self, name: str, scope: str, plaintext: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return V2 + nonce + self._aead.encrypt(nonce, plaintext, _associated_data(name, scope))

    def decrypt(self, name: str, scope: str, blob: bytes) -> bytes:
        version = blob[:2]
        if version not in (V1, V2) or len(blob) < 2 + _NONCE + _TAG:
            raise SecretKeyError(f"secret {name!r} has an unknown format")
        ad = name.encode() if version == V1 else _associated_data(name, scope)
        try:
            return self._aead.decrypt(blob[2 : 2 + _NONCE], blob[2 + _NONCE :], ad)
        except InvalidTag:
            raise SecretKeyError(
                f"secret {name!r} does not decrypt with this key (wrong {KEY_ENV} or key file?)"
            ) from None


class Keyring:
    """The current key, which encrypts, and other keys that may still be needed to decrypt
    (during and after a rotation), by key id."""

    def __init__(self, current: bytes, others: Iterable[bytes] = ()) -> None:
        self.current = Cipher(current)
        self._by_id = {c.key_id: c for c in map(Cipher, others)}
        self._by_id[self.current.key_id] = self.current

    def cipher(self, key_id: str | None) -> Cipher | None:
        """The cipher of the key ``key_id``; a secret without one (stored before key ids were)
        is meant for the current key."""
        return self.current if key_id is None else self._by_id.get(key_id)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._by_id
