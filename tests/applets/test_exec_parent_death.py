"""An exec applet does not outlive the process that started it, with real processes.

The runtime puts ``setpriv --pdeathsig KILL`` in front of a program it can vouch for; the
failures of an ``exec`` stay those of our own ``exec`` (not setpriv's message and status)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ghapplets.applets.exec_runtime import _setpriv
from ghapplets.applets.runtime import build_runtime

if TYPE_CHECKING:
    from tests.applets.conftest import ExecSpec, MakeInvocation, WriteExec

# a process that runs the applet in ``sys.argv[1]`` with the real runtime, as a worker does
HARNESS = """
import asyncio, sys
from pathlib import Path
from ghapplets.applets.model import AppletSpec
from ghapplets.applets.runtime import Invocation, build_runtime
from ghapplets.events.cloudevent import CloudEvent

spec = AppletSpec(name="sleeper", runtime="exec", command=["./run"], timeout=300)
spec.folder = Path(sys.argv[1])
event = CloudEvent(id="d-1", source="/test", type="test.sleep", data={})
asyncio.run(build_runtime(spec).invoke(Invocation(event=event, job_id="job-1")))
"""


def _gone(pid: int) -> bool:
    """No such process, or a zombie (killed, waiting for whoever reaps it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def _poll(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.skipif(_setpriv() is None, reason="needs Linux and util-linux setpriv --pdeathsig")
def test_applet_dies_with_the_process_that_started_it(
    tmp_path: Path, write_exec: WriteExec
) -> None:
    write_exec("run", "#!/bin/sh\necho $$ > pid.tmp\nmv pid.tmp applet.pid\nexec sleep 60\n")
    pid_file = tmp_path / "applet.pid"
    log = (tmp_path / "harness.log").open("wb")
    harness = subprocess.Popen(
        [sys.executable, "-c", HARNESS, str(tmp_path)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    pid = None
    try:
        started = _poll(lambda: pid_file.exists() or harness.poll() is not None, 60)
        assert started and pid_file.exists(), (tmp_path / "harness.log").read_text()
        pid = int(pid_file.read_text())
        assert not _gone(pid)
        harness.send_signal(signal.SIGKILL)  # a crash: no cleanup of its own
        harness.wait()
        assert _poll(lambda: _gone(pid), 10), f"applet {pid} outlived the process that ran it"
    finally:
        with contextlib.suppress(ProcessLookupError):
            harness.kill()
        harness.wait()
        log.close()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


async def test_file_without_shebang_fails_to_start_as_before(
    tmp_path: Path, write_exec: WriteExec, exec_spec: ExecSpec, invocation: MakeInvocation
) -> None:
    # setpriv's execvp would run it with /bin/sh: it must not be given the chance
    write_exec("h", "touch ran\necho '{}'\n")
    outcome = await build_runtime(exec_spec("./h")).invoke(invocation())
    assert not outcome.ok and not outcome.retryable
    assert outcome.error_type == "ProgramNotExecutable"
    assert "cannot start" in (outcome.error_message or "")
    assert not (tmp_path / "ran").exists()


async def test_missing_interpreter_fails_to_start_as_before(
    write_exec: WriteExec, exec_spec: ExecSpec, invocation: MakeInvocation
) -> None:
    write_exec("h", "#!/nonexistent/ghapplets-interpreter\necho '{}'\n")
    outcome = await build_runtime(exec_spec("./h")).invoke(invocation())
    assert not outcome.ok and not outcome.retryable
    assert outcome.error_type == "ProgramNotExecutable"
    message = outcome.error_message or ""
    assert message.startswith("cannot start ") and "setpriv" not in message
