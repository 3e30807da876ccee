"""The dashboard's fixtures: a running platform (embedded backends) with its admin site, and a
browser-like client per role, signed in through the login form."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ghapplets.dashboard.site import AdminSite
from ghapplets.store.records import Role
from tests.admin.harness import Admin, build_project, running_admin
from tests.conftest import ProjectBuilder
from tests.dashboard.browser import CHROMIUM

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Site:
    admin: Admin
    site: AdminSite

    def client(self) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.site, client=("127.0.0.1", 50000))  # type: ignore[arg-type]
        return httpx.AsyncClient(transport=transport, base_url="http://admin")

    async def signed_in(self, role: Role) -> tuple[httpx.AsyncClient, str]:
        """A client signed in as ``role`` and the session's CSRF token."""
        client = self.client()
        form = await client.get("/login")
        token = CSRF.search(form.text)
        assert token, form.text
        done = await client.post(
            "/login", data={"csrf": token.group(1), "token": self.admin.tokens[role]}
        )
        assert done.status_code == 303 and done.headers["location"] == "/", done.text
        page = await client.get("/deliveries")
        found = CSRF.search(page.text)
        assert found, page.text
        return client, found.group(1)


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, html
    return found.group(1)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "picky-may-succeed"


@pytest.fixture
async def site(project: ProjectBuilder, marker: Path, tmp_path: Path) -> AsyncIterator[Site]:
    root = build_project(project, marker)
    async with running_admin(root, tmp_path / "data") as admin:
        yield Site(admin, admin.platform.admin_site())


@pytest.fixture
def chromium_installed() -> None:
    """A missing browser is an error that says so, not a skip: CI must run the browser tests."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: python3 tasks.py setup installs Debian's chromium")
