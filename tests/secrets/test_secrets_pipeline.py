"""Secrets through the real pipeline: a signed webhook, the worker, the store, the CLI.

Applets that return, raise or log their secret (or the webhook secret) leave ``***`` behind in
what is stored and shown; an applet gets the global secrets and its own scope's, never another
applet's; a worker without the gateway role still knows the webhook secrets to redact.
"""

from __future__ import annotations

import asyncio
import secrets as pysecrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import ghapplets.logging as ghlog
from ghapplets.applets.runtime import Invocation
from ghapplets.backends import open_backends
from ghapplets.config.loader import load_config
from ghapplets.config.models import ProjectConfig
from ghapplets.exceptions import UnresolvedReference
from ghapplets.platform import Platform, Role
from ghapplets.secrets.crypto import KEY_ENV, generate_key
from ghapplets.testing.events import fixture_event
from ghapplets.testing.gateway import running_gateway
from tests.cli.helpers import Result, cli, logging_restored
from tests.conftest import ProjectBuilder

ON = "on: [com.github.issues.opened]\n"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No key from the shell, nothing registered for redaction by earlier tests."""
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setattr(ghlog, "_SECRETS", set())
    monkeypatch.setattr(ghlog, "_ORDERED", ())
    with logging_restored():
        yield


async def command(*args: Any) -> Result:
    """The CLI in-process, off the event loop (it runs one of its own)."""
    return await asyncio.to_thread(cli, *args)


async def store_secrets(data: Path, values: dict[str, tuple[str, str]]) -> None:
    async with open_backends(ProjectConfig(), data) as b:
        for name, (value, scope) in values.items():
            await b.vault.set(name, value, scope=scope)


def leaky_project(project: ProjectBuilder, hook: str) -> Path:
    project.source("github", "kind: github\nsecret: ${secret:hook}")
    project.python_applet(
        "py-leak",
        f"""
        from ghapplets import Applet
        app = Applet("py-leak")

        @app.on("com.github.issues.opened")
        async def handle(ctx):
            tok = ctx.secrets["tok"]
            return {{
                "leak": tok,
                "nested": [{{"auth": "Bearer " + tok}}],
                tok: 1,
                "hook": "{hook}",
                "own": ctx.secrets["own"][::-1],
            }}
        """,
        "secrets: [tok, own]\n",
    )
    project.python_applet(
        "py-raise",
        """
        from ghapplets import Applet, PermanentError
        app = Applet("py-raise")

        @app.on("com.github.issues.opened")
        async def handle(ctx):
            ctx.log.warning("calling with " + ctx.secrets["tok"])
            raise PermanentError("token " + ctx.secrets["tok"] + " refused", type="Refused")
        """,
        "secrets: [tok]\n",
    )
    project.exec_applet(
        "sh-leak",
        """
        #!/bin/sh
        cat >/dev/null
        printf '{"leak": "%s"}' "$GHAPPLETS_SECRET_TOK"
        """,
        ON + "secrets: [tok]\n",
    )
    project.exec_applet(
        "sh-raise",
        """
        #!/bin/sh
        cat >/dev/null
        echo "token $GHAPPLETS_SECRET_TOK refused" >&2
        exit 1
        """,
        ON + "secrets: [tok]\n",
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
    return project.build()


async def test_secrets_never_reach_stored_results_errors_or_logs(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    tok, hook = f"tok-{pysecrets.token_hex(8)}", f"hook-{pysecrets.token_hex(8)}"
    own, theirs = f"own-{pysecrets.token_hex(8)}", f"theirs-{pysecrets.token_hex(8)}"
    data = tmp_path / "data"
    root = leaky_project(project, hook)
    await store_secrets(
        data,
        {
            "tok": (tok, "global"),
            "hook": (hook, "global"),
            "own": (own, "applet:py-leak"),
            "theirs": (theirs, "applet:someone-else"),
        },
    )
    ghlog._SECRETS.clear()  # what storing registered: the worker must manage on its own
    ghlog._ORDERED = ()
    async with running_gateway(root, data) as gw:
        assert (await gw.send("github", "issues.opened", delivery_id="leak-1")).status_code == 202
        jobs = {j.applet: j for j in await gw.wait_for_jobs("leak-1", count=5)}

    assert {a: j.status for a, j in jobs.items()} == {
        "py-leak": "succeeded",
        "py-raise": "dead",
        "sh-leak": "succeeded",
        "sh-raise": "dead",
        "nosy": "dead",
    }
    shown = {}
    for applet, job in jobs.items():
        result = await command("jobs", "show", job.id, "--json", "-p", root, "--data-dir", data)
        assert result.code == 0, result
        shown[applet] = result.out
        for value in (tok, hook, own, theirs):
            assert value not in result.out, (applet, result.out)
    listed = await command("jobs", "--json", "-p", root, "--data-dir", data)
    delivery = await command(
        "deliveries", "show", "leak-1", "--json", "-p", root, "--data-dir", data
    )
    for result in (listed, delivery):
        assert result.code == 0, result
        assert all(v not in result.out for v in (tok, hook, own, theirs)), result.out

    py_leak = orjson.loads(shown["py-leak"])
    assert py_leak["result"] == {
        "leak": "***",
        "nested": [{"auth": "Bearer ***"}],
        "***": 1,
        "hook": "***",
        "own": own[::-1],  # it got its own scope's secret (reversed, so it shows)
    }
    assert orjson.loads(shown["sh-leak"])["result"] == {"leak": "***"}
    py_raise = orjson.loads(shown["py-raise"])
    assert py_raise["error_message"] == "token *** refused"
    [attempt] = py_raise["attempt_log"]
    assert attempt["error_message"] == "token *** refused"
    assert any("calling with ***" in line for line in attempt["logs"]), attempt["logs"]
    sh_raise = orjson.loads(shown["sh-raise"])
    assert sh_raise["error_message"] == "exited with status 1: token *** refused"
    assert sh_raise["attempt_log"][0]["logs"] == ["token *** refused"]
    nosy = orjson.loads(shown["nosy"])
    assert nosy["error_type"] == "SecretUnavailable"
    assert "secret 'theirs' is scoped to applet:someone-else" in nosy["error_message"]
    assert (
        "applet 'nosy' may read only global secrets and those of applet:nosy"
        in (nosy["error_message"])
    )


async def test_a_worker_without_the_gateway_role_redacts_webhook_secrets(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored, from_env = f"hook-{pysecrets.token_hex(8)}", f"env-hook-{pysecrets.token_hex(8)}"
    monkeypatch.setenv("GHAPPLETS_TEST_HOOK", from_env)
    project.source(
        "github",
        "kind: github\nsecret: ${secret:hook}\nprevious_secret: ${env:GHAPPLETS_TEST_HOOK}",
    )
    project.source("jira", "kind: jira\nsecret: ${env:GHAPPLETS_TEST_UNSET_HOOK}")  # skipped
    project.python_applet(
        "echo",
        f"""
        from ghapplets import Applet
        app = Applet("echo")

        @app.on("com.github.issues.opened")
        async def handle(ctx):
            return ["{stored}", "{from_env}"]
        """,
    )
    data = tmp_path / "data"
    await store_secrets(data, {"hook": (stored, "global")})
    ghlog._SECRETS.clear()
    ghlog._ORDERED = ()
    platform = Platform(load_config(project.build()), data, roles=frozenset({Role.WORKER}))
    await platform.start()
    try:
        assert not platform.sources  # no gateway here
        event = fixture_event("github", "issues.opened")
        outcome = await platform.runtimes["echo"].invoke(Invocation(event=event, job_id="j1"))
    finally:
        await platform.stop()
    assert outcome.ok and outcome.result == ["***", "***"]


async def test_a_source_may_not_use_an_applet_scoped_secret(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    project.source("github", "kind: github\nsecret: ${secret:private-hook}")
    root = project.build()
    data = tmp_path / "data"
    await store_secrets(data, {"private-hook": ("private-hook-value", "applet:deployer")})
    platform = Platform(load_config(root), data, roles=frozenset({Role.GATEWAY}))
    with pytest.raises(UnresolvedReference, match="scoped to applet:deployer") as exc:
        await platform.start()
    await platform.backends.close()
    assert "${secret:private-hook}" in str(exc.value)
    assert "private-hook-value" not in str(exc.value)
    # `ghapplets send` resolves the source's secret the same way
    sent = await command("send", "issues.opened", "-p", root, "--data-dir", data)
    assert sent.code == 3, sent
    assert "secret 'private-hook' is scoped to applet:deployer" in sent.err
    assert "source 'github' may read only global secrets" in sent.err


async def test_a_secret_under_another_key_is_retried_not_buried_at_once(
    project: ProjectBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker still holding the key from before a rotation: its jobs are retried (it gets
    the new key on a restart), where a missing secret is a permanent error."""
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
    await store_secrets(data, {"tok": ("token-value-1234", "global")})
    monkeypatch.setenv(KEY_ENV, generate_key())  # not the key the secret is under
    async with running_gateway(root, data) as gw:
        assert (await gw.send("github", "issues.opened", delivery_id="k-1")).status_code == 202
        [job] = await gw.wait_for_jobs("k-1", count=1)
        attempts = await gw.platform.backends.store.list_attempts(job.id)
    assert job.status == "dead" and job.attempts == 2
    assert [a.outcome for a in attempts] == ["retryable", "retryable"]
    assert job.error_type == "SecretUnavailable"
    assert "secret 'tok' is encrypted with key" in (job.error_message or "")
