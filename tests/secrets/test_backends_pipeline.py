"""The whole platform on an external secrets backend (Kubernetes files, a real OpenBao): the
gateway's webhook secret and the applets' secrets come from there, by scope path, redacted from
results, and every read is in the audit log with its reader."""

from __future__ import annotations

import secrets as pysecrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import hvac
import orjson
import pytest

import ghapplets.logging as ghlog
from ghapplets.secrets.crypto import KEY_ENV
from ghapplets.testing.gateway import running_gateway
from tests.cli.helpers import logging_restored
from tests.conftest import ProjectBuilder
from tests.secrets.test_kubernetes_backend import kubelet_volume
from tests.secrets.test_secrets_pipeline import command
from tests.servers import free_port


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setattr(ghlog, "_SECRETS", set())
    monkeypatch.setattr(ghlog, "_ORDERED", ())
    with logging_restored():
        yield


def external_secrets(
    kind: str, values: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> dict[str, str]:
    """``values`` (layout paths) in a backend of ``kind``; the variables that select it."""
    if kind == "kubernetes":
        folder = kubelet_volume(tmp_path / "mounted", {k: v.encode() for k, v in values.items()})
        return {"GHAPPLETS_SECRETS__BACKEND": "kubernetes", "GHAPPLETS_SECRETS__PATH": str(folder)}
    server = request.getfixturevalue("openbao_server")
    prefix = f"p-{uuid.uuid4().hex[:8]}"
    root = hvac.Client(url=server.address, token=server.token)
    for path, value in values.items():
        root.secrets.kv.v2.create_or_update_secret(path=f"{prefix}/{path}", secret={"value": value})
    return {
        "GHAPPLETS_SECRETS__BACKEND": "vault",
        "GHAPPLETS_SECRETS__ADDRESS": server.address,
        "GHAPPLETS_SECRETS__PREFIX": prefix,
        "GHAPPLETS_SECRETS__TOKEN": server.token,
    }


@pytest.mark.parametrize("kind", ["kubernetes", "openbao"])
async def test_jobs_read_their_scopes_secrets_and_every_read_is_audited(
    kind: str,
    project: ProjectBuilder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    hook, tok, theirs = (f"{w}-{pysecrets.token_hex(8)}" for w in ("hook", "tok", "theirs"))
    env = external_secrets(
        kind,
        {"hook": hook, "applets/reader/tok": tok, "applets/someone-else/theirs": theirs},
        tmp_path,
        request,
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    project.source("github", "kind: github\nsecret: ${secret:hook}")
    project.python_applet(
        "reader",
        """
        from ghapplets import Applet
        app = Applet("reader")

        @app.on("com.github.issues.opened")
        async def handle(ctx):
            return {"tok": ctx.secrets["tok"], "reversed": ctx.secrets["tok"][::-1]}
        """,
        "secrets: [tok]\n",
    )
    project.python_applet(
        "nosy",
        """
        from ghapplets import Applet
        app = Applet("nosy")

        @app.on("com.github.issues.opened")
        async def handle(ctx):
            return ctx.secrets["theirs"]
        """,
        "secrets: [theirs]\n",
    )
    root, data = project.build(), tmp_path / "data"
    async with running_gateway(root, data) as gw:
        assert gw.platform.sources["github"].secrets == (hook.encode(),)
        sent = await gw.send("github", "issues.opened", delivery_id="ext-1")
        assert sent.status_code == 202, sent.text
        jobs = {j.applet: j for j in await gw.wait_for_jobs("ext-1", count=2)}

    assert {a: j.status for a, j in jobs.items()} == {"reader": "succeeded", "nosy": "dead"}
    assert jobs["reader"].result == {"tok": "***", "reversed": tok[::-1]}
    assert jobs["nosy"].error_type == "SecretUnavailable"
    assert "no secret named 'theirs'" in str(jobs["nosy"].error_message)
    assert "applets/nosy/theirs" in str(jobs["nosy"].error_message)

    audit = await command("secrets", "audit", "--json", "-p", root, "--data-dir", data)
    assert audit.code == 0, audit
    lines = {(r["reader"], r["name"], r["scope"], r["outcome"]) for r in audit.json_lines()}
    assert lines >= {
        ("source:github", "hook", "global", "ok"),
        ("applet:reader", "tok", "applet:reader", "ok"),
        ("applet:nosy", "theirs", None, "not_found"),
    }
    backend = "openbao" if kind == "openbao" else "kubernetes"
    assert {r["backend"] for r in audit.json_lines()} == {backend}
    for value in (hook, tok, theirs):
        assert value not in audit.out
        assert value not in orjson.dumps([j.to_dict() for j in jobs.values()]).decode()


async def test_a_secrets_backend_that_cannot_answer_retries_the_job(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unlike a missing secret, a backend that is down is retried: it may be back soon."""
    monkeypatch.setenv("GHAPPLETS_SECRETS__BACKEND", "openbao")
    monkeypatch.setenv("GHAPPLETS_SECRETS__ADDRESS", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("GHAPPLETS_SECRETS__TOKEN", "any-token")
    project.python_applet(
        "needs-token",
        """
        from ghapplets import Applet
        app = Applet("needs-token")

        @app.on("com.github.issues.opened")
        async def handle(ctx):
            return len(ctx.secrets["tok"])
        """,
        "secrets: [tok]\nretry:\n  max_attempts: 2\n  initial_delay: 0.05\n",
    )
    root, data = project.build(), tmp_path / "data"
    async with running_gateway(root, data) as gw:
        assert (await gw.send("github", "issues.opened", delivery_id="down-1")).status_code == 202
        [job] = await gw.wait_for_jobs("down-1", count=1)
        attempts = await gw.platform.backends.store.list_attempts(job.id)
    assert job.status == "dead" and job.attempts == 2
    assert [a.outcome for a in attempts] == ["retryable", "retryable"]
    assert job.error_type == "SecretUnavailable"
    assert "cannot be reached reading secret/ghapplets/applets/needs-token/tok" in str(
        job.error_message
    )
