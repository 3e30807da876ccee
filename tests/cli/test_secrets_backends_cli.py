"""``ghapplets secrets`` on the external backends (Kubernetes files, a real OpenBao server), and
``ghapplets secrets audit``: reads are listed (as JSON Lines with ``--json``), never values."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.cli.helpers import Result, cli
from tests.secrets.test_kubernetes_backend import kubelet_volume
from tests.servers import OpenBaoServer, free_port

HOOK = "k8s-hook-value-123"
TOKEN = "triage-token-value-456"


def secrets(project: Path, *args: object, env: dict[str, str] | None = None) -> Result:
    return cli("secrets", *args, "-p", project, env=env)


@pytest.fixture
def k8s_project(tmp_path: Path) -> Path:
    kubelet_volume(
        tmp_path / "mounted", {"hook": HOOK.encode(), "applets/triage/token": TOKEN.encode()}
    )
    (tmp_path / "ghapplets.yaml").write_text(
        "project: k8s\nsecrets:\n  backend: kubernetes\n  path: mounted\n"
    )
    return tmp_path


def test_kubernetes_secrets_are_read_listed_and_audited(k8s_project: Path) -> None:
    masked = secrets(k8s_project, "get", "hook")
    assert masked.code == 0 and HOOK not in masked.out and "********" in masked.out, masked
    assert secrets(k8s_project, "get", "hook", "--reveal").out == HOOK + "\n"
    scoped = secrets(k8s_project, "get", "token", "--scope", "applet:triage", "--reveal")
    assert scoped.out == TOKEN + "\n"
    missing = secrets(k8s_project, "get", "token")  # the global one: there is none
    assert missing.code == 4 and "no secret named 'token' at " in missing.err, missing

    rows = secrets(k8s_project, "list", "--json").json_lines()
    assert [(r["name"], r["scope"], r["key_id"]) for r in rows] == [
        ("hook", "global", None),
        ("token", "applet:triage", None),
    ]

    audit = secrets(k8s_project, "audit", "--json")
    assert audit.code == 0, audit
    lines = audit.json_lines()
    assert [(r["reader"], r["name"], r["scope"], r["outcome"]) for r in lines] == [
        ("cli", "token", None, "not_found"),
        ("cli", "token", "applet:triage", "ok"),
        ("cli", "hook", "global", "ok"),
        ("cli", "hook", "global", "ok"),
    ]
    assert {r["backend"] for r in lines} == {"kubernetes"}
    assert set(lines[0]) == {"at", "reader", "name", "backend", "outcome", "scope", "count"}
    table = secrets(k8s_project, "audit", "--name", "hook")
    assert table.code == 0 and "hook" in table.out and "token" not in table.out
    for output in (audit.out, table.out, masked.out, masked.err):
        assert HOOK not in output and TOKEN not in output


def test_audit_filters_by_time(k8s_project: Path) -> None:
    assert secrets(k8s_project, "get", "hook").code == 0
    assert len(secrets(k8s_project, "audit", "--json", "--since", "1h").json_lines()) == 1
    assert len(secrets(k8s_project, "audit", "--json", "--since", "2000-01-01").json_lines()) == 1
    assert secrets(k8s_project, "audit", "--json", "--since", "2999-01-01T00:00").out == ""
    bad = secrets(k8s_project, "audit", "--since", "yesterday")
    assert bad.code == 2 and "--since 'yesterday'" in bad.err


def test_kubernetes_refuses_writes_with_what_to_do(k8s_project: Path) -> None:
    for command in (
        ("set", "hook", "--value", "new-value-1234"),
        ("rm", "hook"),
    ):
        refused = secrets(k8s_project, *command)
        assert refused.code == 2, refused
        assert "only reads: change the Kubernetes Secret instead" in refused.err
    rotate = secrets(k8s_project, "rotate-key")
    assert rotate.code == 2 and "secrets.backend is kubernetes" in rotate.err, rotate
    assert secrets(k8s_project, "get", "hook", "--reveal").out == HOOK + "\n"


@pytest.mark.parametrize("name", ["../hook", "a/b"])
def test_a_name_that_is_a_path_is_a_usage_error(k8s_project: Path, name: str) -> None:
    refused = secrets(k8s_project, "get", name)
    assert refused.code == 2 and "invalid secret name" in refused.err, refused


def bao_project(root: Path, address: str, prefix: str) -> Path:
    (root / "ghapplets.yaml").write_text(
        "project: bao\nsecrets:\n  backend: openbao\n"
        f"  address: {address}\n  prefix: {prefix}\n  token: ${{env:BAO_TOKEN}}\n"
        "  timeout: 2\n"
    )
    return root


def test_openbao_secrets_are_set_read_listed_removed_and_audited(
    openbao_server: OpenBaoServer, tmp_path: Path
) -> None:
    project = bao_project(tmp_path, openbao_server.address, f"cli-{uuid.uuid4().hex[:8]}")
    env = {"BAO_TOKEN": openbao_server.token}
    stored = secrets(project, "set", "token", "--value", TOKEN, "--scope", "applet:triage", env=env)
    assert stored.code == 0 and "stored secret token (applet:triage)" in stored.out, stored
    assert secrets(project, "set", "hook", "--value", HOOK, env=env).code == 0
    got = secrets(project, "get", "token", "--scope", "applet:triage", "--reveal", env=env)
    assert got.code == 0 and got.out == TOKEN + "\n", got
    rows = secrets(project, "list", "--json", env=env).json_lines()
    assert [(r["name"], r["scope"]) for r in rows] == [
        ("hook", "global"),
        ("token", "applet:triage"),
    ]
    removed = secrets(project, "rm", "token", "--scope", "applet:triage", env=env)
    assert removed.code == 0, removed
    assert secrets(project, "rm", "token", "--scope", "applet:triage", env=env).code == 4
    lines = secrets(project, "audit", "--json", env=env).json_lines()
    assert [(r["reader"], r["name"], r["backend"], r["outcome"]) for r in lines] == [
        ("cli", "token", "openbao", "ok")
    ]
    assert secrets(project, "rotate-key", env=env).code == 2


def test_openbao_refusing_or_down_is_a_clear_exit(
    openbao_server: OpenBaoServer, tmp_path: Path
) -> None:
    project = bao_project(tmp_path, openbao_server.address, "cli-refused")
    denied = secrets(project, "get", "hook", env={"BAO_TOKEN": "wrong-token-789"})
    assert denied.code == 3 and "denied reading secret/cli-refused/hook" in denied.err, denied
    assert "wrong-token-789" not in denied.err
    unset = secrets(project, "get", "hook")
    assert unset.code == 3 and "environment variable BAO_TOKEN is not set" in unset.err, unset
    down = bao_project(tmp_path, f"http://127.0.0.1:{free_port()}", "cli-down")
    gone = secrets(down, "get", "hook", env={"BAO_TOKEN": "any"})
    assert gone.code == 1 and "cannot be reached" in gone.err, gone


def test_embedded_reads_are_audited_too(tmp_path: Path) -> None:
    assert secrets(tmp_path, "set", "api-token", "--value", TOKEN).code == 0
    assert secrets(tmp_path, "get", "api-token").code == 0
    lines = secrets(tmp_path, "audit", "--json").json_lines()
    assert [
        (r["reader"], r["name"], r["backend"], r["scope"], r["outcome"], r["count"]) for r in lines
    ] == [("cli", "api-token", "embedded", "global", "ok", 1)]
