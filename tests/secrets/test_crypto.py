"""AES-256-GCM at rest: values bound to their names, keys from the environment or a 0600 file."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from ghapplets.exceptions import SecretKeyError
from ghapplets.secrets.crypto import KEY_ENV, Cipher, generate_key, load_or_create_key


@pytest.fixture(autouse=True)
def _no_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


def key() -> bytes:
    return base64.urlsafe_b64decode(generate_key())


def test_roundtrip() -> None:
    cipher = Cipher(key())
    for plain in (b"x", b"hunter2-is-a-password", "ünïcödé ✓".encode(), os.urandom(4096)):
        blob = cipher.encrypt("name", plain)
        # a plaintext of a few bytes turns up in random ciphertext by chance (1 byte: about one
        # run in nine), so only a plaintext of 8 bytes or more can prove it is not stored as is
        if len(plain) >= 8:
            assert plain not in blob
        assert len(blob) >= len(plain) + 16 + 12  # GCM tag and nonce
        assert cipher.decrypt("name", blob) == plain


def test_each_encryption_uses_a_fresh_nonce() -> None:
    cipher = Cipher(key())
    a, b = cipher.encrypt("n", b"same"), cipher.encrypt("n", b"same")
    assert a != b and a[2:14] != b[2:14]
    assert a.startswith(b"v1") and len(a) == 2 + 12 + len(b"same") + 16


def test_a_ciphertext_copied_to_another_name_fails() -> None:
    cipher = Cipher(key())
    blob = cipher.encrypt("github-webhook", b"value")
    with pytest.raises(SecretKeyError, match="'jira-token' does not decrypt"):
        cipher.decrypt("jira-token", blob)


def test_the_wrong_key_fails() -> None:
    blob = Cipher(key()).encrypt("n", b"value")
    with pytest.raises(SecretKeyError, match="does not decrypt with this key") as exc:
        Cipher(key()).decrypt("n", blob)
    assert KEY_ENV in str(exc.value)
    assert "value" not in str(exc.value).replace("'n'", "")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b[:-1] + bytes([b[-1] ^ 1]),  # tag
        lambda b: b[:20] + bytes([b[20] ^ 1]) + b[21:],  # ciphertext
        lambda b: b[:3] + bytes([b[3] ^ 1]) + b[4:],  # nonce
    ],
)
def test_tampering_is_detected(mangle: object) -> None:
    cipher = Cipher(key())
    blob = cipher.encrypt("n", b"a longer value to tamper with")
    with pytest.raises(SecretKeyError):
        cipher.decrypt("n", mangle(blob))  # type: ignore[operator]


@pytest.mark.parametrize("blob", [b"", b"v1", b"v2" + bytes(40), b"v1" + bytes(27), b"plain"])
def test_unknown_formats_are_rejected(blob: bytes) -> None:
    with pytest.raises(SecretKeyError, match="unknown format"):
        Cipher(key()).decrypt("n", blob)


def test_key_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = load_or_create_key(data)
    path = data / "secret.key"
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(data) == first
    assert load_or_create_key(data, create=False) == first
    assert base64.urlsafe_b64decode(path.read_text().strip()) == first


def test_key_file_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        load_or_create_key(tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600


def test_no_key_without_create(tmp_path: Path) -> None:
    with pytest.raises(SecretKeyError, match=f"set {KEY_ENV} or run 'ghapplets init'"):
        load_or_create_key(tmp_path, create=False)
    assert not (tmp_path / "secret.key").exists()


def test_the_env_var_wins_and_creates_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = generate_key()
    monkeypatch.setenv(KEY_ENV, f"  {text}\n")  # surrounding whitespace is fine
    assert load_or_create_key(tmp_path) == base64.urlsafe_b64decode(text)
    assert not (tmp_path / "secret.key").exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not base64!", "is not URL-safe base64"),
        ("abc", "is not URL-safe base64"),
        (base64.urlsafe_b64encode(b"x" * 16).decode(), "must decode to 32 bytes, not 16"),
        (base64.urlsafe_b64encode(b"x" * 64).decode(), "must decode to 32 bytes, not 64"),
    ],
)
def test_a_malformed_key_env_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv(KEY_ENV, value)
    with pytest.raises(SecretKeyError, match=message) as exc:
        load_or_create_key(tmp_path)
    assert str(exc.value).startswith(KEY_ENV)
    assert value not in str(exc.value)  # the (wrong) key is not echoed


def test_a_malformed_key_file(tmp_path: Path) -> None:
    (tmp_path / "secret.key").write_text("c2hvcnQ=\n")
    with pytest.raises(SecretKeyError, match="must decode to 32 bytes, not 5") as exc:
        load_or_create_key(tmp_path)
    assert str(tmp_path / "secret.key") in str(exc.value)
