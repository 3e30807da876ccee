"""``ctx.action`` from a Python applet, through the real worker, against the HEC fake: the
call reaches the vendor, the manifest's ``connectors:`` is enforced, a vendor outage retries
the job and a refusal dead-letters it with the vendor's message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ghapplets.connectors.config import SplunkConnector
from ghapplets.connectors.registry import Connectors
from ghapplets.exceptions import UnresolvedReference
from ghapplets.fakes.config import HecToken
from ghapplets.store.records import JobStatus
from ghapplets.testing.gateway import running_gateway
from tests.cli.helpers import cli
from tests.conftest import ProjectBuilder

HANDLER = """
from ghapplets import Applet

app = Applet("reporter")

@app.on("com.github.issues.opened")
async def report(ctx):
    return await ctx.action(
        "splunk.send_event", {"event": {"delivery": ctx.id, "action": ctx.data["action"]}}
    )
"""


def project(root: Path, url: str, token: str, allowed: str) -> Path:
    builder = ProjectBuilder(root)
    builder.python_applet("reporter", HANDLER, f"connectors: [{allowed}]\n")
    builder.extra = (
        f"connectors:\n  splunk:\n    kind: splunk\n    url: {url}\n    token: {token}\n"
    )
    return builder.build()


async def test_an_applet_sends_a_splunk_event(tmp_path: Path, ghapplets_fakes: Any) -> None:
    splunk = ghapplets_fakes.splunk
    root = project(tmp_path / "p", splunk.base_url, HecToken().token, "splunk")
    async with running_gateway(root, tmp_path / "data") as gw:
        sent = await gw.send("github", "issues.opened", delivery_id="a-1")
        assert sent.status_code == 202
        [job] = await gw.wait_for_jobs("a-1", count=1)
    assert job.status == JobStatus.SUCCEEDED
    [event] = splunk.events
    assert event.event == {"delivery": "a-1", "action": "opened"}
    [request] = splunk.requests()
    assert request.header("authorization") == f"Splunk {HecToken().token}"


async def test_a_connector_not_in_the_manifest_is_refused(
    tmp_path: Path, ghapplets_fakes: Any
) -> None:
    root = project(tmp_path / "p", ghapplets_fakes.splunk.base_url, HecToken().token, "")
    async with running_gateway(root, tmp_path / "data") as gw:
        await gw.send("github", "issues.opened", delivery_id="a-2")
        [job] = await gw.wait_for_jobs("a-2", count=1)
        [attempt] = await gw.platform.backends.store.list_attempts(job.id)
    assert job.status == JobStatus.DEAD
    assert attempt.error_type == "ConnectorNotAllowed"
    assert "not in the applet's 'connectors:' list" in (attempt.error_message or "")
    assert ghapplets_fakes.splunk.requests() == []


async def test_an_outage_retries_and_a_refusal_dead_letters(
    tmp_path: Path, ghapplets_fakes: Any
) -> None:
    splunk = ghapplets_fakes.splunk
    splunk.inject(503, times=1, retry_after=0)
    root = project(tmp_path / "p", splunk.base_url, "wrong-token", "splunk")
    async with running_gateway(root, tmp_path / "data") as gw:
        await gw.send("github", "issues.opened", delivery_id="a-3")
        [job] = await gw.wait_for_jobs("a-3", count=1, timeout=30)
        attempts = await gw.platform.backends.store.list_attempts(job.id)
    assert job.status == JobStatus.DEAD
    first, last = attempts[0], attempts[-1]
    assert (first.error_type, last.error_type) == ("ActionUnavailable", "ActionFailed")
    assert "Server is busy" in (first.error_message or "")
    assert "Splunk answered 403" in (last.error_message or "")
    assert "wrong-token" not in (last.error_message or "")


def test_validate_names_a_manifest_connector_the_project_lacks(tmp_path: Path) -> None:
    root = project(tmp_path / "p", "http://127.0.0.1:9", "t", "splunk, jira")
    result = cli("validate", "--project", root)
    assert result.code == 3, result
    assert (
        "applet.yaml:4:22: connectors.1: no connector named 'jira' in ghapplets.yaml "
        "(it has: splunk)"
    ) in result.err + result.out


async def test_a_connector_without_its_secret_fails_its_actions_not_the_worker(
    tmp_path: Path, ghapplets_fakes: Any
) -> None:
    root = project(tmp_path / "p", ghapplets_fakes.splunk.base_url, "${secret:hec-token}", "splunk")
    async with running_gateway(root, tmp_path / "data") as gw:
        await gw.send("github", "issues.opened", delivery_id="a-4")
        [job] = await gw.wait_for_jobs("a-4", count=1)
        [attempt] = await gw.platform.backends.store.list_attempts(job.id)
    assert job.status == JobStatus.DEAD
    assert attempt.error_type == "ConnectorUnusable"
    assert "connector 'splunk' cannot be used: no stored secret named 'hec-token'" in (
        attempt.error_message or ""
    )
    assert ghapplets_fakes.splunk.requests() == []


async def test_outside_the_worker_a_connector_without_its_secret_is_an_error() -> None:
    config = SplunkConnector(kind="splunk", url="http://127.0.0.1:9", token="${env:NO_SUCH_VAR}")
    with pytest.raises(UnresolvedReference, match="environment variable NO_SUCH_VAR is not set"):
        await Connectors.open({"splunk": config}, lambda reader: no_secret)


async def no_secret(name: str) -> str:
    raise AssertionError(name)
