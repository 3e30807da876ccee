"""``ghapplets init``: the scaffold, its encrypted webhook secret, and its own passing tests."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ghapplets.secrets.crypto import generate_key
from tests.cli.helpers import clean_env, cli, ghapplets

FILES = [
    "ghapplets.yaml",
    "applets/hello-python/applet.yaml",
    "applets/hello-python/handler.py",
    "applets/hello-shell/applet.yaml",
    "applets/hello-shell/run.sh",
    "tests/test_applets.py",
    "blueprints/triage-issue.yaml",
    "tests/test_blueprints.py",
    ".github/workflows/ghapplets.yml",
]


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under ``root``: content, mode and modification time."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            out[str(path.relative_to(root))] = (path.read_bytes(), st.st_mode, st.st_mtime_ns)
    return out


def secret_names(project: Path, **env: str) -> list[str]:
    result = cli("secrets", "list", "--json", "-p", project, env=env)
    assert result.code == 0, result
    return [row["name"] for row in result.json_lines()]


def test_init_creates_the_project_key_and_webhook_secret(tmp_path: Path) -> None:
    root = tmp_path / "my-project"
    result = ghapplets("init", root, cwd=tmp_path)
    assert result.code == 0, result
    for rel in FILES:
        assert (root / rel).is_file(), rel
        assert f"created {rel}" in result.out
    assert os.access(root / "applets/hello-shell/run.sh", os.X_OK)
    assert "project: my-project\n" in (root / "ghapplets.yaml").read_text()
    key = root / ".ghapplets" / "secret.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert secret_names(root) == ["github-webhook"]
    assert ".ghapplets/" in (root / ".gitignore").read_text().splitlines()
    # the generated webhook secret is never printed
    revealed = cli("secrets", "get", "github-webhook", "--reveal", "-p", root)
    assert revealed.code == 0 and len(revealed.out.strip()) >= 32
    assert revealed.out.strip() not in result.out + result.err


def test_init_again_without_force_fails_and_changes_nothing(scaffolded: Path) -> None:
    before = snapshot(scaffolded)
    result = ghapplets("init", ".", cwd=scaffolded)
    assert result.code == 1, result
    assert "already has" in result.err and "--force" in result.err
    assert snapshot(scaffolded) == before


def test_init_refuses_a_folder_with_only_a_config_and_writes_no_key(tmp_path: Path) -> None:
    (tmp_path / "ghapplets.yaml").write_text("project: mine\n")
    result = cli("init", tmp_path)
    assert result.code == 1, result
    assert "ghapplets.yaml" in result.err
    assert (tmp_path / "ghapplets.yaml").read_text() == "project: mine\n"
    assert not (tmp_path / ".ghapplets").exists()
    assert not (tmp_path / "applets").exists()


def test_init_force_rewrites_files_but_keeps_the_webhook_secret(scaffolded: Path) -> None:
    get = ("secrets", "get", "github-webhook", "--reveal", "-p", scaffolded)
    secret = cli(*get).out
    (scaffolded / "applets/hello-python/handler.py").write_text("broken")
    result = cli("init", scaffolded, "--force")
    assert result.code == 0, result
    assert "already stored (kept)" in result.out
    assert "Thanks @" in (scaffolded / "applets/hello-python/handler.py").read_text()
    assert cli(*get).out == secret  # GitHub still has this one


def test_init_names_the_project_validly_from_any_folder_name(tmp_path: Path) -> None:
    root = tmp_path / "_My Scratch!"
    assert cli("init", root).code == 0
    assert "project: my-scratch\n" in (root / "ghapplets.yaml").read_text()
    assert cli("validate", "-p", root).code == 0


@pytest.mark.parametrize("name", ["Has Spaces", "x\nserver: 1", "trailing\n", "-dash", ""])
def test_init_rejects_an_invalid_project_name(tmp_path: Path, name: str) -> None:
    result = cli("init", tmp_path / "p", "--name", name)
    assert result.code == 2, result
    assert "invalid project name" in result.err
    assert not (tmp_path / "p" / "ghapplets.yaml").exists()


def test_init_with_a_malformed_key_variable_fails_before_writing(tmp_path: Path) -> None:
    result = ghapplets("init", "p", cwd=tmp_path, env=clean_env(GHAPPLETS_SECRET_KEY="not a key"))
    assert result.code == 3, result
    assert "GHAPPLETS_SECRET_KEY" in result.err
    assert not (tmp_path / "p" / "ghapplets.yaml").exists()


def test_init_with_a_key_variable_writes_no_key_file(tmp_path: Path) -> None:
    key = generate_key()
    result = cli("init", tmp_path / "p", env={"GHAPPLETS_SECRET_KEY": key})
    assert result.code == 0, result
    assert not (tmp_path / "p/.ghapplets/secret.key").exists()
    assert secret_names(tmp_path / "p", GHAPPLETS_SECRET_KEY=key) == ["github-webhook"]
    # and it needs that key to open the secret again
    wrong = cli("secrets", "get", "github-webhook", "-p", tmp_path / "p")
    assert wrong.code == 3 and "no key" in wrong.err  # and no new key is made up


def test_init_with_data_dir_keeps_key_and_secret_there(tmp_path: Path) -> None:
    data = tmp_path / "elsewhere"
    assert cli("init", tmp_path / "p", "--data-dir", data).code == 0
    assert (data / "secret.key").is_file() and (data / "ghapplets.db").is_file()
    assert not (tmp_path / "p/.ghapplets").exists()
    listed = cli("secrets", "list", "--json", "--data-dir", data)
    assert [r["name"] for r in listed.json_lines()] == ["github-webhook"]


def test_the_scaffolded_project_tests_pass(scaffolded: Path) -> None:
    env = clean_env()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(scaffolded / "tests"), "-q", "-p", "no:cacheprovider"],
        cwd=scaffolded,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 passed" in proc.stdout


def test_the_scaffold_validates_and_lists_both_applets(scaffolded: Path) -> None:
    result = cli("validate", "-p", scaffolded)
    assert result.code == 0, result
    assert "1 source(s), 2 applet(s), 1 blueprint(s)" in result.out
    assert "triage-issue 0.1.0: 2 task(s)" in result.out
    assert "hello-python (python): com.github.issues.opened" in result.out
    assert "hello-shell (exec): com.github.*" in result.out
