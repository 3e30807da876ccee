"""Run a Ghapplets node as several processes: gateways sharing one socket, and a worker.

``ghapplets serve --processes N`` (and ``ghapplets gateway --processes N``) start here. The
supervisor binds the listening socket once and hands it to N gateway processes (every core
accepts and verifies webhooks), starts the worker process (dispatcher and applets) if asked,
restarts a child that dies, and on SIGTERM or SIGINT asks every child to drain and waits for
them. Children die with the supervisor, even on ``kill -9`` of the supervisor alone
(:func:`die_with_parent`); exec applets die with their worker in turn
(:mod:`ghapplets.applets.exec_runtime`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType

from prometheus_client.multiprocess import mark_process_dead

from ghapplets.crashpoints import CRASH_ENV
from ghapplets.logging import get_logger
from ghapplets.metrics import MULTIPROC_ENV
from ghapplets.parentdeath import die_with_parent_now

log = get_logger("ghapplets.supervisor")
PARENT_ENV = "GHAPPLETS_SUPERVISOR_PID"
RESTART_DELAY = 1.0  # seconds between restarts of a child that keeps dying


def die_with_parent() -> None:
    """In a child started by the supervisor: be killed when the supervisor dies (Linux), and
    exit at once if it is already gone."""
    expected = os.environ.get(PARENT_ENV)
    if not expected:
        return
    die_with_parent_now()
    if str(os.getppid()) != expected:  # it died before we asked to follow it
        os._exit(1)


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """The shared listening socket; the kernel hands each connection to one gateway process."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=backlog)
    sock.set_inheritable(True)
    return sock


@dataclass
class Child:
    name: str
    argv: list[str]
    pass_fds: tuple[int, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        env = {**os.environ, **self.env, PARENT_ENV: str(os.getpid())}
        self.proc = subprocess.Popen(self.argv, pass_fds=self.pass_fds, env=env)
        self.started_at = time.monotonic()
        log.info("process started", process=self.name, pid=self.proc.pid)

    def signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signum)


class Supervisor:
    def __init__(self, children: Sequence[Child], *, drain_timeout: float) -> None:
        self.children = list(children)
        self.drain_timeout = drain_timeout
        self._stopping = False

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if not self._stopping:
            log.info("stopping: draining every process", signal=signal.Signals(signum).name)
        self._stopping = True

    def run(self) -> int:
        """Start every child, keep them running until SIGTERM/SIGINT, then drain them."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for child in self.children:
                child.start()
            while not self._stopping:
                self._restart_dead()
                time.sleep(0.1)
            return self._stop_all()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _restart_dead(self) -> None:
        for child in self.children:
            assert child.proc is not None
            code = child.proc.poll()
            if code is None:
                continue
            if code == -signal.SIGKILL and os.environ.get(CRASH_ENV):
                self._die_with(child)
            if time.monotonic() - child.started_at < RESTART_DELAY:
                continue  # give a crash-looping child a pause before the next try
            shared = child.env.get(MULTIPROC_ENV)
            if shared:  # its live gauges no longer count
                with contextlib.suppress(OSError):
                    mark_process_dead(child.proc.pid, shared)
            child.restarts += 1
            log.error(
                "process died; restarting it",
                process=child.name,
                exit=code,
                restarts=child.restarts,
            )
            child.start()

    def _die_with(self, crashed: Child) -> None:
        """A child died at an injected crash point: the whole node dies as it did (SIGKILL,
        no drain), so a test sees the crash instead of a quiet restart."""
        log.error(
            "process crashed at an injected crash point; stopping the node", process=crashed.name
        )
        for child in self.children:
            child.signal(signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    def _stop_all(self) -> int:
        for child in self.children:
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + self.drain_timeout + 10
        worst = 0
        for child in self.children:
            assert child.proc is not None
            try:
                code = child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("process did not stop in time; killing it", process=child.name)
                child.proc.kill()
                code = child.proc.wait()
            # a child stopped by our SIGTERM after its drain is a clean stop
            if code not in (0, -signal.SIGTERM, 128 + signal.SIGTERM):
                worst = worst or 1
        log.info("all processes stopped")
        return worst
