"""The audit log of secret reads on the real stores (SQLite and PostgreSQL): every read through
the access layer is a line naming the reader, the secret, the backend and how it ended, never
the value; reads alike collapse into one line; the read never waits for the store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

import ghapplets.logging as ghapplets_logging
from ghapplets.backends import Backends, open_backends
from ghapplets.config.models import ProjectConfig
from ghapplets.exceptions import InvalidSecret, NotFound, SecretScopeError, StoreUnavailable
from ghapplets.logging import redact
from ghapplets.secrets import audit as audit_module
from ghapplets.secrets.audit import SecretAudit
from ghapplets.secrets.crypto import KEY_ENV
from ghapplets.secrets.scopes import CLI, Reader, Scope
from ghapplets.store.base import SecretStore
from ghapplets.store.records import ReadOutcome, SecretReadRecord
from tests.secrets.test_kubernetes_backend import kubelet_volume


@pytest.fixture(autouse=True)
def _no_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest) -> dict[str, object]:
    if request.param == "sqlite":
        return {}
    return {"backend": "postgresql", "url": request.getfixturevalue("pg_url"), "pool_size": 3}


@pytest.fixture
async def backends(storage: dict[str, object], tmp_path: Path) -> AsyncIterator[Backends]:
    config = ProjectConfig.model_validate({"storage": storage})
    async with open_backends(config, tmp_path / "data") as b:
        yield b


def lines(rows: Sequence[SecretReadRecord]) -> list[tuple[object, ...]]:
    return sorted((r.reader, r.name, r.scope, r.backend, r.outcome, r.count) for r in rows)


async def test_every_read_is_a_line_with_reader_name_backend_and_outcome(
    backends: Backends,
) -> None:
    vault, access = backends.vault, backends.secrets
    await vault.set("shared", "shared-value-1")
    await vault.set("theirs", "theirs-value-1", scope="applet:other")
    assert await access.for_applet("deployer", ["shared"]) == {"shared": "shared-value-1"}
    assert await access.lookup(Reader.source("github"))("shared") == "shared-value-1"
    assert await access.lookup(Reader.connector("jira"))("shared") == "shared-value-1"
    assert await access.get("theirs") == "theirs-value-1"
    with pytest.raises(SecretScopeError):
        await access.for_applet("deployer", ["theirs"])
    with pytest.raises(NotFound):
        await access.for_applet("deployer", ["missing"])
    with pytest.raises(InvalidSecret):
        await access.lookup(Reader.source("github"))("../../etc/passwd")
    await backends.audit.flush()

    rows = await backends.secret_store.list_secret_reads()
    assert lines(rows) == [
        ("applet:deployer", "missing", None, "embedded", ReadOutcome.NOT_FOUND, 1),
        ("applet:deployer", "shared", "global", "embedded", ReadOutcome.OK, 1),
        ("applet:deployer", "theirs", None, "embedded", ReadOutcome.DENIED, 1),
        ("cli", "theirs", "applet:other", "embedded", ReadOutcome.OK, 1),
        ("connector:jira", "shared", "global", "embedded", ReadOutcome.OK, 1),
        ("source:github", "../../etc/passwd", None, "embedded", ReadOutcome.INVALID, 1),
        ("source:github", "shared", "global", "embedded", ReadOutcome.OK, 1),
    ]
    stored = repr(rows)
    assert "shared-value-1" not in stored and "theirs-value-1" not in stored
    assert all(r.at > 0 for r in rows)


async def test_reads_alike_while_a_write_is_under_way_are_one_line(backends: Backends) -> None:
    await backends.vault.set("hot", "hot-value-1")
    reads = [backends.secrets.for_applet("busy", ["hot"]) for _ in range(200)]
    await asyncio.gather(*reads)
    await backends.audit.flush()
    rows = await backends.secret_store.list_secret_reads(name="hot")
    assert sum(r.count for r in rows) == 200
    assert len(rows) <= 100  # not a row per read
    assert {(r.reader, r.outcome) for r in rows} == {("applet:busy", ReadOutcome.OK)}


async def test_a_kubernetes_read_is_audited_and_redacted(
    storage: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    volume = kubelet_volume(tmp_path / "mounted", {"applets/triage/tok": b"k8s-token-value-9"})
    config = ProjectConfig.model_validate(
        {"storage": storage, "secrets": {"backend": "kubernetes", "path": str(volume)}}
    )
    monkeypatch.setattr(ghapplets_logging, "_SECRETS", set())
    monkeypatch.setattr(ghapplets_logging, "_ORDERED", ())
    async with open_backends(config, tmp_path / "data") as b:
        assert await b.secrets.for_applet("triage", ["tok"]) == {"tok": "k8s-token-value-9"}
        assert redact("log k8s-token-value-9 line") == "log *** line"
        assert await b.secrets.get("tok", Scope.applet("triage")) == "k8s-token-value-9"
        await b.audit.flush()
        rows = await b.secret_store.list_secret_reads()
    assert lines(rows) == [
        ("applet:triage", "tok", "applet:triage", "kubernetes", ReadOutcome.OK, 1),
        ("cli", "tok", "applet:triage", "kubernetes", ReadOutcome.OK, 1),
    ]
    assert not (tmp_path / "data" / "secret.key").exists()  # no key needed for these reads


class FailingStore:
    """A store that cannot take audit lines until ``up`` is set."""

    def __init__(self) -> None:
        self.up = False
        self.written: list[SecretReadRecord] = []

    async def record_secret_reads(self, reads: Sequence[SecretReadRecord]) -> None:
        if not self.up:
            raise StoreUnavailable("the store is down")
        self.written.extend(reads)


async def test_a_store_that_cannot_write_does_not_fail_reads_and_is_tried_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(audit_module, "RETRY_AFTER", 0.01)
    store = FailingStore()
    audit = SecretAudit(store, "embedded")  # type: ignore[arg-type]
    audit.record(CLI, "a", ReadOutcome.OK, "global")  # returns at once
    await asyncio.sleep(0.05)
    audit.record(CLI, "a", ReadOutcome.OK, "global")
    assert store.written == []
    store.up = True
    await audit.flush()
    assert [(r.name, r.count) for r in store.written] == [("a", 2)]


async def test_close_writes_what_waits_and_counts_what_it_cannot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    warnings: list[dict[str, object]] = []
    monkeypatch.setattr(
        audit_module.log, "warning", lambda event, **kw: warnings.append({"event": event, **kw})
    )
    store = FailingStore()
    audit = SecretAudit(store, "embedded", max_pending=2)  # type: ignore[arg-type]
    for name in ("a", "b", "c", "a"):
        audit.record(CLI, name, ReadOutcome.OK)
    await audit.close()
    assert store.written == []
    assert warnings[-1]["count"] == 4  # "c" found no room; a, a and b could not be written
    assert "not audited" in str(warnings[-1]["event"])


def test_the_store_contract_has_the_audit_methods() -> None:
    for method in ("record_secret_reads", "list_secret_reads", "prune_secret_reads"):
        assert method in SecretStore.__abstractmethods__
