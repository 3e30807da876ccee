"""The vault on the real stores (SQLite and PostgreSQL): values encrypted and bound to their
name and scope, handed out by scope (through the audited access), rotated to a new key in one
transaction; and ``${env:..}`` / ``${secret:..}`` references."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import ghapplets.logging as ghapplets_logging
from ghapplets.backends import Backends, open_backends
from ghapplets.config.models import ProjectConfig
from ghapplets.exceptions import (
    InvalidSecret,
    NotFound,
    SecretKeyError,
    SecretKeyMismatch,
    SecretScopeError,
    UnresolvedReference,
)
from ghapplets.logging import redact
from ghapplets.secrets.crypto import (
    KEY_ENV,
    Keyring,
    generate_key,
    install_new_key,
    key_id,
    load_keyring,
    load_or_create_key,
    write_key_file,
)
from ghapplets.secrets.refs import parse_ref, resolve
from ghapplets.secrets.scopes import Reader, Scope
from ghapplets.secrets.vault import SecretVault
from ghapplets.store.records import SecretRecord


@pytest.fixture(autouse=True)
def _no_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


def config(kind: str, request: pytest.FixtureRequest) -> ProjectConfig:
    if kind == "sqlite":
        return ProjectConfig()
    url = request.getfixturevalue("pg_url")
    return ProjectConfig(storage={"backend": "postgresql", "url": url, "pool_size": 3})


@pytest.fixture(params=["sqlite", "postgresql"])
def store_config(request: pytest.FixtureRequest) -> ProjectConfig:
    return config(request.param, request)


@pytest.fixture
async def backends(store_config: ProjectConfig, tmp_path: Path) -> AsyncIterator[Backends]:
    async with open_backends(store_config, tmp_path / "data") as b:
        yield b


def new_key() -> bytes:
    return base64.urlsafe_b64decode(generate_key())


async def test_set_get_list_delete(backends: Backends) -> None:
    vault = backends.vault
    await vault.set("b-token", "value-b-0001")
    await vault.set("a-token", "value-a-0001", scope="applet:x")
    assert await vault.get("a-token") == "value-a-0001"
    backend = backends.secret_backend
    assert [(s.name, s.scope) for s in await backend.list()] == [
        ("a-token", "applet:x"),
        ("b-token", "global"),
    ]
    assert {s.key_id for s in await backend.list()} == {vault.keys.current.key_id}
    assert await vault.set("a-token", "value-a-0002") == "applet:x"  # a new value keeps the scope
    assert await vault.get("a-token") == "value-a-0002"
    assert dict(await backends.secrets.for_applet("x", ["a-token", "b-token"])) == {
        "a-token": "value-a-0002",
        "b-token": "value-b-0001",
    }
    assert await backend.delete("a-token", Scope.parse("global")) is False  # not of that scope
    assert await backend.delete("a-token") is True
    assert await backend.delete("a-token") is False
    with pytest.raises(NotFound, match="no secret named 'a-token'"):
        await vault.get("a-token")
    with pytest.raises(NotFound):
        await backends.secrets.for_applet("x", ["b-token", "a-token"])


async def test_values_read_or_written_are_redacted_from_logs(
    backends: Backends, monkeypatch: pytest.MonkeyPatch
) -> None:
    await backends.vault.set("t", "written-value-77aa")
    assert redact("x written-value-77aa y") == "x *** y"
    await backends.vault.set("r", "read-value-88bb")
    # as in a process that only reads it
    monkeypatch.setattr(ghapplets_logging, "_SECRETS", set())
    monkeypatch.setattr(ghapplets_logging, "_ORDERED", ())
    assert redact("x read-value-88bb y") == "x read-value-88bb y"
    assert await backends.vault.get("r") == "read-value-88bb"
    assert redact("x read-value-88bb y") == "x *** y"


async def test_the_stored_bytes_are_ciphertext_bound_to_name_and_scope(
    backends: Backends,
) -> None:
    vault, store = backends.vault, backends.secret_store
    await vault.set("one", "plain-value-1234", scope="applet:deployer")
    record = await store.get_secret("one")
    assert b"plain-value-1234" not in record.ciphertext
    assert record.ciphertext.startswith(b"v2")
    # the same bytes under another name, or in another scope, do not open
    await store.put_secret(replace(record, name="two"))
    with pytest.raises(SecretKeyError, match="'two' does not decrypt"):
        await vault.get("two")
    for scope in ("global", "applet:other"):
        await store.put_secret(replace(record, scope=scope))
        with pytest.raises(SecretKeyError, match="'one' does not decrypt"):
            await vault.get("one")
    await store.put_secret(record)  # back where it was: it opens again
    assert await vault.get("one") == "plain-value-1234"


async def test_a_vault_with_another_key_cannot_read(backends: Backends) -> None:
    await backends.vault.set("one", "plain-value-1234")
    record = await backends.secret_store.get_secret("one")
    other = SecretVault(backends.secret_store, Keyring(new_key()))
    with pytest.raises(SecretKeyMismatch, match=f"encrypted with key {record.key_id}") as exc:
        await other.get("one")
    assert "rotate-key" in str(exc.value) and exc.value.stored == record.key_id
    assert [s.name for s in await other.list()] == ["one"]  # listing needs no key


# -- scopes --------------------------------------------------------------------------------
async def test_an_applet_gets_global_secrets_and_its_own_only(backends: Backends) -> None:
    vault, access = backends.vault, backends.secrets
    await vault.set("shared", "shared-value-1")
    await vault.set("mine", "mine-value-1", scope="applet:deployer")
    await vault.set("theirs", "theirs-value-1", scope="applet:notifier")
    await vault.set("flow", "flow-value-1", scope="blueprint:deployer")
    got = await access.for_applet("deployer", ["shared", "mine"])
    assert dict(got) == {"shared": "shared-value-1", "mine": "mine-value-1"}
    for name, scope in (("theirs", "applet:notifier"), ("flow", "blueprint:deployer")):
        with pytest.raises(SecretScopeError) as exc:
            await access.for_applet("deployer", ["shared", name])
        message = str(exc.value)
        assert f"secret {name!r} is scoped to {scope}" in message
        assert "applet 'deployer' may read only global secrets and those of applet:deployer" in (
            message
        )
        assert f"{name}-value" not in message
    assert await vault.get("theirs") == "theirs-value-1"  # the operator reads any scope


async def test_source_settings_get_global_secrets_only(backends: Backends) -> None:
    vault, lookup = backends.vault, backends.secrets.lookup(Reader.source("gh"))
    await vault.set("hook", "hook-value-1")
    await vault.set("private-hook", "private-value-1", scope="applet:deployer")
    assert await lookup("hook") == "hook-value-1"
    with pytest.raises(SecretScopeError, match=r"source 'gh' may read only global secrets$"):
        await lookup("private-hook")
    assert await resolve("${secret:hook}", lookup) == "hook-value-1"
    with pytest.raises(UnresolvedReference) as exc:
        await resolve("${secret:private-hook}", lookup)
    assert "scoped to applet:deployer" in str(exc.value)
    assert "(from ${secret:private-hook})" in str(exc.value)
    assert "private-value-1" not in str(exc.value)


async def test_a_secret_with_an_unknown_scope_is_handed_to_nobody(backends: Backends) -> None:
    # stored by an older version, which took any text as a scope
    await backends.vault.set("odd", "odd-value-1")
    record = await backends.secret_store.get_secret("odd")
    cipher = backends.vault.keys.current
    blob = cipher.encrypt("odd", "team-a", b"odd-value-1")
    await backends.secret_store.put_secret(replace(record, scope="team-a", ciphertext=blob))
    access = backends.secrets
    for read in (access.lookup(Reader.source("gh"))("odd"), access.for_applet("x", ["odd"])):
        with pytest.raises(SecretScopeError, match="has the invalid scope 'team-a'"):
            await read


@pytest.mark.parametrize(
    "scope", ["applet", "applet:", "applet:Upper", "team-a", "global:x", "applet:a b", ""]
)
async def test_invalid_scopes_are_refused(backends: Backends, scope: str) -> None:
    with pytest.raises(InvalidSecret, match="invalid scope"):
        await backends.vault.set("x", "value-1234", scope=scope)


@pytest.mark.parametrize("name", ["key", "KEY", "Key"])
async def test_a_name_that_would_be_the_key_variable_is_refused(
    backends: Backends, name: str
) -> None:
    with pytest.raises(InvalidSecret, match="GHAPPLETS_SECRET_KEY") as exc:
        await backends.vault.set(name, "value-1234")
    assert "reserved" in str(exc.value)
    await backends.vault.set("key-id", "value-1234")  # GHAPPLETS_SECRET_KEY_ID is fine


# -- key ids, old formats, rotation -----------------------------------------------------------
async def put_v1(backends: Backends, name: str, value: str, scope: str = "global") -> None:
    """A secret as stored before format v2 and key ids: bound to its name, no key id."""
    key = load_or_create_key(backends.data_dir)
    nonce = os.urandom(12)
    blob = b"v1" + nonce + AESGCM(key).encrypt(nonce, value.encode(), name.encode())
    await backends.secret_store.put_secret(SecretRecord(name, scope, blob, 1.0, 1.0))


async def test_secrets_stored_before_v2_still_read(backends: Backends) -> None:
    await put_v1(backends, "legacy", "legacy-value-1", scope="applet:a")
    assert (await backends.secret_store.get_secret("legacy")).key_id is None
    assert await backends.vault.get("legacy") == "legacy-value-1"
    assert await backends.secrets.for_applet("a", ["legacy"]) == {"legacy": "legacy-value-1"}


async def test_rotate_re_encrypts_everything_under_the_new_key(backends: Backends) -> None:
    vault, store = backends.vault, backends.secret_store
    await put_v1(backends, "legacy", "legacy-value-1")
    await vault.set("current", "current-value-1", scope="applet:a")
    old_id = vault.keys.current.key_id
    before = {r.name: r for r in await store.list_secrets()}
    key = new_key()
    done = await vault.rotate(key)
    assert (done.count, done.upgraded, done.key_id) == (2, 1, key_id(key))
    assert done.previous == {None, old_id}
    after = {r.name: r for r in await store.list_secrets()}
    for name, record in after.items():
        assert record.key_id == key_id(key) and record.ciphertext.startswith(b"v2")
        assert record.ciphertext != before[name].ciphertext
        assert (record.scope, record.created_at, record.updated_at) == (
            before[name].scope,
            before[name].created_at,
            before[name].updated_at,
        )
    # the rotated vault, and a vault with the new key only, read them; the old key cannot
    assert await vault.get("legacy") == "legacy-value-1"
    fresh = SecretVault(store, Keyring(key))
    assert await fresh.read("current", Scope.applet("a")) == ("current-value-1", "applet:a")
    assert await fresh.read("legacy", Scope.applet("a")) == ("legacy-value-1", "global")
    stale = SecretVault(store, Keyring(load_or_create_key(backends.data_dir)))
    with pytest.raises(SecretKeyMismatch, match="rotate-key"):
        await stale.get("current")
    # and the bound name and scope still hold after the rotation
    moved = replace(after["current"], scope="global")
    await store.put_secret(moved)
    with pytest.raises(SecretKeyError, match="'current' does not decrypt"):
        await fresh.get("current")


@pytest.mark.parametrize("labelled", [False, True])
async def test_rotate_is_all_or_nothing(backends: Backends, labelled: bool) -> None:
    vault, store = backends.vault, backends.secret_store
    for i in range(5):
        await vault.set(f"s{i}", f"value-{i}-abcd")
    # one secret under a key nobody has (written past the vault), with its key id or without
    # one (as if stored before key ids, with another key)
    stranger = Keyring(new_key()).current
    blob = stranger.encrypt("s3", "global", b"lost")
    label = stranger.key_id if labelled else None
    await store.reencrypt_secrets(
        lambda rows: [replace(r, ciphertext=blob, key_id=label) for r in rows if r.name == "s3"]
    )
    before = await store.list_secrets()
    message = f"'s3' is encrypted with key {stranger.key_id}" if labelled else "'s3' does not"
    with pytest.raises(SecretKeyError, match=message):
        await vault.rotate(new_key())
    assert await store.list_secrets() == before  # not one row changed
    assert await vault.get("s1") == "value-1-abcd"


async def test_writes_follow_the_key_the_store_is_under(backends: Backends) -> None:
    vault, store = backends.vault, backends.secret_store
    await vault.set("a", "value-a-1234")
    old = vault.keys.current
    old_key = load_or_create_key(backends.data_dir)
    # another process rotates; this vault has the key files to reload (Backends gives it them)
    key = new_key()
    await SecretVault(store, Keyring(old_key)).rotate(key)
    write_key_file(backends.data_dir / "secret.key.new", key)
    install_new_key(backends.data_dir)
    assert vault.keys.current.key_id == old.key_id
    await vault.set("b", "value-b-1234")  # refused under the old key, then the new one
    assert vault.keys.current.key_id == key_id(key)
    assert {r.key_id for r in await store.list_secrets()} == {key_id(key)}
    assert await vault.get("a") == "value-a-1234"
    # a vault without that key, and no files to reload, is refused, and told why
    stale = SecretVault(store, Keyring(old_key))
    with pytest.raises(SecretKeyMismatch, match=f"secrets are encrypted with key {key_id(key)}"):
        await stale.set("c", "value-c-1234")
    assert [r.name for r in await store.list_secrets()] == ["a", "b"]


async def test_an_interrupted_rotation_still_reads(backends: Backends) -> None:
    """Killed between the commit and the key file swap: secret.key.new has the new key."""
    await backends.vault.set("a", "value-a-1234")
    key = new_key()
    write_key_file(backends.data_dir / "secret.key.new", key)
    await SecretVault(backends.secret_store, backends.vault.keys).rotate(key)
    # another process, started now, reads the key files as Backends does
    fresh = SecretVault(backends.secret_store, load_keyring(backends.data_dir))
    assert fresh.keys.current.key_id != key_id(key)
    assert await fresh.get("a") == "value-a-1234"
    await fresh.set("b", "value-b-1234")  # with the key the store is under
    assert {r.key_id for r in await backends.secret_store.list_secrets()} == {key_id(key)}


@pytest.mark.parametrize("name", ["", "-x", "has space", "a/b", "x" * 129, "ünï"])
async def test_invalid_names(backends: Backends, name: str) -> None:
    with pytest.raises(InvalidSecret, match="invalid secret name"):
        await backends.vault.set(name, "v")


async def test_empty_value(backends: Backends) -> None:
    with pytest.raises(InvalidSecret, match="cannot be empty"):
        await backends.vault.set("x", "")


def test_parse_ref() -> None:
    assert parse_ref("${env:GITHUB_WEBHOOK_SECRET}") == ("env", "GITHUB_WEBHOOK_SECRET")
    assert parse_ref(" ${secret:github-webhook} ") == ("secret", "github-webhook")
    for literal in ("plain", "${env:A}${env:B}", "x${env:A}", "${file:/etc/passwd}", "${env:}"):
        assert parse_ref(literal) is None


async def _lookup(name: str) -> str:
    if name == "known":
        return "stored-value"
    raise NotFound(name)


async def test_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GHAPPLETS_TEST_REF", "from-env")
    assert await resolve("${env:GHAPPLETS_TEST_REF}", _lookup) == "from-env"
    assert await resolve("${secret:known}", _lookup) == "stored-value"
    assert await resolve("literal-value", _lookup) == "literal-value"


async def test_an_unset_or_empty_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GHAPPLETS_TEST_UNSET", raising=False)
    with pytest.raises(UnresolvedReference, match="GHAPPLETS_TEST_UNSET is not set"):
        await resolve("${env:GHAPPLETS_TEST_UNSET}", _lookup)
    monkeypatch.setenv("GHAPPLETS_TEST_UNSET", "")
    with pytest.raises(UnresolvedReference, match="GHAPPLETS_TEST_UNSET"):
        await resolve("${env:GHAPPLETS_TEST_UNSET}", _lookup)


async def test_an_unknown_secret_is_named_with_a_fix(backends: Backends) -> None:
    with pytest.raises(UnresolvedReference) as exc:
        await resolve("${secret:missing}", backends.secrets.lookup(Reader.source("gh")))
    assert "no stored secret named 'missing'" in str(exc.value)
    assert "ghapplets secrets set missing" in str(exc.value)
