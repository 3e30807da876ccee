"""The ``exec`` runtime: any executable, in any language, one process per invocation.

This module owns the process contract. ``spec.command`` is an argv list run without a shell in
its own session (process group), with ``cwd`` = the applet folder and a scrubbed environment.
The structured CloudEvent JSON goes to stdin; stdout is the result JSON; stderr lines are logs.
Exit 0 is success, 75 (``EX_TEMPFAIL``) a retryable error, any other status a permanent one, a
death by signal retryable. On timeout, output overflow or normal exit, whatever is left of the
process group is killed with ``SIGKILL`` and reaped.

The program does not outlive the process that started it: on Linux, when util-linux ``setpriv``
(with ``--pdeathsig``) is on ``PATH``, the command runs as ``setpriv --pdeathsig KILL --
program args...``, so the kernel sends it ``SIGKILL`` when our process dies, even by
``kill -9`` (a crashed worker's applets stop instead of running beside their retries). Not a
``preexec_fn``: see :mod:`ghapplets.parentdeath`. ``setpriv`` starts the command with
``execvp``, which differs from our ``exec`` when that fails (a message and status 126/127
instead of an ``OSError``; a file without a ``#!`` line run by ``/bin/sh``), so it is wrapped
only when the parent checked that the ``exec`` will succeed (:func:`_execs_cleanly`: a native
ELF file, or a ``#!`` chain of executable files ending in one); otherwise, or without
``setpriv`` (not Linux, an old util-linux), it is run directly as before, with no parent-death
signal. The signal is not inherited by the program's own children (``fork`` clears it): a
background child the program leaves behind outlives a crashed worker. Nor is it sent if our
process dies in the instant between the ``fork`` and ``setpriv`` asking for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from ghapplets.applets.matching import structured_json
from ghapplets.applets.model import AppletSpec
from ghapplets.applets.result import AppletOutcome
from ghapplets.applets.runtime import (
    Invocation,
    LogSink,
    Runtime,
    applet_logger,
    declared_secrets,
    result_from_document,
)
from ghapplets.connectors import wire
from ghapplets.exceptions import ErrorType, PermanentError, RetryableError
from ghapplets.secrets.names import secret_env_name

__all__ = [
    "ExecRuntime",
    "build_env",
    "guarded_argv",
    "inherited_path",
    "resolve_program",
    "secret_env_name",
]

EX_TEMPFAIL = 75
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INHERITED = ("HOME", "LANG", "TZ")
_CHUNK = 65536
_MAX_STDERR_LINE = 8192
_TAIL_LINES = 5


def inherited_path() -> str:
    """The parent's ``PATH`` without relative entries (``.``, empty), else :data:`SAFE_PATH`."""
    parts = [p for p in os.environ.get("PATH", "").split(os.pathsep) if os.path.isabs(p)]
    return os.pathsep.join(parts) or SAFE_PATH


def build_env(spec: AppletSpec, inv: Invocation) -> dict[str, str]:
    """The complete environment of the child process; nothing else leaks from the parent."""
    env = {"PATH": inherited_path()}
    env.update({k: os.environ[k] for k in INHERITED if k in os.environ})
    env.update(spec.env)
    for name, value in declared_secrets(spec, inv).items():
        env[secret_env_name(name)] = value  # never a platform variable: see AppletSpec.secrets
    env.update(
        GHAPPLETS_JOB_ID=inv.job_id,
        GHAPPLETS_IDEMPOTENCY_KEY=inv.job_id,
        GHAPPLETS_ATTEMPT=str(inv.attempt),
        GHAPPLETS_DELIVERY_ID=inv.delivery_id,
        GHAPPLETS_EVENT_TYPE=inv.event.type,
        GHAPPLETS_APPLET=spec.name,
    )
    if inv.action_grant is not None:  # `ghapplets action` in the child calls the worker
        env[wire.URL_VARIABLE] = inv.action_grant.url
        env[wire.TOKEN_VARIABLE] = inv.action_grant.token
    return env


