"""The public Python SDK: imports, Applet registration, Context and Secrets."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

import ghapplets
from ghapplets import AppletError, CloudEvent, Context, PermanentError, RetryableError
from ghapplets.sdk import Applet, Secrets

HEAVY = (
    "ghapplets.gateway",
    "ghapplets.store",
    "ghapplets.broker",
    "uvicorn",
    "starlette",
    "githubkit",  # ctx.github's client: loaded by the GitHub connector, not the SDK
)


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


def test_public_imports_and_version() -> None:
    assert ghapplets.__version__ == "0.1.0"
    assert issubclass(RetryableError, AppletError) and issubclass(PermanentError, AppletError)
    assert ghapplets.Applet is Applet
    with pytest.raises(AttributeError):
        ghapplets.NotAThing  # noqa: B018


def test_import_ghapplets_stays_light() -> None:
    bare = _modules_after("import ghapplets")
    assert not {m for m in bare if m.startswith("ghapplets.")}
    sdk = _modules_after(
        "from ghapplets import Applet, Context, RetryableError, PermanentError, AppletError, "
        "CloudEvent"
    )
    heavy = {m for m in sdk if m.startswith(HEAVY)}
    assert not heavy, heavy


def test_applet_records_handlers() -> None:
    app = Applet("demo")

    @app.on("com.github.issues.opened", "com.github.issues.reopened", when=".data.x")
    async def opened(ctx: Context) -> int:
        return 1

    @app.on("com.github.issues.opened")
    def sync(ctx: Context) -> int:
        return 2

    assert opened.__name__ == "opened"  # returned unchanged
    assert [h.name for h in app.handlers] == [
        "test_applet_records_handlers.<locals>.opened",
        "test_applet_records_handlers.<locals>.sync",
    ]
    assert [h.is_async for h in app.handlers] == [True, False]
    assert [(s.type, s.when) for s in app.subscriptions] == [
        ("com.github.issues.opened", ".data.x"),
        ("com.github.issues.reopened", ".data.x"),
        ("com.github.issues.opened", None),
    ]
    assert "demo" in repr(app)


def test_applet_validation() -> None:
    with pytest.raises(ValueError, match="must match"):
        Applet("Bad Name")
    app = Applet("ok")
    with pytest.raises(ValueError, match="at least one"):
        app.on()
    with pytest.raises(TypeError):
        app.on("a.b")(42)  # type: ignore[type-var]


def test_secrets_mapping() -> None:
    secrets = Secrets({"token": "tok-val", "extra": "x"}, ["token", "unset"], applet="demo")
    assert secrets["token"] == "tok-val" and dict(secrets) == {"token": "tok-val"}
    assert len(secrets) == 1
    assert "extra" not in secrets and secrets.get("unset") is None
    with pytest.raises(KeyError, match=r"'extra' is not declared by applet 'demo'.*secrets:"):
        secrets["extra"]
    with pytest.raises(KeyError, match="declared by applet 'demo' but has no value"):
        secrets["unset"]
    assert repr(secrets) == "Secrets(['token'])"


async def test_context_attributes_and_http() -> None:
    event = CloudEvent(
        id="e1", source="/github", type="com.github.push", data={"a": 1}, subject="octo/repo"
    )
    ctx = Context(event=event)
    assert (ctx.data, ctx.type, ctx.id, ctx.subject, ctx.attempt) == (
        {"a": 1},
        "com.github.push",
        "e1",
        "octo/repo",
        1,
    )
    ctx.log.info("works without a runtime")
    with pytest.raises(RuntimeError, match="no HTTP client"):
        _ = ctx.http
    async with httpx.AsyncClient() as client:
        assert Context(event=event, http_client=client).http is client
