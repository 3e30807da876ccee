"""Tie a process's life to its parent's: on Linux, the kernel kills it when the parent dies.

Used by the supervisor's children (a gateway or worker does not outlive ``serve``, even after a
``kill -9`` of ``serve`` alone). Elsewhere it does nothing.

Not for ``exec`` applets: setting it in a ``preexec_fn`` runs Python in the forked child of a
threaded process, and the child can deadlock there (the fork's thread-state cleanup finalises
objects, such as database connections, whose locks other threads held). An applet gets the same
signal from a wrapper that sets it, then replaces itself with the command by ``execve`` (which
keeps the setting): util-linux ``setpriv --pdeathsig KILL``, when it is there (see
:mod:`ghapplets.applets.exec_runtime`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if not name:
        return None
    func: Callable[..., int] = ctypes.CDLL(name, use_errno=True).prctl
    return func


_PRCTL = _prctl()  # resolved once, in the parent: the child of a fork only calls it


def die_with_parent_now() -> None:
    """From now on, this process gets SIGKILL when its parent dies (Linux only)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
