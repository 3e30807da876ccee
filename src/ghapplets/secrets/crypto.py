"""AES-256-GCM encryption of secret values, keyed from an env var or a key file.

The key is 32 random bytes, written URL-safe base64. It comes from ``GHAPPLETS_SECRET_KEY`` when
set, else from ``<data dir>/secret.key`` (created with mode 0600 on first use). Each ciphertext is
``b"v1" + nonce(12) + ciphertext+tag`` and is bound to the secret's name as associated data, so a
value copied onto another name fails to decrypt.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ghapplets.exceptions import SecretKeyError

KEY_ENV = "GHAPPLETS_SECRET_KEY"
KEY_FILE = "secret.key"
_VERSION = b"v1"


def generate_key() -> str:
    return base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode()


def _decode_key(text: str, origin: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode())
    except (binascii.Error, ValueError):
        raise SecretKeyError(f"{origin} is not URL-safe base64") from None
    if len(key) != 32:
        raise SecretKeyError(f"{origin} must decode to 32 bytes, not {len(key)}")
    return key


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
        key = _decode_key(path.read_text(), str(path))
        _refuse_loose_key_file(path)
        return key
    if not create:
        raise SecretKeyError(f"no key: set {KEY_ENV} or run 'ghapplets init' (looked for {path})")
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(generate_key() + "\n")
    return _decode_key(path.read_text(), str(path))


class Cipher:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def encrypt(self, name: str, plaintext: bytes) -> bytes:
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, name.encode())

    def decrypt(self, name: str, blob: bytes) -> bytes:
        if blob[:2] != _VERSION or len(blob) < 2 + 12 + 16:
            raise SecretKeyError(f"secret {name!r} has an unknown format")
        try:
            return self._aead.decrypt(blob[2:14], blob[14:], name.encode())
        except InvalidTag:
            raise SecretKeyError(
                f"secret {name!r} does not decrypt with this key (wrong {KEY_ENV} or key file?)"
            ) from None
