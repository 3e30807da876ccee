"""A real HAProxy (Debian's package) in front of test servers: round robin with health checks."""

from __future__ import annotations

import csv
import io
import shutil
import socket
import subprocess
import textwrap
import time
from pathlib import Path
from types import TracebackType

from tests.conftest import free_port
from tests.servers.process import terminate


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )
    if found is None:
        raise RuntimeError("HAProxy is not installed: 'python3 tasks.py test' installs it")
    return found


class HAProxy:
    """HAProxy balancing ``backends`` (host:port pairs), checking ``GET /readyz`` every 200 ms."""

    def __init__(self, folder: Path, backends: list[tuple[str, int]]) -> None:
        self.folder = folder
        self.port = free_port()
        self.stats_socket = folder / "haproxy.sock"
        self.backends = backends
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        servers = "\n".join(
            f"    server gw{i + 1} {host}:{port} check inter 200ms fall 2 rise 2"
            for i, (host, port) in enumerate(self.backends)
        )
        return (
            textwrap.dedent(
                f"""
            global
                maxconn 4096
                stats socket {self.stats_socket} mode 600 level admin
            defaults
                mode http
                timeout connect 2s
                timeout client 30s
                timeout server 30s
                retries 2
                option redispatch
                retry-on conn-failure empty-response response-timeout
            frontend webhooks
                bind 127.0.0.1:{self.port}
                default_backend gateways
            backend gateways
                balance roundrobin
                option httpchk GET /readyz
            """
            )
            + servers
            + "\n"
        )

    def start(self, timeout: float = 10.0) -> HAProxy:
        self.folder.mkdir(parents=True, exist_ok=True)
        cfg = self.folder / "haproxy.cfg"
        cfg.write_text(self.config())
        log = (self.folder / "haproxy.log").open("wb")
        self.proc = subprocess.Popen(
            [haproxy_binary(), "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited: {(self.folder / 'haproxy.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("haproxy did not start listening")

    def server_status(self) -> dict[str, str]:
        """``gw1`` -> ``UP`` / ``DOWN`` / ..., from the admin socket's ``show stat``."""
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.stats_socket))
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
        return {
            r["svname"]: r["status"]
            for r in rows
            if r["pxname"] == "gateways" and r["svname"] not in ("FRONTEND", "BACKEND")
        }

    def stop(self) -> None:
        terminate(self.proc)

    def __enter__(self) -> HAProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