def resolve_program(spec: AppletSpec, path: str) -> str:
    """The executable for ``spec.command[0]``: absolute as is; with a ``/`` relative to the
    applet folder; a bare name from the folder if such a file exists there, else from ``path``.
    Raises :class:`PermanentError` if it is missing or not executable."""
    assert spec.command
    program = spec.command[0]
    folder = spec.folder or Path.cwd()
    if os.path.isabs(program):
        candidate = Path(program)
    elif "/" in program or (folder / program).exists():
        candidate = folder / program
    else:
        found = shutil.which(program, path=path)
        if found is None:
            raise PermanentError(
                f"program {program!r} not found in the applet folder {folder} or on PATH "
                f"({path}); use a path like ./{program} or set env.PATH in applet.yaml",
                type=ErrorType.PROGRAM_NOT_FOUND,
            )
        return found
    if not candidate.is_file():
        raise PermanentError(f"program {candidate} not found", type=ErrorType.PROGRAM_NOT_FOUND)
    if not os.access(candidate, os.X_OK):
        raise PermanentError(
            f"program {candidate} is not executable: chmod +x it, or run it through its "
            f"interpreter (command: [python3, {program}])",
            type=ErrorType.PROGRAM_NOT_EXECUTABLE,
        )
    return str(candidate)


