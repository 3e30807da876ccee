"""``ghapplets fakes`` for real: a subprocess serving the fakes, its JSON lines, the generated App
key (mode 0600) that the GitHub fake accepts, SIGTERM ending it with 0; usage errors."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from ghapplets.fakes.github_jwt import sign_app_jwt
from tests.cli.helpers import GHAPPLETS, clean_env, ghapplets


def _read_lines(
    proc: subprocess.Popen[bytes], count: int, timeout: float = 30
) -> list[dict[str, Any]]:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    rows = []
    while len(rows) < count:
        assert time.monotonic() < deadline, "ghapplets fakes printed too little"
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"ghapplets fakes ended: {proc.wait()}")
        rows.append(orjson.loads(line))
    return rows


def test_fakes_command_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "app.pem"
    proc = subprocess.Popen(
        [*GHAPPLETS, "fakes", "--port", "0", "--json", "--key-file", str(key),
         "--only", "github,jira,splunk"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
        cwd=tmp_path,
    )  # fmt: skip
    try:
        rows = {row["name"]: row for row in _read_lines(proc, 3)}
        assert set(rows) == {"github", "jira", "splunk"}
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        app = rows["github"]["credentials"]["apps"][0]
        assert app["private_key_file"] == str(key)
        token = sign_app_jwt(key.read_text(), app["app_id"], now=time.time())
        minted = httpx.post(
            f"{rows['github']['base_url']}/app/installations/"
            f"{rows['github']['credentials']['installations'][0]}/access_tokens",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert minted.status_code == 201
        user = rows["jira"]["credentials"]["users"][0]
        me = httpx.get(
            f"{rows['jira']['base_url']}/rest/api/3/myself", auth=(user["email"], user["api_token"])
        )
        assert me.status_code == 200
        hec = httpx.post(
            f"{rows['splunk']['base_url']}/services/collector/event",
            headers={"Authorization": f"Splunk {rows['splunk']['credentials']['tokens'][0]}"},
            json={"event": "hello"},
        )
        assert hec.json() == {"text": "Success", "code": 0}
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=15)
    assert code == 0, proc.stderr.read() if proc.stderr else ""


def test_fakes_command_usage_and_config_errors(tmp_path: Path) -> None:
    unknown = ghapplets("fakes", "--only", "github,gitlab", cwd=tmp_path)
    assert unknown.code == 2 and "unknown fake gitlab" in unknown.err
    bad = tmp_path / "fakes.yaml"
    bad.write_text("github:\n  rate_limit: lots\nsplunk:\n  colour: red\n")
    invalid = ghapplets("fakes", "--config", bad, cwd=tmp_path)
    assert invalid.code == 3
    assert "github.rate_limit" in invalid.err and "splunk.colour" in invalid.err
    missing_key = tmp_path / "nokey.yaml"
    missing_key.write_text("github:\n  apps:\n    - id: 3\n      public_key_file: gone.pem\n")
    no_key = ghapplets("fakes", "--config", missing_key, cwd=tmp_path)
    assert no_key.code == 3 and "gone.pem" in no_key.err
    existing = tmp_path / "taken.pem"
    existing.write_text("keep me")
    taken = ghapplets("fakes", "--port", "0", "--key-file", existing, cwd=tmp_path)
    assert taken.code == 2 and "exists" in taken.err
    assert existing.read_text() == "keep me"


def test_fakes_command_reads_a_config_with_a_public_key(tmp_path: Path) -> None:
    from ghapplets.fakes.config import generate_app_key

    private, public = generate_app_key()
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "app.pub").write_text(public)
    (tmp_path / "conf" / "fakes.yaml").write_text(
        "github:\n  apps:\n    - id: 77\n      public_key_file: app.pub\n"
        "  installations:\n    - id: 5\n      repositories: [acme/api]\n"
    )
    proc = subprocess.Popen(
        [
            *GHAPPLETS,
            "fakes",
            "--port",
            "0",
            "--json",
            "--config",
            "conf/fakes.yaml",
            "--only",
            "github",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
        cwd=tmp_path,
    )
    try:
        (row,) = _read_lines(proc, 1)
        assert row["credentials"]["apps"][0]["private_key_file"] is None  # nothing generated
        token = sign_app_jwt(private, 77, now=time.time())
        minted = httpx.post(
            f"{row['base_url']}/app/installations/5/access_tokens",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert minted.status_code == 201
        assert not [p for p in os.listdir(tmp_path) if p.endswith(".pem")]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
