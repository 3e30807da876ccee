"""Fixtures for the CLI tests: a clean environment and a scaffolded project to copy."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.helpers import cli, logging_restored


@pytest.fixture(autouse=True)
def _clean_cli_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("GHAPPLETS_") or key == "GITHUB_WEBHOOK_SECRET":
            monkeypatch.delenv(key)
    with logging_restored():
        yield


@pytest.fixture(scope="session")
def _template_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ghapplets init`` once (in-process) for the whole session."""
    root = tmp_path_factory.mktemp("template") / "demo"
    with logging_restored():
        result = cli("init", root)
    assert result.code == 0, result
    return root


@pytest.fixture
def scaffolded(_template_project: Path, tmp_path: Path) -> Path:
    """A fresh copy of a project made by ``ghapplets init`` (with its key and webhook secret)."""
    return Path(shutil.copytree(_template_project, tmp_path / "demo", symlinks=True))
