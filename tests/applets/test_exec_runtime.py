"""The exec runtime, with real executables in a Python script and a POSIX shell script."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import structlog

from ghapplets.applets.runtime import build_runtime
from ghapplets.events.cloudevent import CloudEvent

if TYPE_CHECKING:
    from tests.applets.conftest import ExecSpec, MakeEvent, MakeInvocation, WriteExec

PY_ECHO = """
#!/usr/bin/env python3
import json, os, sys
raw = sys.stdin.read()
event = json.loads(raw)
print("working on", event["id"], file=sys.stderr)
print(json.dumps({
    "stdin": raw,
    "type": event["type"],
    "number": event["data"]["issue"]["number"],
    "attempt": os.environ["GHAPPLETS_ATTEMPT"],
    "job": os.environ["GHAPPLETS_JOB_ID"],
    "key": os.environ["GHAPPLETS_IDEMPOTENCY_KEY"],
    "delivery": os.environ["GHAPPLETS_DELIVERY_ID"],
    "event_type": os.environ["GHAPPLETS_EVENT_TYPE"],
    "cwd": os.getcwd(),
}))
"""

SH_HANDLER = """
#!/bin/sh
input=$(cat)
echo "hello from sh" >&2
case "$input" in
  *'"type":"com.github.issues.opened"'*) kind=opened ;;
  *) kind=other ;;
