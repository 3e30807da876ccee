"""Fixtures for the Fission export's tests: an applet folder as Fission gets it, and the http
runtime of Ghapplets talking to the adapter through an in-memory transport."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ghapplets.fission.adapter import FissionApplet, FissionRequest
from ghapplets.fission.export import Export
from tests.conftest import ProjectBuilder, write

HANDLER = """
from ghapplets import Applet, Context, PermanentError, RetryableError

app = Applet("triage")


@app.on("com.github.issues.opened", "ghapplets.blueprint.call")
async def handle(ctx: Context) -> dict:
    data = ctx.data or {}
    if data.get("busy"):
        raise RetryableError("Jira is busy", retry_after=30)
    if data.get("bad"):
        raise PermanentError("Jira refused the issue", type="JiraRejected")
    if data.get("leak"):
        return {"token": ctx.secrets["jira-token"]}
    return {
        "title": data.get("title"),
        "type": ctx.type,
        "key": ctx.idempotency_key,
        "attempt": ctx.attempt,
        "delivery": ctx.delivery_id,
        "secret_length": len(ctx.secrets["jira-token"]),
    }
"""


@pytest.fixture
def applet_folder(tmp_path: Path) -> Path:
    """A Python applet's folder, as an exported package holds it."""
    folder = tmp_path / "package"
    write(
        folder / "applet.yaml",
        "name: triage\nruntime: python\nentry: handler.py\nsecrets: [jira-token]\ntimeout: 5\n",
    )
    write(folder / "handler.py", HANDLER)
    return folder


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    """A Kubernetes Secret as Fission mounts it: one file per key."""
    folder = tmp_path / "secrets" / "apps" / "triage-secrets"
    folder.mkdir(parents=True)
    (folder / "jira-token").write_text("s3cr3t-jira-token")
    return folder


Bridge = Callable[[FissionApplet], httpx.AsyncClient]


@pytest.fixture
def bridge() -> Bridge:
    """An httpx client whose requests reach the adapter as Fission's router would hand them."""

    def make(applet: FissionApplet) -> httpx.AsyncClient:
        async def handle(request: httpx.Request) -> httpx.Response:
            reply = await applet.answer(FissionRequest(dict(request.headers), request.content))
            return httpx.Response(reply.status, headers=reply.headers, content=reply.body)

        return httpx.AsyncClient(transport=httpx.MockTransport(handle))

    return make


@pytest.fixture
def exported(project: ProjectBuilder, tmp_path: Path) -> Iterator[tuple[Export, Path]]:
    """The project of :mod:`tests.fission.project`, exported to ``tmp_path / "out"``."""
    from tests.fission.project import build, export_project

    out = tmp_path / "out"
    yield export_project(build(project), out), out
