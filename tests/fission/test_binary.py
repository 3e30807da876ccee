"""An exec applet in Fission's binary environment: the script the export writes gives it the
exec contract (the structured CloudEvent on stdin, the GHAPPLETS_* variables, its secrets and
env, its folder), run here as the environment runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from ghapplets.applets.model import AppletSpec
from ghapplets.fission.binary import program_on_path, quote, wrapper
from ghapplets.fission.export import Export
from tests.conftest import write


def run_binary_env(
    package: Path, headers: dict[str, str], body: bytes, secrets: Path
) -> subprocess.CompletedProcess[bytes]:
    """The file run as Fission's binary environment runs it: /bin/sh, the headers as
    HTTP_<NAME> variables, PATH as it sets it, the body on stdin."""
    env = {"PATH": "$PATH:/userfunc/deployarchive:/userfunc", "REQUEST_METHOD": "POST"}
    env |= {f"HTTP_{name.upper()}": value for name, value in headers.items()}
    env["GHAPPLETS_FISSION_SECRETS_DIR"] = str(secrets)  # the mount, in the test's folder
    return subprocess.run(
        ["/bin/sh", str(package / "ghapplets_fission_entry.sh")],
        input=body,
        env=env,
        capture_output=True,
        timeout=30,
        cwd="/",
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, as in Fission")
def test_an_exported_exec_applet_gets_the_exec_contract_in_the_binary_environment(
    exported: tuple[Export, Path], tmp_path: Path
) -> None:
    _, out = exported
    package = out / "packages" / "notify-v2"
    assert os.access(package / "ghapplets_fission_entry.sh", os.X_OK)
    secrets = tmp_path / "mounted"
    write(secrets / "slack-token", "xoxb-1")
    headers = {
        "Ce-Id": "d-9", "Ce-Source": "/github", "Ce-Type": "com.github.issues.opened",
        "Ce-Specversion": "1.0", "Ce-Githubhost": "github.com", "Content-Type": "application/json",
        "Idempotency-Key": "job-5", "X-Ghapplets-Attempt": "3", "X-Ghapplets-Delivery-Id": "d-9",
    }  # fmt: skip
    done = run_binary_env(package, headers, b'{"title": "a \\"quoted\\" title"}', secrets)
    assert done.returncode == 0, done.stderr
    result = orjson.loads(done.stdout)
    assert result["event"] == {
        "id": "d-9", "source": "/github", "type": "com.github.issues.opened",
        "specversion": "1.0", "githubhost": "github.com", "datacontenttype": "application/json",
        "data": {"title": 'a "quoted" title'},
    }  # fmt: skip
    assert result["type"] == "com.github.issues.opened" and result["key"] == "job-5"
    assert result["attempt"] == "3" and result["delivery"] == "d-9"
    assert result["applet"] == "notify_v2" and result["token"] == "xoxb-1"
    assert result["channel"] == "deploys" and result["cwd"] == str(package)
    busy = run_binary_env(package, headers, b'{"busy": true}', secrets)
    assert busy.returncode == 75  # the binary environment answers 500: retried
    broken = run_binary_env(package, headers, b'{"broken": true}', secrets)
    assert broken.returncode == 1 and b"reported an error" in broken.stderr
    workflow = {"X-Fission-Workflow-Run": "run-1", "X-Fission-Workflow-Attempt": "2"}
    step = run_binary_env(package, workflow, b'{"title": "t"}', secrets)
    assert step.returncode == 0, step.stderr
    stepped = orjson.loads(step.stdout)
    assert stepped["type"] == "ghapplets.blueprint.call" and stepped["attempt"] == "2"
    assert stepped["event"]["data"] == {"title": "t"} and stepped["delivery"] == "run-1"
    nothing = run_binary_env(package, {}, b"{}", secrets)
    assert nothing.returncode == 1 and b"not a CloudEvent" in nothing.stderr
    no_secret = run_binary_env(package, headers, b"{}", tmp_path / "empty")
    assert no_secret.returncode == 1 and b"slack-token" in no_secret.stderr


def test_the_program_is_run_as_the_exec_runtime_finds_it(tmp_path: Path) -> None:
    folder = tmp_path / "applet"
    write(folder / "handler.js", "")

    def spec(*command: str) -> AppletSpec:
        return AppletSpec(name="a", runtime="exec", command=list(command), folder=folder)

    assert program_on_path(spec("./run")) is None
    assert program_on_path(spec("bin/run")) is None
    assert program_on_path(spec("/usr/bin/env", "x")) is None
    assert program_on_path(spec("handler.js")) is None  # a file of the folder
    assert program_on_path(spec("node", "handler.js")) == "node"
    script = wrapper(spec("handler.js", "it's", "$HOME"), "/secrets/apps/a-secrets")
    assert "'./handler.js' 'it'\\''s' '$HOME'" in script  # one word each, nothing expanded
    assert "${GHAPPLETS_FISSION_SECRETS_DIR:-/secrets/apps/a-secrets}" in script


def test_quote_survives_the_shell() -> None:
    for text in ["plain", "it's", 'a "b" $c `d` \\e', "", "new\nline"]:
        done = subprocess.run(["/bin/sh", "-c", f"printf %s {quote(text)}"], capture_output=True)
        assert done.stdout.decode() == text
