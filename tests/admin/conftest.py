"""The admin API's fixtures: a running platform with its API (on both backends where the test
asks for ``platform_backends``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.admin.harness import Admin, build_project, running_admin
from tests.conftest import ProjectBuilder


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """Once this file exists, the applet ``picky`` succeeds (until then it fails for good)."""
    return tmp_path / "picky-may-succeed"


@pytest.fixture
async def admin(
    platform_backends: str, project: ProjectBuilder, marker: Path, tmp_path: Path
) -> AsyncIterator[Admin]:
    root = build_project(project, marker)
    async with running_admin(root, tmp_path / "data") as running:
        yield running


@pytest.fixture
async def embedded_admin(
    project: ProjectBuilder, marker: Path, tmp_path: Path
) -> AsyncIterator[Admin]:
    """The same on the embedded backends only (for what does not depend on them)."""
    root = build_project(project, marker)
    async with running_admin(root, tmp_path / "data") as running:
        yield running
