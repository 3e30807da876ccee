"""The README's quick start works from a fresh clone in a fresh virtual environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def fresh_clone(target: Path) -> Path:
    if (ROOT / ".git").exists() and shutil.which("git"):
        subprocess.run(["git", "clone", "-q", str(ROOT), str(target)], check=True)
    else:  # a source tree without git: copy what a clone would hold
        shutil.copytree(
            ROOT,
            target,
            ignore=shutil.ignore_patterns(
                ".venv", ".demo", ".ghapplets", "__pycache__", ".*_cache", "node_modules", ".work"
            ),
        )
    return target


def test_readme_names_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "python3 tasks.py demo" in readme and "python3 tasks.py test" in readme
    assert "tasks.py test" in (ROOT / ".ci" / "run").read_text()


def test_demo_command_in_a_fresh_clone_shows_an_event_flowing(tmp_path: Path) -> None:
    clone = fresh_clone(tmp_path / "clone")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "GHAPPLETS"))}
    env["GHAPPLETS_VENV"] = str(tmp_path / "venv")  # a fresh virtualenv, nothing preinstalled
    done = subprocess.run(
        [sys.executable, "tasks.py", "demo", "--once", "--port", str(free_port())],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "202" in out
    assert out.count("succeeded") >= 3, out[-3000:]  # the delivery and both jobs
    assert "hello-python" in out and "hello-shell" in out