@functools.cache
def _setpriv() -> tuple[str, bytes] | None:
    """``setpriv`` and the start of our own ELF header, if ``setpriv --pdeathsig`` works here.
    Looked up once (on ``PATH`` without relative entries) and tried once."""
    if not sys.platform.startswith("linux"):
        return None
    setpriv = shutil.which("setpriv", path=inherited_path())
    if setpriv is None:
        return None
    try:  # util-linux before 2.33 (RHEL 8) has no --pdeathsig
        probe = subprocess.run(
            [setpriv, "--pdeathsig", "KILL", "--", setpriv, "--version"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
            check=False,
        )
        with open("/proc/self/exe", "rb") as exe:
            native = exe.read(20)
    except (OSError, subprocess.SubprocessError):
        return None
    return (setpriv, native) if probe.returncode == 0 else None


_SHEBANG = re.compile(rb"#![ \t]*([^ \t\0]+)")  # the interpreter, as the kernel reads it


def _execs_cleanly(program: str, cwd: str, native: bytes) -> bool:
    """Whether ``execve(program)`` will succeed, as far as the parent can tell: an absolute
    path to an ELF file of our own class and machine, or to a script whose ``#!``
    interpreters (at most 4, each an executable regular file) end in one. False when unsure."""
    if not os.path.isabs(program):  # the child would look for it (from its cwd, on PATH)
        return False
    path = program
    for _ in range(5):
        try:
            with open(path, "rb") as f:
                head = f.read(256)  # what the kernel looks at
        except OSError:
            return False
        if head[:4] == b"\x7fELF":
            return head[4:6] == native[4:6] and head[18:20] == native[18:20]
        line, newline, _ = head.partition(b"\n")
        shebang = _SHEBANG.match(line)
        if not (newline and shebang):
            return False
        path = os.path.join(cwd, os.fsdecode(shebang[1]))  # a relative one: from the child's cwd
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return False
    return False


def _argv(spec: AppletSpec, program: str) -> list[str]:
    """The command, behind ``setpriv --pdeathsig KILL`` when it can be (see the module doc).

    ``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child ends, not the process.
    ``create_subprocess_exec`` forks in the thread running the event loop (asyncio's
    transport calls ``subprocess.Popen`` there; uvloop's ``uv_spawn`` too; the child watcher's
    threads only wait). The worker and ``ghapplets serve``/``invoke`` run their loop with
    ``asyncio.run`` (or uvicorn's) on the main thread, which lives as long as the process; the
    per-applet :class:`~ghapplets.applets.python_runtime.HandlerThreads` run sync Python
    handlers only, never an ``exec`` applet. (A loop on another thread would do too: that
    thread runs through the whole invocation, and :meth:`ExecRuntime._run` kills and reaps the
    program before it returns.)"""
    cwd = os.fspath(spec.folder) if spec.folder else os.getcwd()
    return guarded_argv([program, *(spec.command or [])[1:]], cwd)


def guarded_argv(argv: list[str], cwd: str) -> list[str]:
    """``argv`` behind ``setpriv --pdeathsig KILL`` when that is sure to work (see
    :func:`_argv`), so the program dies with the process that starts it."""
    setpriv = _setpriv()
    if setpriv is not None and _execs_cleanly(argv[0], cwd, setpriv[1]):
        return [setpriv[0], "--pdeathsig", "KILL", "--", *argv]
    return argv


class _TooLarge(Exception):
    def __init__(self, stream: str, limit: int) -> None:
        super().__init__(f"the applet wrote more than {limit} bytes to {stream}")


class _Pipes:
    """The parent's ends of the child's stdout and stderr pipes (our own, not asyncio's, so
    ``proc.wait()`` means "the program exited" and we can stop reading whenever we like, even
    if an escaped grandchild still holds the write ends)."""

    def __init__(self) -> None:
        self._fds: list[int] = []
        self._write_fds: list[int] = []
        for _ in range(2):
            r, w = os.pipe()
            self._fds.append(r)
            self._write_fds.append(w)
        self._transports: list[asyncio.BaseTransport] = []
        self._stdin: asyncio.StreamWriter | None = None
        self.stdout: asyncio.StreamReader | None = None
        self.stderr: asyncio.StreamReader | None = None

    @property
    def child_ends(self) -> tuple[int, int]:
        return self._write_fds[0], self._write_fds[1]

    def close_child_ends(self) -> None:
        """After the spawn: the child has its copies."""
        while self._write_fds:
            os.close(self._write_fds.pop())

    async def connect(self, stdin: asyncio.StreamWriter | None) -> None:
        self._stdin = stdin
        loop = asyncio.get_running_loop()
        readers = []
        while self._fds:
            reader = asyncio.StreamReader(limit=_CHUNK, loop=loop)
            pipe = os.fdopen(self._fds[0], "rb", buffering=0)
            self._fds.pop(0)  # owned by ``pipe`` from now on
            try:
                transport, _ = await loop.connect_read_pipe(
                    functools.partial(asyncio.StreamReaderProtocol, reader, loop=loop), pipe
                )
            except BaseException:
                pipe.close()
                raise
            self._transports.append(transport)
            readers.append(reader)
        self.stdout, self.stderr = readers

    def close(self) -> None:
        self.close_child_ends()
        while self._fds:
            os.close(self._fds.pop())
        for transport in self._transports:
            transport.close()
        if self._stdin is not None and not self._stdin.is_closing():
            self._stdin.transport.abort()


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class ExecRuntime(Runtime):
    """Runs ``spec.command`` once per invocation."""

    kind = "exec"

    async def _run(self, inv: Invocation, sink: LogSink) -> AppletOutcome:
        assert self.spec.command
        env = build_env(self.spec, inv)
        program = resolve_program(self.spec, env["PATH"])
        pipes = _Pipes()
        try:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *_argv(self.spec, program),
                    cwd=self.spec.folder,
                    env=env,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=pipes.child_ends[0],
                    stderr=pipes.child_ends[1],
                    start_new_session=True,
                )
            finally:
                pipes.close_child_ends()
        except OSError as exc:  # ENOEXEC (no #! line), EACCES, a vanished file...
            pipes.close()
            raise PermanentError(
                f"cannot start {program}: {exc.strerror or exc}",
                type=ErrorType.PROGRAM_NOT_EXECUTABLE,
            ) from None
        except BaseException:
            pipes.close()
            raise
        try:
            await pipes.connect(proc.stdin)
            stdout = await self._communicate(proc, pipes, inv, sink)
        except _TooLarge as exc:
            raise PermanentError(str(exc), type=ErrorType.OUTPUT_TOO_LARGE) from None
        finally:
            _kill_group(proc)
            pipes.close()
            if proc.returncode is None:
                await proc.wait()
        return self._outcome(proc.returncode, stdout, sink)

    async def _communicate(
        self, proc: asyncio.subprocess.Process, pipes: _Pipes, inv: Invocation, sink: LogSink
    ) -> bytes:
        limit = self.spec.max_output_bytes
        log = applet_logger(self.spec, inv)
        stdout = bytearray()

        async def feed(stdin: asyncio.StreamWriter) -> None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                stdin.write(structured_json(inv.event))
                await stdin.drain()
            stdin.close()

        async def read_out(stream: asyncio.StreamReader) -> None:
            while chunk := await stream.read(_CHUNK):
                if len(stdout) + len(chunk) > limit:
                    raise _TooLarge("stdout", limit)
                stdout.extend(chunk)

        def emit(raw: bytes) -> None:
            line = raw.decode("utf-8", "replace").rstrip("\r")
            sink.append(line)
            log.info(line, stream="stderr")

        async def read_err(stream: asyncio.StreamReader) -> None:
            total, pending = 0, b""
            while chunk := await stream.read(_CHUNK):
                over = total + len(chunk) > limit
                total += len(chunk)
                *lines, pending = (pending + chunk[: max(0, limit - total + len(chunk))]).split(
                    b"\n"
                )
                for raw in lines:
                    emit(raw)
                if over:
                    raise _TooLarge("stderr", limit)
                if len(pending) > _MAX_STDERR_LINE:
                    emit(pending)
                    pending = b""
            if pending:
                emit(pending)

        assert proc.stdin and pipes.stdout and pipes.stderr
        feeder = asyncio.create_task(feed(proc.stdin))
        readers = [
            asyncio.create_task(read_out(pipes.stdout)),
            asyncio.create_task(read_err(pipes.stderr)),
        ]
        waiter = asyncio.create_task(proc.wait())
        pending: set[asyncio.Task[Any]] = {waiter, *readers}
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # re-raise _TooLarge
                if waiter in done:
                    # the program exited: what it left in its group would hold our pipes open
                    _kill_group(proc)
            await feeder
        finally:
            for task in (feeder, waiter, *readers):
                task.cancel()
            await asyncio.gather(feeder, waiter, *readers, return_exceptions=True)
        return bytes(stdout)

    def _outcome(self, code: int | None, stdout: bytes, sink: LogSink) -> AppletOutcome:
        if code is not None and code < 0:
            try:
                signame = signal.Signals(-code).name
            except ValueError:
                signame = f"signal {-code}"
            raise RetryableError(f"the applet was killed by {signame}", type=ErrorType.SIGNAL)
        text = stdout.strip()
        doc, parsed = None, True
        if text:
            try:
                doc = orjson.loads(text)
            except orjson.JSONDecodeError:
                parsed = False
        if parsed:
            outcome = result_from_document(doc)
            if not outcome.ok:
                return outcome  # the error contract on stdout wins over the exit status
        if code not in (0, None):
            tail = " | ".join(sink.tail(_TAIL_LINES)) or "no stderr output"
            kind = " (EX_TEMPFAIL)" if code == EX_TEMPFAIL else ""
            raise (RetryableError if code == EX_TEMPFAIL else PermanentError)(
                f"exited with status {code}{kind}: {tail}", type=ErrorType.EXIT_CODE
            )
        if not parsed:
            snippet = text[:200].decode("utf-8", "replace")
            raise PermanentError(
                f"stdout is not JSON (write the result as JSON, logs to stderr): {snippet!r}",
                type=ErrorType.BAD_OUTPUT,
            )
        return outcome
