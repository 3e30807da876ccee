"""Fixtures for the applet tests: events, specs, executables, a real local HTTP server."""

from __future__ import annotations

import json
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ghapplets.applets.model import AppletSpec
from ghapplets.applets.runtime import Invocation
from ghapplets.events.cloudevent import CloudEvent

WriteExec = Callable[[str, str], Path]
ExecSpec = Callable[..., AppletSpec]
MakeInvocation = Callable[..., Invocation]
MakeEvent = Callable[..., CloudEvent]


def make_event(type: str = "com.github.issues.opened", **data: Any) -> CloudEvent:
    payload = {"action": type.rsplit(".", 1)[-1], "issue": {"number": 7, "title": "Bug"}}
    payload.update(data)
    return CloudEvent(
        id="delivery-1",
        source="/github",
        type=type,
        data=payload,
        subject="octo/repo#7",
        extensions={"githubhost": "github.com"},
    )


def make_invocation(event: CloudEvent | None = None, **kw: Any) -> Invocation:
    kw.setdefault("job_id", "job-1")
    kw.setdefault("attempt", 1)
    kw.setdefault("delivery_id", "delivery-1")
    return Invocation(event=event or make_event(), **kw)


@pytest.fixture
def event() -> CloudEvent:
    return make_event()


@pytest.fixture
def new_event() -> Callable[..., CloudEvent]:
    return make_event


@pytest.fixture
def invocation() -> Callable[..., Invocation]:
    return make_invocation


@pytest.fixture
def write_exec(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write an executable script into tmp_path and return its path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text.lstrip())
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return path

    return write


@pytest.fixture
def exec_spec(tmp_path: Path) -> Callable[..., AppletSpec]:
    def make(*command: str, **kw: Any) -> AppletSpec:
        spec = AppletSpec(
            name=kw.pop("name", "exec-test"), runtime="exec", command=list(command), **kw
        )
        spec.folder = tmp_path
        return spec

    return make


# -- a real HTTP server in a background thread ---------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    header_list: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Server:
    url: str
    requests: list[Received] = field(default_factory=list)

    def last(self) -> Received:
        return self.requests[-1]


class _Handler(BaseHTTPRequestHandler):
    server_state: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(
        self,
        status: int,
        body: bytes = b"",
        ctype: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.do_POST()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        state = type(self).server_state
        state.requests.append(
            Received(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                body,
                [(k.lower(), v) for k, v in self.headers.items()],
            )
        )
        path = self.path.split("?")[0]
        if path == "/ok":
            echo = {"received": json.loads(body or b"null"), "path": self.path}
            self._send(200, json.dumps(echo).encode())
        elif path == "/text":
            self._send(200, b"plain words", "text/plain; charset=utf-8")
        elif path == "/empty":
            self._send(204, b"")
        elif path == "/badjson":
            self._send(200, b"{not json")
        elif path == "/big":
            self._send(200, json.dumps({"blob": "x" * 100_000}).encode())
        elif path == "/envelope-error":
            doc = {
                "ok": False,
                "error": {"type": "Quota", "message": "over quota", "retryable": True},
            }
            self._send(500, json.dumps(doc).encode())
        elif path == "/unavailable":
            self._send(503, b"down for maintenance", "text/plain", {"Retry-After": "7"})
        elif path == "/unavailable-date":
            when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 120))
            self._send(503, b"", "text/plain", {"Retry-After": when})
        elif path == "/ratelimit":
            self._send(429, b'{"message": "slow down"}', headers={"Retry-After": "3"})
        elif path == "/conflict":
            self._send(409, b"")
        elif path == "/missing":
            self._send(404, b'{"message": "Not Found"}')
        elif path == "/redirect":
            self._send(302, b"", headers={"Location": "https://elsewhere.example/x?token=abc"})
        elif path == "/slow":
            time.sleep(3)
            self._send(200, b"{}")
        else:
            self._send(500, b"unknown test path")


class _QuietServer(ThreadingHTTPServer):
    """A client that gave up (an applet's timeout) is expected here: its broken pipe must not
    print a traceback to whatever test's stderr is being captured when the handler finishes."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture(scope="module")
def http_server() -> Iterator[Server]:
    state = Server(url="")
    handler = type("Handler", (_Handler,), {"server_state": state})
    httpd = _QuietServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
