"""What each runtime hands an applet of the job's action grant (the worker's local action
endpoint and the job's token): an exec applet in its environment, an HTTP applet in request
headers, and never a token left in the stored outcome; without a grant, nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ghapplets.applets.model import AppletSpec
from ghapplets.applets.runtime import build_runtime
from ghapplets.connectors.endpoint import Grant

if TYPE_CHECKING:
    from tests.applets.conftest import MakeInvocation, Server

GRANT = Grant("http://127.0.0.1:8123/v1/actions", "tok-5b1f0d9e8a7c6b5a4f3e2d1c0b9a8f7e")
PRINT_GRANT = """#!/bin/sh
printf '{"url": "%s", "token": "%s"}' "$GHAPPLETS_ACTION_URL" "$GHAPPLETS_ACTION_TOKEN"
"""


async def test_an_exec_applet_gets_the_grant_in_its_environment_redacted_from_its_result(
    write_exec: Callable[[str, str], Path],
    exec_spec: Callable[..., AppletSpec],
    invocation: MakeInvocation,
) -> None:
    script = write_exec("grant.sh", PRINT_GRANT)
    # the manifest cannot set the variables the grant sets
    spec = exec_spec(str(script), env={"GHAPPLETS_ACTION_URL": "http://evil", "X": "1"})
    async with build_runtime(spec) as rt:
        outcome = await rt.invoke(invocation(action_grant=GRANT))
    assert outcome.ok, outcome
    assert outcome.result == {"url": GRANT.url, "token": "***"}


async def test_without_a_grant_an_exec_applet_has_no_action_variables(
    write_exec: Callable[[str, str], Path],
    exec_spec: Callable[..., AppletSpec],
    invocation: MakeInvocation,
) -> None:
    script = write_exec("grant.sh", PRINT_GRANT)
    async with build_runtime(exec_spec(str(script))) as rt:
        outcome = await rt.invoke(invocation())
    assert outcome.result == {"url": "", "token": ""}


async def test_an_http_applet_gets_the_grant_in_headers(
    http_server: Server, invocation: MakeInvocation
) -> None:
    spec = AppletSpec(name="http-test", runtime="http", url=f"{http_server.url}/ok")
    async with build_runtime(spec) as rt:
        assert (await rt.invoke(invocation(action_grant=GRANT))).ok
        assert (await rt.invoke(invocation())).ok
    granted, plain = http_server.requests
    assert granted.headers["x-ghapplets-action-url"] == GRANT.url
    assert granted.headers["x-ghapplets-action-token"] == GRANT.token
    assert "x-ghapplets-action-url" not in plain.headers
    assert "x-ghapplets-action-token" not in plain.headers