esac
printf '{"lang": "sh", "kind": "%s", "attempt": %s}\\n' "$kind" "$GHAPPLETS_ATTEMPT"
"""


async def test_python_script_gets_structured_event_on_stdin(
    write_exec: WriteExec, exec_spec: ExecSpec, invocation: MakeInvocation
) -> None:
    write_exec("handler.py", PY_ECHO)
    inv = invocation(job_id="job-42", attempt=2)
    async with build_runtime(exec_spec("./handler.py")) as rt:
        outcome = await rt.invoke(inv)
    assert outcome.ok, outcome
    result = outcome.result
    assert result["stdin"].encode() == inv.event.to_json()
    assert json.loads(result["stdin"])["specversion"] == "1.0"
    assert result["type"] == "com.github.issues.opened"
    assert result["number"] == 7
    assert (result["attempt"], result["job"], result["key"]) == ("2", "job-42", "job-42")
    assert result["delivery"] == "delivery-1"
    assert result["event_type"] == "com.github.issues.opened"
    assert Path(result["cwd"]) == Path(rt.spec.folder or "").resolve()
    assert outcome.logs == ["working on delivery-1"]


async def test_shell_script_as_another_language(
    write_exec: WriteExec, exec_spec: ExecSpec, invocation: MakeInvocation
) -> None:
    write_exec("handler.sh", SH_HANDLER)
    # a bare name is resolved against the applet folder first
    outcome = await build_runtime(exec_spec("handler.sh")).invoke(invocation(attempt=3))
    assert outcome.ok, outcome
    assert outcome.result == {"lang": "sh", "kind": "opened", "attempt": 3}
    assert outcome.logs == ["hello from sh"]


async def test_interpreter_from_path_with_script_argument(
    tmp_path: Path, exec_spec: ExecSpec, invocation: MakeInvocation
) -> None:
    (tmp_path / "plain.sh").write_text('cat >/dev/null; echo \'{"via": "sh"}\'\n')  # not +x
    outcome = await build_runtime(exec_spec("sh", "plain.sh")).invoke(invocation())
    assert outcome.ok and outcome.result == {"via": "sh"}


async def test_stderr_lines_are_logged_with_delivery_and_applet(
    write_exec: WriteExec, exec_spec: ExecSpec, invocation: MakeInvocation
) -> None:
    write_exec("h.sh", "#!/bin/sh\necho one >&2\necho two >&2\necho '{}'\n")
    with structlog.testing.capture_logs() as logs:
        outcome = await build_runtime(exec_spec("./h.sh", name="logger")).invoke(invocation())
    assert outcome.ok and outcome.logs == ["one", "two"]
    lines = [e for e in logs if e.get("stream") == "stderr"]
    assert [e["event"] for e in lines] == ["one", "two"]
    assert all(e["delivery_id"] == "delivery-1" and e["applet"] == "logger" for e in lines)


async def test_exit_75_is_retryable(
    write_exec: WriteExec, exec_spec: ExecSpec, invocation: MakeInvocation
) -> None:
    write_exec("h.sh", "#!/bin/sh\necho 'upstream busy' >&2\nexit 75\n")
    outcome = await build_runtime(exec_spec("./h.sh")).invoke(invocation())
    assert not outcome.ok and outcome.retryable
    assert outcome.error_type == "ExitCode"
    assert "75" in (outcome.error_message or "") and "upstream busy" in (
        outcome.error_message or ""
    )


async def test_other_exit_status_is_permanent_with_stderr_tail(
    write_exec: WriteExec, exec_spec: ExecSpec, invocation: MakeInvocation
) -> None:
    lines = "".join(f"echo line{i} >&2\n" for i in range(10))
    write_exec("h.sh", f"#!/bin/sh\n{lines}echo 'boom: bad input' >&2\nexit 3\n")
    outcome = await build_runtime(exec_spec("./h.sh")).invoke(invocation())
    assert not outcome.ok and not outcome.retryable
    assert outcome.error_type == "ExitCode"
    message = outcome.error_message or ""
    assert "status 3" in message and "boom: bad input" in message and "line0" not in message
    assert len(outcome.logs) == 11


async def test_death_by_signal_is_retryable(
    write_exec: WriteExec, exec_spec: ExecSpec, invocation: MakeInvocation
) -> None:
    write_exec("h.sh", "#!/bin/sh\nkill -TERM $$\nsleep 5\n")
    outcome = await build_runtime(exec_spec("./h.sh")).invoke(invocation())
    assert not outcome.ok and outcome.retryable
    assert outcome.error_type == "Signal" and "SIGTERM" in (outcome.error_message or "")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie waiting for a reaper is gone too


def _wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


async def test_timeout_kills_process_group(
    tmp_path: Path, write_exec: WriteExec, exec_spec: ExecSpec, invocation: MakeInvocation
) -> None:
    write_exec(
        "h.sh",
        "#!/bin/sh\nsleep 60 &\necho $! > child.pid\necho $$ > parent.pid\n"
        "echo started >&2\nsleep 60\n",
    )
    started = time.monotonic()
    outcome = await build_runtime(exec_spec("./h.sh", timeout=0.7)).invoke(invocation())
    assert time.monotonic() - started < 5
    assert not outcome.ok and outcome.retryable and outcome.error_type == "Timeout"
    assert outcome.logs == ["started"]
    for name in ("parent.pid", "child.pid"):
        pid = int((tmp_path / name).read_text())
        assert _wait_gone(pid), f"{name} {pid} still running"


async def test_background_child_holding_stdout_does_not_block(
    tmp_path: Path, write_exec: WriteExec, exec_spec: ExecSpec, invocation: MakeInvocation
) -> None:
    write_exec("h.sh", "#!/bin/sh\nsleep 60 &\necho $! > child.pid\necho '{\"done\": true}'\n")
    started = time.monotonic()
    outcome = await build_runtime(exec_spec("./h.sh", timeout=20)).invoke(invocation())
    assert outcome.ok and outcome.result == {"done": True}
    assert time.monotonic() - started < 5
    assert _wait_gone(int((tmp_path / "child.pid").read_text()))


async def test_huge_stdout_is_output_too_large(
    write_exec: WriteExec, exec_spec: ExecSpec, invocation: MakeInvocation
) -> None:
    write_exec(
        "h.py",
        "#!/usr/bin/env python3\nimport sys\nsys.stdout.write('x' * 5_000_000)\n",
    )
    outcome = await build_runtime(exec_spec("./h.py", max_output_bytes=10_000)).invoke(invocation())
    assert not outcome.ok and not outcome.retryable
    assert outcome.error_type == "OutputTooLarge" and "stdout" in (outcome.error_message or "")


async def test_endless_stderr_is_output_too_large(
    write_exec: WriteExec, exec_spec: ExecSpec, invocation: MakeInvocation
) -> None:
    write_exec("h.sh", "#!/bin/sh\nyes 'log line' >&2\n")
    outcome = await build_runtime(exec_spec("./h.sh", max_output_bytes=50_000)).invoke(invocation())
    assert not outcome.ok and outcome.error_type == "OutputTooLarge"
    assert "stderr" in (outcome.error_message or "")
    assert 0 < len(outcome.logs) <= 201


async def test_environment_is_scrubbed(
    monkeypatch: pytest.MonkeyPatch,
    write_exec: WriteExec,
    exec_spec: ExecSpec,
    invocation: MakeInvocation,
) -> None:
    monkeypatch.setenv("GHAPPLETS_TEST_LEAK", "parent-only")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
    monkeypatch.setenv("TZ", "Europe/Paris")
    write_exec(
        "env.py",  # the interpreter directly: a pyenv-style shim would add its own variables
        f"#!{sys.executable}\nimport json, os, sys\nsys.stdin.read()\n"
        "print(json.dumps(dict(os.environ)))\n",
    )
    spec = exec_spec("./env.py", env={"MODE": "test"}, secrets=["github-token", "jira.key"])
    inv = invocation(secrets={"github-token": "ghs_abc123", "jira.key": "j-1", "other": "nope"})
    outcome = await build_runtime(spec).invoke(inv)
    assert outcome.ok, outcome
    env = outcome.result
    assert "GHAPPLETS_TEST_LEAK" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    # the whole value is the secret (so it is redacted from the result, which echoes it); a
    # value of fewer than 4 characters is not redacted
    assert env["GHAPPLETS_SECRET_GITHUB_TOKEN"] == "***"
    assert env["GHAPPLETS_SECRET_JIRA_KEY"] == "j-1"
    assert "nope" not in env.values()
    assert env["MODE"] == "test" and env["TZ"] == "Europe/Paris"
    allowed = {"PATH", "HOME", "LANG", "TZ", "MODE", "PWD", "SHLVL", "_", "LC_CTYPE"}
    extra = {k for k in env if not k.startswith("GHAPPLETS_")} - allowed
    assert not extra, extra
    assert all(os.path.isabs(p) for p in env["PATH"].split(os.pathsep))


async def test_no_shell_interpolation(
    tmp_path: Path, write_exec: WriteExec, exec_spec: ExecSpec, invocation: MakeInvocation
) -> None:
    write_exec(
        "args.py",
        "#!/usr/bin/env python3\nimport json, sys\nsys.stdin.read()\n"
        "print(json.dumps(sys.argv[1:]))\n",
    )
    argv = ["$(touch pwned)", "; touch pwned2", "`touch pwned3`", "$HOME"]
    outcome = await build_runtime(exec_spec("./args.py", *argv)).invoke(invocation())
    assert outcome.ok and outcome.result == argv
    assert not list(tmp_path.glob("pwned*")) and not list(Path.cwd().glob("pwned*"))


async def test_output_forms(
    write_exec: WriteExec, exec_spec: ExecSpec, invocation: MakeInvocation
) -> None:
    cases = {
        "": None,
        "   \n": None,
        '{"ok": true, "result": [1, 2]}': [1, 2],
        '{"ok": true, "result": 1, "extra": 2}': {"ok": True, "result": 1, "extra": 2},
        "42": 42,
    }
    for i, (stdout, expected) in enumerate(cases.items()):
        write_exec(f"o{i}.sh", f"#!/bin/sh\nprintf '%s' '{stdout}'\n")
        outcome = await build_runtime(exec_spec(f"./o{i}.sh")).invoke(invocation())
        assert outcome.ok and outcome.result == expected, (stdout, outcome)


async def test_non_json_stdout_is_bad_output(
    write_exec: WriteExec, exec_spec: ExecSpec, invocation: MakeInvocation
) -> None:
    write_exec("h.sh", "#!/bin/sh\necho 'Processing... done'\n")
    outcome = await build_runtime(exec_spec("./h.sh")).invoke(invocation())
    assert not outcome.ok and not outcome.retryable and outcome.error_type == "BadOutput"
    assert "Processing" in (outcome.error_message or "")


async def test_error_contract_on_stdout_is_honoured(
    write_exec: WriteExec, exec_spec: ExecSpec, invocation: MakeInvocation
) -> None:
    doc = {
        "ok": False,
        "error": {
            "type": "JiraDown",
            "message": "503 from Jira",
            "retryable": True,
            "retry_after": 12,
        },
    }
    write_exec("h.sh", f"#!/bin/sh\necho '{json.dumps(doc)}'\nexit 1\n")
    outcome = await build_runtime(exec_spec("./h.sh")).invoke(invocation())
    assert not outcome.ok and outcome.retryable
    assert (outcome.error_type, outcome.error_message, outcome.retry_after) == (
        "JiraDown",
        "503 from Jira",
        12.0,
    )


async def test_missing_program_is_permanent(
    exec_spec: ExecSpec, invocation: MakeInvocation
) -> None:
    for command in ("./nope.sh", "no-such-program-ghapplets", "/nonexistent/bin/x"):
        outcome = await build_runtime(exec_spec(command)).invoke(invocation())
        assert not outcome.ok and not outcome.retryable
        assert outcome.error_type == "ProgramNotFound", outcome
        assert command.lstrip("./") in (outcome.error_message or "")


async def test_non_executable_program_is_permanent(
    tmp_path: Path, exec_spec: ExecSpec, invocation: MakeInvocation
) -> None:
    (tmp_path / "run.sh").write_text("#!/bin/sh\necho '{}'\n")
    outcome = await build_runtime(exec_spec("./run.sh")).invoke(invocation())
    assert not outcome.ok and outcome.error_type == "ProgramNotExecutable"
    assert "chmod +x" in (outcome.error_message or "")


async def test_large_event_while_program_ignores_stdin(
    write_exec: WriteExec, exec_spec: ExecSpec, new_event: MakeEvent, invocation: MakeInvocation
) -> None:
    write_exec("h.sh", "#!/bin/sh\necho '{\"ignored\": true}'\n")
    big = new_event(blob="y" * 2_000_000)
    outcome = await build_runtime(exec_spec("./h.sh")).invoke(invocation(big))
    assert outcome.ok and outcome.result == {"ignored": True}


async def test_secret_values_are_redacted_from_logs(
    write_exec: WriteExec, exec_spec: ExecSpec, invocation: MakeInvocation
) -> None:
    write_exec("h.sh", '#!/bin/sh\necho "token is $GHAPPLETS_SECRET_TOKEN" >&2\nexit 2\n')
    spec = exec_spec("./h.sh", secrets=["token"])
    outcome = await build_runtime(spec).invoke(invocation(secrets={"token": "s3cr3t-value"}))
    assert outcome.logs == ["token is ***"]
    assert "s3cr3t-value" not in (outcome.error_message or "")


async def test_concurrent_invocations(
    write_exec: WriteExec, exec_spec: ExecSpec, invocation: MakeInvocation
) -> None:
    import asyncio

    # each run marks itself running, waits, counts the runs marked at that moment, unmarks
    write_exec(
        "h.sh",
        "#!/bin/sh\ncat >/dev/null\ntouch running.$GHAPPLETS_JOB_ID\nsleep 0.3\n"
        "n=$(ls running.* | wc -l)\nrm running.$GHAPPLETS_JOB_ID\n"
        'echo "{\\"job\\": \\"$GHAPPLETS_JOB_ID\\", \\"together\\": $n}"\n',
    )
    rt = build_runtime(exec_spec("./h.sh", concurrency=3))
    outcomes = await asyncio.gather(*(rt.invoke(invocation(job_id=f"j{i}")) for i in range(8)))
    assert [o.result["job"] for o in outcomes] == [f"j{i}" for i in range(8)]
    together = [o.result["together"] for o in outcomes]
    assert max(together) == 3  # they ran side by side, never more than the limit


async def test_binary_event_data_goes_as_data_base64(
    write_exec: WriteExec, exec_spec: ExecSpec, invocation: MakeInvocation
) -> None:
    write_exec("h.sh", "#!/bin/sh\ncat\n")
    event = CloudEvent(id="b1", source="/s", type="t", data=b"\x00\x01", datacontenttype="x/y")
    outcome = await build_runtime(exec_spec("./h.sh")).invoke(invocation(event))
    assert outcome.ok and outcome.result["data_base64"] == "AAE="
    assert "data" not in outcome.result
