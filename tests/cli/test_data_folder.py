"""One server per embedded data folder, and a private data folder, through the real commands."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from ghapplets.datadir import LOCK_FD_ENV, LOCK_FILE
from ghapplets.supervisor import PARENT_ENV
from tests.cli.helpers import GHAPPLETS, clean_env, cli, ghapplets, poll, serving
from tests.conftest import ProjectBuilder, free_port
from tests.gateway.test_ingest import BODY, github_headers

pytestmark = pytest.mark.slow

APPLET = """
from ghapplets import Applet, Context
app = Applet("count")

@app.on("com.github.issues.opened")
async def handle(ctx: Context) -> str:
    return ctx.event.id
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_second_serve_gateway_or_worker_on_the_folder_exits_naming_the_holder(
    project: ProjectBuilder,
) -> None:
    project.python_applet("count", APPLET)
    root = project.build()
    data = root / ".ghapplets"
    with serving(root, "--processes", "2") as server:
        holder = server.proc.pid
        sent = httpx.post(
            f"{server.url}/hooks/github", content=BODY, headers=github_headers(BODY, "lock-1")
        )
        assert sent.status_code == 202, sent.text
        for command in (
            ["serve", "--port", free_port()],
            ["gateway", "--processes", "1", "--port", free_port()],
            ["gateway", "--processes", "2", "--port", free_port()],
            ["worker"],
            ["worker", "--port", free_port()],
        ):
            second = ghapplets(*command, "--log-format", "json", cwd=root, timeout=30)
            assert second.code == 1, (command, second)
            assert f"the data folder {data} is in use by another Ghapplets process" in second.err
            assert f"(PID {holder}: ghapplets serve " in second.err, second

        # a "child" started by hand, naming a descriptor of the lock file of its own, gets no lock
        with (data / LOCK_FILE).open("rb") as own:
            stray = subprocess.run(
                [*GHAPPLETS, "worker", "--log-format", "json"],
                cwd=root,
                env=clean_env(**{LOCK_FD_ENV: str(own.fileno()), PARENT_ENV: str(os.getpid())}),
                pass_fds=(own.fileno(),),
                capture_output=True,
                text=True,
                timeout=30,
            )
        assert stray.returncode == 1, stray
        assert f"(PID {holder}: ghapplets serve " in stray.stderr, stray.stderr

        # commands that read or queue work run beside the server
        listed = ghapplets("deliveries", "--json", cwd=root)
        assert listed.code == 0, listed
        assert [d["id"] for d in listed.json_lines()] == ["lock-1"]
        assert ghapplets("jobs", "--json", cwd=root).code == 0
        assert ghapplets("secrets", "list", cwd=root).code == 0
        replayed = ghapplets("replay", "lock-1", cwd=root)
        assert replayed.code == 0 and "queued github:lock-1:count" in replayed.out, replayed

        def ran_twice() -> bool:
            (job,) = cli("jobs", "--json", "-p", root).json_lines()
            return bool(job["attempts"] == 2 and job["status"] == "succeeded")

        poll(ran_twice, timeout=15)
        # serve's own children run: the worker (which ran the job) and the gateways
        assert (data / LOCK_FILE).read_text().startswith(f"{holder}\nghapplets serve ")
    # stopped: the folder is free again
    with serving(root, "--processes", "1") as again:
        assert (data / LOCK_FILE).read_text().startswith(f"{again.proc.pid}\n")


def test_serve_keeps_the_data_folder_private(project: ProjectBuilder) -> None:
    root = project.build()
    env = clean_env()
    data = root / ".ghapplets"
    with serving(root, "--processes", "1", env=env) as server:
        sent = httpx.post(
            f"{server.url}/hooks/github", content=BODY, headers=github_headers(BODY, "m-1")
        )
        assert sent.status_code == 202
        names = (
            "ghapplets.db",
            "ghapplets.db-wal",
            "ghapplets.db-shm",
            "ghapplets.db.write.lock",
            "ghapplets.db.consumer.lock",
            LOCK_FILE,
            "secret.key",
            "ghapplets.db.wake",
        )
        poll(lambda: all((data / name).exists() for name in names))  # the worker is up too
        assert mode(data) == 0o700
        for name in names:
            assert mode(data / name) == 0o600, name
