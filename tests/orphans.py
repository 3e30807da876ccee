"""Processes a killed test leaves behind: adopting them, and ending them.

mutmut ends a mutant that hangs a test by killing the process running it; what that test
started (a ``nats-server``, a ``ghapplets serve`` and its children) goes on running, holds ports
and CPU, and slows every mutant after it. The mutation runner makes itself a *child subreaper*
(Linux ``PR_SET_CHILD_SUBREAPER``), so such orphans become its children instead of init's, and
ends those that stay orphaned: a process is adopted only when its parent died, so any child of
the runner other than mutmut itself was left behind. One seen in two scans in a row (a grace of
one interval, for a process on its way out) is killed with SIGKILL, and reaped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psutil

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Adopt this process's orphaned descendants (Linux only); False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)


def adopted(keep: set[int]) -> set[tuple[int, float]]:
    """This process's children other than ``keep``, each as (pid, start time)."""
    found: set[tuple[int, float]] = set()
    for child in psutil.Process().children():
        if child.pid in keep:
            continue
        try:
            found.add((child.pid, child.create_time()))
        except psutil.NoSuchProcess:
            continue
    return found


def end(orphans: set[tuple[int, float]]) -> int:
    """Kill and reap the given processes (those still the same process); how many were killed."""
    killed = 0
    for pid, started in orphans:
        try:
            process = psutil.Process(pid)
            if process.create_time() != started:
                continue  # the pid was reused
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            killed += 1
        except (psutil.NoSuchProcess, psutil.TimeoutExpired):
            continue
    return killed


class OrphanReaper:
    """Every ``interval`` seconds, end the children (other than ``keep``) seen the scan before."""

    def __init__(self, keep: set[int], interval: float = 15.0) -> None:
        self.keep = keep
        self.interval = interval
        self.killed = 0
        self._seen: set[tuple[int, float]] = set()
        self._stop = threading.Event()

    def scan(self) -> None:
        now = adopted(self.keep)
        self.killed += end(now & self._seen)
        self._seen = now - self._seen

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            self.scan()

    def stop(self) -> None:
        self._stop.set()


@contextmanager
def reaping(keep: set[int], interval: float = 15.0) -> Iterator[OrphanReaper]:
    """Reap orphans in a background thread while the block runs, and all that are left after."""
    reaper = OrphanReaper(keep, interval)
    thread = threading.Thread(target=reaper.run, name="orphan-reaper", daemon=True)
    thread.start()
    try:
        yield reaper
    finally:
        reaper.stop()
        thread.join()
        reaper.killed += end(adopted(keep))
