"""Running the processes of ``run.shell`` and ``run.script`` tasks, for every host.

Each process runs without a shell of ours (the task's own ``/bin/sh -c`` is its argv), in its
own session, with a scrubbed environment (``PATH`` without relative entries, ``HOME``, ``LANG``,
``TZ``, and the task's ``environment``), behind ``setpriv --pdeathsig KILL`` where it can be so
it dies with the worker. Its output is bounded; on cancel (a timeout, a cancelled run), and once
it ends, whatever is left of its process group is killed and reaped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any

from ghapplets.applets.exec_runtime import INHERITED, guarded_argv, inherited_path
from ghapplets.blueprints.errors import ErrorKind, raise_error
from ghapplets.blueprints.host import ProcessResult, ProcessSpec

MAX_OUTPUT = 1 << 20  # bytes of stdout, and of stderr, a task may take in
_background: set[asyncio.Task[Any]] = set()  # processes started with ``await: false``


def environment(extra: dict[str, str]) -> dict[str, str]:
    env = {"PATH": inherited_path()}
    env.update({k: os.environ[k] for k in INHERITED if k in os.environ})
    env.update(extra)
    return env


async def spawn(spec: ProcessSpec) -> ProcessResult:
    cwd = os.getcwd()
    try:
        proc = await asyncio.create_subprocess_exec(
            *guarded_argv(list(spec.argv), cwd),
            env=environment(dict(spec.environment)),
            stdin=asyncio.subprocess.PIPE if spec.stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise raise_error(ErrorKind.RUNTIME, f"cannot start {spec.argv[0]}: {exc}") from exc
    if not spec.wait:
        task = asyncio.ensure_future(_finish(proc, spec.stdin))
        _background.add(task)
        task.add_done_callback(_background.discard)
        return ProcessResult(0, "", "")
    try:
        out, err = await _finish(proc, spec.stdin)
    finally:
        _kill(proc)
        if proc.returncode is None:
            await proc.wait()
    return ProcessResult(proc.returncode or 0, out, err)


async def _finish(proc: asyncio.subprocess.Process, stdin: bytes | None) -> tuple[str, str]:
    assert proc.stdout is not None and proc.stderr is not None

    async def feed() -> None:
        if proc.stdin is None:
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.write(stdin or b"")
            await proc.stdin.drain()
        proc.stdin.close()

    async def read(stream: asyncio.StreamReader, name: str) -> bytes:
        data = await stream.read(MAX_OUTPUT + 1)
        chunks = [data]
        while data:
            if sum(len(c) for c in chunks) > MAX_OUTPUT:
                raise raise_error(
                    ErrorKind.RUNTIME, f"the process wrote more than {MAX_OUTPUT} bytes to {name}"
                )
            data = await stream.read(65536)
            chunks.append(data)
        return b"".join(chunks)

    _, out, err = await asyncio.gather(
        feed(), read(proc.stdout, "stdout"), read(proc.stderr, "stderr")
    )
    await proc.wait()
    return _text(out), _text(err)


def _text(data: bytes) -> str:
    text = data.decode("utf-8", "replace")
    return text[:-1] if text.endswith("\n") else text


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
