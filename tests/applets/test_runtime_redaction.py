"""Every outcome is redacted by the runtime, whatever the runtime: secret values handed to an
invocation never come back in its result (at any depth, keys too), its error or its logs, even
when nothing registered them for the logs; values under 4 characters are left alone."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

import ghapplets.applets.runtime as runtime_module
import ghapplets.logging as ghlog
from ghapplets.applets.model import AppletSpec
from ghapplets.applets.result import AppletOutcome
from ghapplets.applets.runtime import Invocation, build_runtime, run_once
from ghapplets.logging import Redactor, register_secret

if TYPE_CHECKING:
    from tests.applets.conftest import ExecSpec, MakeEvent, MakeInvocation, Server, WriteExec

TOKEN = "tok-5d1e2f3a4b"


@pytest.fixture(autouse=True)
def _nothing_registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No value registered for the logs, and none registered by the runtime either: the
    outcome must be redacted from the invocation's own values."""
    monkeypatch.setattr(ghlog, "_SECRETS", set())
    monkeypatch.setattr(ghlog, "_ORDERED", ())
    monkeypatch.setattr(runtime_module, "register_secret", lambda value: None)
    yield


def dumped(outcome: AppletOutcome) -> str:
    return orjson.dumps(
        [outcome.result, outcome.error_type, outcome.error_message, outcome.logs]
    ).decode()


def python_spec(tmp_path: Path, code: str, **kw: Any) -> AppletSpec:
    (tmp_path / "handler.py").write_text(textwrap.dedent(code).lstrip())
    spec = AppletSpec(name="py", runtime="python", entry="handler.py", **kw)
    spec.folder = tmp_path
    return spec


async def test_python_result_is_redacted_at_any_depth(
    tmp_path: Path, invocation: MakeInvocation
) -> None:
    spec = python_spec(
        tmp_path,
        """
        from ghapplets import Applet
        app = Applet("py")

        @app.on("com.github.*")
        async def handle(ctx):
            tok = ctx.secrets["tok"]
            return {
                "leak": tok,
                "nested": [{"url": f"https://x/?t={tok}&a=1"}, [tok, 7, True, None]],
                tok: "as a key",
                "pin": int(ctx.secrets["pin"]),
                "short": ctx.secrets["abc"] + "-d",
            }
        """,
        secrets=["tok", "pin", "abc"],
    )
    secrets = {"tok": TOKEN, "pin": "97531", "abc": "abc"}
    outcome = await run_once(spec, invocation().event, job_id="j", secrets=secrets)
    assert outcome.ok, outcome
    assert outcome.result == {
        "leak": "***",
        "nested": [{"url": "https://x/?t=***&a=1"}, ["***", 7, True, None]],
        "***": "as a key",
        "pin": "***",  # a number whose digits hold a secret
        "short": "abc-d",  # under 4 characters: not redacted
    }
    assert TOKEN not in dumped(outcome) and "97531" not in dumped(outcome)


async def test_python_error_and_logs_are_redacted(
    tmp_path: Path, invocation: MakeInvocation
) -> None:
    spec = python_spec(
        tmp_path,
        """
        from ghapplets import Applet, RetryableError
        app = Applet("py")

        @app.on("com.github.*")
        async def handle(ctx):
            ctx.log.info("calling with " + ctx.secrets["tok"], header=ctx.secrets["tok"])
            raise RetryableError("rejected token " + ctx.secrets["tok"], type="Auth" + "x")
        """,
        secrets=["tok"],
    )
    outcome = await run_once(spec, invocation().event, job_id="j", secrets={"tok": TOKEN})
    assert not outcome.ok and outcome.retryable
    assert outcome.error_message == "rejected token ***"
    assert any("calling with ***" in line for line in outcome.logs), outcome.logs
    assert TOKEN not in dumped(outcome)


async def test_an_unexpected_exception_is_redacted(
    tmp_path: Path, invocation: MakeInvocation
) -> None:
    spec = python_spec(
        tmp_path,
        """
        from ghapplets import Applet
        app = Applet("py")

        @app.on("com.github.*")
        def handle(ctx):
            raise ValueError({"token": ctx.secrets["tok"]})
        """,
        secrets=["tok"],
    )
    outcome = await run_once(spec, invocation().event, job_id="j", secrets={"tok": TOKEN})
    assert outcome.error_type == "ValueError" and outcome.error_message == "{'token': '***'}"


