"""The embedded vault on the real store, and ``${env:..}`` / ``${secret:..}`` references."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from ghapplets.backends import Backends, open_backends
from ghapplets.config.models import ProjectConfig
from ghapplets.exceptions import (
    InvalidSecret,
    NotFound,
    SecretKeyError,
    SecretScopeError,
    UnresolvedReference,
)
from ghapplets.logging import redact
from ghapplets.secrets.crypto import KEY_ENV, Cipher, load_or_create_key
from ghapplets.secrets.refs import parse_ref, resolve
from ghapplets.secrets.vault import SecretVault


@pytest.fixture(autouse=True)
def _no_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


@pytest.fixture
async def backends(tmp_path: Path) -> AsyncIterator[Backends]:
    async with open_backends(ProjectConfig(), tmp_path / "data") as b:
        yield b


async def test_set_get_list_delete(backends: Backends) -> None:
    vault = backends.vault
    await vault.set("b-token", "value-b-0001")
    await vault.set("a-token", "value-a-0001", scope="applet:x")
    assert await vault.get("a-token") == "value-a-0001"
    assert [(s.name, s.scope) for s in await vault.list()] == [
        ("a-token", "applet:x"),
        ("b-token", "global"),
    ]
    await vault.set("a-token", "value-a-0002")
    assert await vault.get("a-token") == "value-a-0002"
    assert dict(await vault.for_applet("x", ["a-token", "b-token"])) == {
        "a-token": "value-a-0002",
        "b-token": "value-b-0001",
    }
    assert await vault.delete("a-token") is True
    assert await vault.delete("a-token") is False
    with pytest.raises(NotFound, match="no secret named 'a-token'"):
        await vault.get("a-token")
    with pytest.raises(NotFound):
        await vault.for_applet("x", ["b-token", "a-token"])


async def test_values_read_or_written_are_redacted_from_logs(backends: Backends) -> None:
    await backends.vault.set("t", "written-value-77aa")
    assert redact("x written-value-77aa y") == "x *** y"


async def test_the_stored_bytes_are_ciphertext_bound_to_the_name(backends: Backends) -> None:
    await backends.vault.set("one", "plain-value-1234")
    record = await backends.secret_store.get_secret("one")
    assert b"plain-value-1234" not in record.ciphertext
    # the same bytes under another name do not open
    with pytest.raises(SecretKeyError):
        backends.vault.cipher.decrypt("two", record.ciphertext)


async def test_a_vault_with_another_key_cannot_read(backends: Backends, tmp_path: Path) -> None:
    await backends.vault.set("one", "plain-value-1234")
    other = SecretVault(backends.secret_store, Cipher(load_or_create_key(tmp_path / "other")))
    with pytest.raises(SecretKeyError, match="'one' does not decrypt"):
        await other.get("one")
    assert [s.name for s in await other.list()] == ["one"]  # listing needs no key


# -- scopes --------------------------------------------------------------------------------
async def test_an_applet_gets_global_secrets_and_its_own_only(backends: Backends) -> None:
    vault = backends.vault
    await vault.set("shared", "shared-value-1")
    await vault.set("mine", "mine-value-1", scope="applet:deployer")
    await vault.set("theirs", "theirs-value-1", scope="applet:notifier")
    await vault.set("flow", "flow-value-1", scope="blueprint:deployer")
    got = await vault.for_applet("deployer", ["shared", "mine"])
    assert dict(got) == {"shared": "shared-value-1", "mine": "mine-value-1"}
    for name, scope in (("theirs", "applet:notifier"), ("flow", "blueprint:deployer")):
        with pytest.raises(SecretScopeError) as exc:
            await vault.for_applet("deployer", ["shared", name])
        message = str(exc.value)
        assert f"secret {name!r} is scoped to {scope}" in message
        assert "applet 'deployer' may read only global secrets and those of applet:deployer" in (
            message
        )
        assert f"{name}-value" not in message
    assert await vault.get("theirs") == "theirs-value-1"  # the operator reads any scope


async def test_source_settings_get_global_secrets_only(backends: Backends) -> None:
    vault = backends.vault
    await vault.set("hook", "hook-value-1")
    await vault.set("private-hook", "private-value-1", scope="applet:deployer")
    assert await vault.get_global("hook") == "hook-value-1"
    with pytest.raises(SecretScopeError, match="a source's settings may read only global"):
        await vault.get_global("private-hook")
    assert await resolve("${secret:hook}", vault.get_global) == "hook-value-1"
    with pytest.raises(UnresolvedReference) as exc:
        await resolve("${secret:private-hook}", vault.get_global)
    assert "scoped to applet:deployer" in str(exc.value)
    assert "(from ${secret:private-hook})" in str(exc.value)
    assert "private-value-1" not in str(exc.value)


async def test_a_secret_with_an_unknown_scope_is_handed_to_nobody(backends: Backends) -> None:
    # stored by an older version, which took any text as a scope
    await backends.vault.set("odd", "odd-value-1")
    record = await backends.secret_store.get_secret("odd")
    blob = backends.vault.cipher.encrypt("odd", b"odd-value-1")
    await backends.secret_store.put_secret(replace(record, scope="team-a", ciphertext=blob))
    for read in (backends.vault.get_global("odd"), backends.vault.for_applet("x", ["odd"])):
        with pytest.raises(SecretScopeError, match="has scope 'team-a', which is not global"):
            await read


@pytest.mark.parametrize(
    "scope", ["applet", "applet:", "applet:Upper", "team-a", "global:x", "applet:a b", ""]
)
async def test_invalid_scopes_are_refused(backends: Backends, scope: str) -> None:
    with pytest.raises(InvalidSecret, match="invalid scope"):
        await backends.vault.set("x", "value-1234", scope=scope)


@pytest.mark.parametrize("name", ["", "-x", "has space", "a/b", "x" * 129, "ünï"])
async def test_invalid_names(backends: Backends, name: str) -> None:
    with pytest.raises(InvalidSecret, match="invalid secret name"):
        await backends.vault.set(name, "v")


async def test_empty_value(backends: Backends) -> None:
    with pytest.raises(InvalidSecret, match="cannot be empty"):
        await backends.vault.set("x", "")


@pytest.mark.parametrize("name", ["key", "KEY", "Key"])
async def test_a_name_that_would_be_the_key_variable_is_refused(
    backends: Backends, name: str
) -> None:
    with pytest.raises(InvalidSecret, match="GHAPPLETS_SECRET_KEY") as exc:
        await backends.vault.set(name, "value-1234")
    assert "reserved" in str(exc.value)
    await backends.vault.set("key-id", "value-1234")  # GHAPPLETS_SECRET_KEY_ID is fine


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


async def test_an_unknown_secret_is_named_with_a_fix() -> None:
    with pytest.raises(UnresolvedReference) as exc:
        await resolve("${secret:missing}", _lookup)
    assert "no stored secret named 'missing'" in str(exc.value)
    assert "ghapplets secrets set missing" in str(exc.value)
