"""End to end, the acceptance interface: ``ghapplets tokens create`` and a real ``ghapplets
serve --processes 2``, whose admin API (on its own address, one listening socket for every
gateway process) lists deliveries and dead jobs and replays one, which then succeeds; the
webhook port has no /api/v1; the token is printed once and appears in no log and no listing."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.admin.harness import build_project
from tests.cli.helpers import clean_env, cli, ghapplets, poll, serving
from tests.conftest import ProjectBuilder, free_port

LISTEN = "0A"  # the TCP state LISTEN in /proc/net/tcp


def listeners_on(port: int) -> int:
    """How many listening TCP sockets of this machine are bound to ``port`` (IPv4)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state = fields[1], fields[3]
        if state == LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
            count += 1
    return count


def test_tokens_and_the_admin_api_of_a_real_server(project: ProjectBuilder, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    root = build_project(project, marker)
    made = ghapplets("tokens", "create", "ops", "--role", "operator", cwd=root)
    assert made.code == 0, made
    token = made.out.strip().splitlines()[-1]
    assert token.startswith("gha_") and "created" in made.err and token not in made.err
    duplicate = ghapplets("tokens", "create", "ops", "--role", "viewer", cwd=root)
    assert duplicate.code == 1 and "exists" in duplicate.err
    assert ghapplets("tokens", "create", "bad name", "--role", "viewer", cwd=root).code == 2
    assert ghapplets("tokens", "create", "x", "--role", "boss", cwd=root).code == 2

    admin_port = free_port()
    env = clean_env(GHAPPLETS_SERVER__ADMIN_ADDRESS=f"127.0.0.1:{admin_port}")
    bearer = {"Authorization": f"Bearer {token}"}
    api = f"http://127.0.0.1:{admin_port}/api/v1"
    with serving(root, "--processes", "2", env=env) as server:
        assert listeners_on(admin_port) == 1  # one socket, shared by both gateways
        sent = cli(
            "send", "issues.opened", "--delivery-id", "e2e-1", "--url", server.url, "-p", root
        )
        assert sent.code == 0 and sent.out.startswith("202 "), sent

        def dead() -> list[dict[str, str]]:
            got = httpx.get(f"{api}/jobs", params={"status": "dead"}, headers=bearer)
            assert got.status_code == 200, got.text
            return got.json()["items"]  # type: ignore[no-any-return]

        (job,) = poll(dead, timeout=30)
        assert job["id"] == "github:e2e-1:picky"
        deliveries = httpx.get(f"{api}/deliveries", headers=bearer).json()
        assert [d["id"] for d in deliveries["items"]] == ["e2e-1"]
        for _ in range(6):  # every gateway process answers on the one admin socket
            assert httpx.get(f"{api}/health", headers=bearer).json()["status"] == "ok"
        marker.write_text("go")
        replayed = httpx.post(f"{api}/jobs/{job['id']}/replay", headers=bearer)
        assert replayed.status_code == 202, replayed.text

        def succeeded() -> bool:
            shown = httpx.get(f"{api}/jobs/{job['id']}", headers=bearer).json()
            return shown["status"] == "succeeded"

        poll(succeeded, timeout=30)
        # the webhook port serves no admin API, with or without a token
        assert httpx.get(f"{server.url}/api/v1/deliveries", headers=bearer).status_code == 404
        assert httpx.get(f"{server.url}/api/v1/openapi.json").status_code == 404
        # wrong token: 401, and nothing of it answered back
        wrong = httpx.get(f"{api}/deliveries", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "nope" not in wrong.text
        listed = ghapplets("tokens", "list", "--json", cwd=root)
        assert listed.code == 0 and token not in listed.out
        (row,) = listed.json_lines()
        assert row["name"] == "ops" and row["last_used_at"] is not None
        revoked = ghapplets("tokens", "revoke", "ops", cwd=root)
        assert revoked.code == 0, revoked
        assert httpx.get(f"{api}/deliveries", headers=bearer).status_code == 401
        log = server.log_text()
    assert token not in log
    assert ghapplets("tokens", "revoke", "nobody", cwd=root).code == 4
    table = ghapplets("tokens", "list", cwd=root)
    assert table.code == 0 and "ops" in table.out and token not in table.out


def test_no_admin_api_when_the_address_is_empty(project: ProjectBuilder, tmp_path: Path) -> None:
    root = build_project(project, tmp_path / "marker")
    env = clean_env(GHAPPLETS_SERVER__ADMIN_ADDRESS="")
    with serving(root, "--processes", "1", env=env) as server:
        assert "admin API listening" not in server.log_text()
        assert httpx.get(f"{server.url}/api/v1/health").status_code == 404


def test_a_lone_gateway_binds_the_admin_api_itself(project: ProjectBuilder, tmp_path: Path) -> None:
    import subprocess
    import sys

    root = build_project(project, tmp_path / "marker")
    made = ghapplets("tokens", "create", "ops", "--role", "viewer", cwd=root)
    token = made.out.strip().splitlines()[-1]
    port, admin_port = free_port(), free_port()
    env = clean_env(GHAPPLETS_SERVER__ADMIN_ADDRESS=f"127.0.0.1:{admin_port}")
    log = tmp_path / "gateway.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ghapplets", "gateway", "--processes", "1", "--port", str(port)],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def health() -> int | None:
            try:
                return httpx.get(
                    f"http://127.0.0.1:{admin_port}/api/v1/health",
                    headers={"Authorization": f"Bearer {token}"},
                ).status_code
            except httpx.HTTPError:
                assert proc.poll() is None, log.read_text()
                return None

        assert poll(health, timeout=30) == 200
        assert listeners_on(admin_port) == 1
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/health").status_code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=20)