async def test_exec_result_error_and_logs_are_redacted(
    write_exec: WriteExec, exec_spec: ExecSpec, invocation: MakeInvocation
) -> None:
    write_exec(
        "ok.sh",
        '#!/bin/sh\ncat >/dev/null\necho "token $GHAPPLETS_SECRET_TOK" >&2\n'
        'printf \'{"leak": "%s", "list": ["x%sy"]}\' "$GHAPPLETS_SECRET_TOK" '
        '"$GHAPPLETS_SECRET_TOK"\n',
    )
    spec = exec_spec("./ok.sh", secrets=["tok"])
    ok = await build_runtime(spec).invoke(invocation(secrets={"tok": TOKEN}))
    assert ok.ok and ok.result == {"leak": "***", "list": ["x***y"]}
    assert ok.logs == ["token ***"]

    write_exec(
        "fail.sh", '#!/bin/sh\ncat >/dev/null\necho "bad $GHAPPLETS_SECRET_TOK" >&2\nexit 3\n'
    )
    failed = await build_runtime(exec_spec("./fail.sh", secrets=["tok"])).invoke(
        invocation(secrets={"tok": TOKEN})
    )
    assert not failed.ok and failed.error_message == "exited with status 3: bad ***"
    assert failed.logs == ["bad ***"]

    write_exec(
        "contract.sh",
        "#!/bin/sh\ncat >/dev/null\n"
        'printf \'{"ok": false, "error": {"type": "T%s", "message": "no %s"}}\' '
        '"$GHAPPLETS_SECRET_TOK" "$GHAPPLETS_SECRET_TOK"\nexit 1\n',
    )
    contract = await build_runtime(exec_spec("./contract.sh", secrets=["tok"])).invoke(
        invocation(secrets={"tok": TOKEN})
    )
    assert (contract.error_type, contract.error_message) == ("T***", "no ***")
    for outcome in (ok, failed, contract):
        assert TOKEN not in dumped(outcome)


async def test_a_multi_line_secret_is_redacted_line_by_line(
    write_exec: WriteExec, exec_spec: ExecSpec, invocation: MakeInvocation
) -> None:
    pem = "-----BEGIN KEY-----\nMIIEowIBAAKCAQEAx1y2z3\nq9W8e7R6t5Y4u3I2o1P0\n-----END KEY-----\n"
    write_exec("pem.sh", '#!/bin/sh\ncat >/dev/null\necho "$GHAPPLETS_SECRET_PEM" >&2\necho 1\n')
    outcome = await build_runtime(exec_spec("./pem.sh", secrets=["pem"])).invoke(
        invocation(secrets={"pem": pem})
    )
    assert outcome.ok
    joined = "\n".join(outcome.logs)
    assert "MIIEowIBAAKCAQEAx1y2z3" not in joined and "q9W8e7R6t5Y4u3I2o1P0" not in joined
    assert outcome.logs[1:3] == ["***", "***"]


async def test_http_result_is_redacted(
    http_server: Server, invocation: MakeInvocation, new_event: MakeEvent
) -> None:
    # the function echoes the event back; the event happens to hold the secret
    spec = AppletSpec(
        name="fn",
        runtime="http",
        url=f"{http_server.url}/ok",
        headers={"Authorization": "Bearer ${secrets.tok}"},
        secrets=["tok"],
    )
    inv = invocation(new_event(note=f"see {TOKEN}"), secrets={"tok": TOKEN})
    async with build_runtime(spec) as rt:
        outcome = await rt.invoke(inv)
    assert outcome.ok, outcome
    assert http_server.last().headers["authorization"] == f"Bearer {TOKEN}"  # sent as is
    assert outcome.result["received"]["note"] == "see ***"
    assert TOKEN not in dumped(outcome)


async def test_registered_values_are_redacted_too(
    tmp_path: Path, invocation: MakeInvocation
) -> None:
    """A webhook secret is registered (by the gateway, or a worker reading the sources): an
    applet that returns it has it redacted though it was not handed to the invocation."""
    hook = "hook-secret-8c7b6a"
    register_secret(hook)
    spec = python_spec(
        tmp_path,
        f"""
        from ghapplets import Applet
        app = Applet("py")

        @app.on("com.github.*")
        async def handle(ctx):
            return "the webhook secret is {hook}"
        """,
    )
    outcome = await run_once(spec, invocation().event, job_id="j")
    assert outcome.result == "the webhook secret is ***"


def test_redactor_json_rules() -> None:
    r = Redactor(["s3cret-value", "abc", None, b"bytes-value"])
    doc = {
        "s3cret-value": ["s3cret-value", {"k": "x s3cret-value y"}],
        "n": 1.5,
        "flag": True,
        "none": None,
        "abc": "abc",
        "b": "bytes-value",
    }
    assert r.json(doc) == {
        "***": ["***", {"k": "x *** y"}],
        "n": 1.5,
        "flag": True,
        "none": None,
        "abc": "abc",
        "b": "***",
    }
    assert Redactor().json(doc) is doc  # nothing to redact: the same object, untouched
    longer = Redactor(["abcd", "abcd-efgh"])
    assert longer.text("<abcd-efgh>") == "<***>"  # the longest first: no half-visible secret


def test_invocation_values_are_not_registered_by_a_redactor() -> None:
    Redactor(["only-for-this-outcome"])
    assert ghlog.redact("only-for-this-outcome") == "only-for-this-outcome"


async def test_undeclared_values_handed_in_are_redacted_too(
    tmp_path: Path, invocation: MakeInvocation
) -> None:
    spec = python_spec(
        tmp_path,
        """
        from ghapplets import Applet
        app = Applet("py")

        @app.on("com.github.*")
        async def handle(ctx):
            return "other-secret-value"
        """,
    )
    inv: Invocation = invocation(secrets={"other": "other-secret-value"})
    outcome = await build_runtime(spec).invoke(inv)
    assert outcome.result == "***"
