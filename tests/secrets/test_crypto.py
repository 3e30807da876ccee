"""AES-256-GCM at rest: values bound to their name, scope and format version; keys from the
environment or a 0600 file, known by their ids; the files of a key rotation."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ghapplets.exceptions import SecretKeyError
from ghapplets.secrets.crypto import (
    KEY_ENV,
    Cipher,
    Keyring,
    generate_key,
    install_new_key,
    key_id,
    load_keyring,
    load_or_create_key,
    read_key_file,
    write_key_file,
)


@pytest.fixture(autouse=True)
def _no_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


def key() -> bytes:
    return base64.urlsafe_b64decode(generate_key())


def v1_blob(secret_key: bytes, name: str, plain: bytes) -> bytes:
    """A ciphertext as stored before format v2: bound to the name alone."""
    nonce = os.urandom(12)
    return b"v1" + nonce + AESGCM(secret_key).encrypt(nonce, plain, name.encode())


def test_roundtrip() -> None:
    cipher = Cipher(key())
    for plain in (b"x", b"hunter2-is-a-password", "ünïcödé ✓".encode(), os.urandom(4096)):
        blob = cipher.encrypt("name", "global", plain)
        # a plaintext of a few bytes turns up in random ciphertext by chance (1 byte: about one
        # run in nine), so only a plaintext of 8 bytes or more can prove it is not stored as is
        if len(plain) >= 8:
            assert plain not in blob
        assert len(blob) >= len(plain) + 16 + 12  # GCM tag and nonce
        assert cipher.decrypt("name", "global", blob) == plain


def test_each_encryption_uses_a_fresh_nonce() -> None:
    cipher = Cipher(key())
    a, b = cipher.encrypt("n", "global", b"same"), cipher.encrypt("n", "global", b"same")
    assert a != b and a[2:14] != b[2:14]
    assert a.startswith(b"v2") and len(a) == 2 + 12 + len(b"same") + 16


def test_a_ciphertext_copied_to_another_name_fails() -> None:
    cipher = Cipher(key())
    blob = cipher.encrypt("github-webhook", "global", b"value")
    with pytest.raises(SecretKeyError, match="'jira-token' does not decrypt"):
        cipher.decrypt("jira-token", "global", blob)


@pytest.mark.parametrize(
    ("scope", "moved_to"),
    [
        ("applet:deployer", "global"),
        ("global", "applet:deployer"),
        ("applet:deployer", "applet:other"),
        ("applet:deployer", "blueprint:deployer"),
    ],
)
def test_a_ciphertext_moved_to_another_scope_fails(scope: str, moved_to: str) -> None:
    cipher = Cipher(key())
    blob = cipher.encrypt("token", scope, b"value")
    assert cipher.decrypt("token", scope, blob) == b"value"
    with pytest.raises(SecretKeyError, match="'token' does not decrypt"):
        cipher.decrypt("token", moved_to, blob)


def test_name_and_scope_cannot_trade_characters() -> None:
    # "a" + "b:c" and "a:b" + "c" must not be the same associated data
    cipher = Cipher(key())
    blob = cipher.encrypt("a", "applet:bc", b"value")
    with pytest.raises(SecretKeyError):
        cipher.decrypt("a:applet", "bc", blob)


def test_a_v1_ciphertext_still_decrypts_bound_to_its_name_only() -> None:
    k = key()
    blob = v1_blob(k, "old-token", b"stored before v2")
    cipher = Cipher(k)
    # whatever the scope: v1 did not bind it
    assert cipher.decrypt("old-token", "global", blob) == b"stored before v2"
    assert cipher.decrypt("old-token", "applet:x", blob) == b"stored before v2"
    with pytest.raises(SecretKeyError, match="'new-name' does not decrypt"):
        cipher.decrypt("new-name", "global", blob)


def test_a_v2_ciphertext_relabelled_v1_fails() -> None:
    cipher = Cipher(key())
    blob = cipher.encrypt("n", "global", b"value")
    with pytest.raises(SecretKeyError, match="does not decrypt"):
        cipher.decrypt("n", "global", b"v1" + blob[2:])


def test_key_ids() -> None:
    a, b = key(), key()
    assert key_id(a) == key_id(a) == Cipher(a).key_id
    assert key_id(a) != key_id(b)
    assert len(key_id(a)) == 16 and int(key_id(a), 16) >= 0
    assert base64.urlsafe_b64encode(a).decode()[:8] not in key_id(a)


def test_a_keyring_finds_ciphers_by_key_id() -> None:
    current, old = key(), key()
    ring = Keyring(current, [old])
    assert ring.current.key_id == key_id(current)
    assert ring.cipher(None) is ring.current  # stored before key ids: the current key
    assert ring.cipher(key_id(current)) is ring.current
    old_cipher = ring.cipher(key_id(old))
    assert old_cipher is not None and old_cipher.key_id == key_id(old)
    assert ring.cipher(key_id(key())) is None
    assert key_id(old) in ring and "nope" not in ring


def test_the_wrong_key_fails() -> None:
    blob = Cipher(key()).encrypt("n", "global", b"value")
    with pytest.raises(SecretKeyError, match="does not decrypt with this key") as exc:
        Cipher(key()).decrypt("n", "global", blob)
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
    blob = cipher.encrypt("n", "global", b"a longer value to tamper with")
    with pytest.raises(SecretKeyError):
        cipher.decrypt("n", "global", mangle(blob))  # type: ignore[operator]


@pytest.mark.parametrize(
    "blob", [b"", b"v1", b"v3" + bytes(40), b"v1" + bytes(27), b"v2" + bytes(27), b"plain"]
)
def test_unknown_formats_are_rejected(blob: bytes) -> None:
    with pytest.raises(SecretKeyError, match="unknown format"):
        Cipher(key()).decrypt("n", "global", blob)


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


def test_write_key_file_is_0600_exclusive_and_whole(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        k = key()
        write_key_file(tmp_path / "k", k)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    assert read_key_file(tmp_path / "k") == k
    with pytest.raises(FileExistsError):
        write_key_file(tmp_path / "k", key())
    assert read_key_file(tmp_path / "k") == k
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k"]  # nothing staged left behind


def test_load_keyring_reads_the_rotation_files_for_decryption(tmp_path: Path) -> None:
    current = load_or_create_key(tmp_path)
    new, old = key(), key()
    before = load_keyring(tmp_path)
    assert before.current.key_id == key_id(current)
    assert key_id(new) not in before and key_id(old) not in before
    write_key_file(tmp_path / "secret.key.new", new)
    write_key_file(tmp_path / "secret.key.old", old)
    ring = load_keyring(tmp_path)
    assert ring.current.key_id == key_id(current)  # they never encrypt
    assert key_id(new) in ring and key_id(old) in ring


def test_install_new_key_keeps_the_previous_one(tmp_path: Path) -> None:
    current = load_or_create_key(tmp_path)
    new = key()
    write_key_file(tmp_path / "secret.key.new", new)
    install_new_key(tmp_path)
    assert read_key_file(tmp_path / "secret.key") == new
    assert read_key_file(tmp_path / "secret.key.old") == current
    assert not (tmp_path / "secret.key.new").exists()
    for name in ("secret.key", "secret.key.old"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    newer = key()  # again: the old key file is replaced
    write_key_file(tmp_path / "secret.key.new", newer)
    install_new_key(tmp_path)
    assert read_key_file(tmp_path / "secret.key.old") == new
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.key", "secret.key.old"]


@pytest.mark.parametrize("leftover", ["secret.key.new", "secret.key.old"])
def test_no_new_key_is_made_beside_rotation_leftovers(tmp_path: Path, leftover: str) -> None:
    write_key_file(tmp_path / leftover, key())
    with pytest.raises(SecretKeyError, match=f"secret.key is missing but {leftover}"):
        load_or_create_key(tmp_path)
    assert not (tmp_path / "secret.key").exists()
