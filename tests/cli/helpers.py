"""Run the real ``ghapplets`` command: as a subprocess (``python -m ghapplets``), in-process with
Typer's ``CliRunner`` for the fast checks, and ``serve`` as a real server on a free port."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from typer.testing import CliRunner

from ghapplets.cli.main import app
from tests.conftest import free_port

GHAPPLETS = [sys.executable, "-m", "ghapplets"]
# variables of the developer's shell that would change what the commands do
_SCRUB_PREFIXES = ("GHAPPLETS_",)
_SCRUB = {"GITHUB_WEBHOOK_SECRET", "PYTEST_ADDOPTS"}


@dataclass(repr=False)
class Result:
    code: int
    out: str
    err: str

    def __repr__(self) -> str:  # what a failed `assert ..., result` shows
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"

    __str__ = __repr__

    def json_lines(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.out.splitlines() if line.strip()]


# every server a test starts serves its admin API on a port of its own (not the default 8081,
# which servers started side by side would all ask for); a test that wants one names it
ADMIN_ANY_PORT = {"GHAPPLETS_SERVER__ADMIN_ADDRESS": "127.0.0.1:0"}


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES) and k not in _SCRUB
    }
    env.update(ADMIN_ANY_PORT)
    env.update(extra)
    return env


def assert_no_traceback(result: Result) -> None:
    for text in (result.out, result.err):
        assert "Traceback" not in text, str(result)  # plain, or in Typer's pretty box


def ghapplets(
    *args: object,
    cwd: Path,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 60,
) -> Result:
    """``python -m ghapplets ARGS`` in ``cwd``; never a traceback, whatever the exit status."""
    proc = subprocess.run(
        [*GHAPPLETS, *map(str, args)],
        cwd=cwd,
        env=clean_env() if env is None else env,
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    result = Result(proc.returncode, proc.stdout, proc.stderr)
    assert_no_traceback(result)
    return result


_runner = CliRunner()


def cli(*args: object, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    """The same command in-process (fast), with ``env`` instead of the shell's ``GHAPPLETS_*``
    variables. An uncaught exception fails the test."""
    scrubbed: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith(_SCRUB_PREFIXES) or k in _SCRUB
    }
    scrubbed.update(env or {})
    r = _runner.invoke(app, [str(a) for a in args], env=scrubbed, input=input)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        detail = "".join(traceback.format_exception(r.exception))
        raise AssertionError(f"uncaught {r.exception!r}\n{detail}\n{r.output}")
    result = Result(r.exit_code, r.stdout, r.stderr)
    assert_no_traceback(result)
    return result


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def serving(
    project: Path,
    *args: object,
    env: dict[str, str] | None = None,
    port: int | None = None,
    timeout: float = 30,
) -> Iterator[Server]:
    """``ghapplets serve`` in ``project`` until it answers ``/readyz``; always stopped after.

    Without ``port`` it picks a free one, and picks again if another process took it between
    the pick and serve's bind (a free port is only free until someone binds it)."""
    for attempt in range(3):
        chosen = free_port() if port is None else port
        try:
            proc, log = _start_serving(project, args, env, chosen, timeout)
        except PortTaken:
            if port is not None or attempt == 2:
                raise
            continue
        try:
            yield Server(proc, chosen, log)
        finally:
            _stop(proc)
        return


class PortTaken(AssertionError):
    """serve could not bind its port: another process has it."""


def _start_serving(
    project: Path, args: tuple[object, ...], env: dict[str, str] | None, port: int, timeout: float
) -> tuple[subprocess.Popen[bytes], Path]:
    log = project.parent / f"serve-{port}.log"
    command = [*GHAPPLETS, "serve", "--log-format", "json", *map(str, args)]
    if "--port" not in command and not (env or {}).get("GHAPPLETS_SERVER__PORT"):
        command += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=project,
            env=clean_env() if env is None else env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            text = log.read_text()
            if "address already in use" in text:
                raise PortTaken(f"port {port} taken:\n{text}")
            raise AssertionError(f"serve exited with {proc.returncode}:\n{text}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc, log
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            _stop(proc)
            raise AssertionError(f"serve not ready after {timeout}s:\n{log.read_text()}")
        time.sleep(0.05)


def poll(fn: Any, *, timeout: float = 15, interval: float = 0.1) -> Any:
    """Call ``fn`` until it returns something truthy; that value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout}s; last value: {value!r}")
        time.sleep(interval)


@contextlib.contextmanager
def logging_restored() -> Iterator[None]:
    """Put structlog and the root logger back as they were (commands reconfigure both, onto
    streams that CliRunner closes afterwards)."""
    import logging

    import structlog

    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)
