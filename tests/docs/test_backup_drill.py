"""The restore drill of ``docs/backup.md`` works as written: its ``sh drill`` blocks, run in order.

The blocks are found with markdown-it (Rich's Markdown parser, so already installed): every
fenced block whose info string is ``sh drill``. Each runs in its own ``bash -euo pipefail``, in
the scratch folder, with the variables the drill says to set (``DRILL``, ``PORT``) and this
virtualenv's ``ghapplets`` first on ``PATH``; the test fails at the first block that fails, or
when the page has no drill blocks. The servers the drill starts in the background write their
PIDs to ``$DRILL/serve.pid``; whatever such PID still runs at the end is stopped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from tests.cli.helpers import clean_env
from tests.conftest import free_port

pytestmark = pytest.mark.slow
DOC = Path(__file__).resolve().parents[2] / "docs" / "backup.md"
INFO = "sh drill"
BLOCK_TIMEOUT = 300


def drill_blocks(text: str) -> list[tuple[int, str]]:
    """The ``sh drill`` blocks of a Markdown text: (first line number, code), in order."""
    tokens = MarkdownIt("commonmark").parse(text)
    return [
        (t.map[0] + 1 if t.map else 0, t.content)
        for t in tokens
        if t.type == "fence" and t.info.strip() == INFO
    ]


def test_blocks_are_found_by_their_info_string_only() -> None:
    text = (
        "# x\n\n```sh\nnot this\n```\n\n```sh drill\necho one\n```\n\n"
        "- a list\n\n  ```sh drill\n  echo two\n  ```\n\n~~~sh drill\necho three\n~~~\n"
    )
    assert [code for _, code in drill_blocks(text)] == ["echo one\n", "echo two\n", "echo three\n"]


@pytest.fixture
def drill(tmp_path: Path) -> Iterator[Path]:
    """The scratch folder; afterwards, stop what the drill left running (by its PID files)."""
    folder = tmp_path / "drill"
    try:
        yield folder
    finally:
        for pidfile in folder.glob("*.pid"):
            _stop(int(pidfile.read_text().strip() or 0))


def _stop(pid: int) -> None:
    if pid <= 0:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def test_the_restore_drill_runs_as_written(drill: Path, tmp_path: Path) -> None:
    blocks = drill_blocks(DOC.read_text())
    assert len(blocks) >= 5, f"{DOC.name} has {len(blocks)} '{INFO}' blocks"
    bindir = str(Path(sys.executable).parent)
    env = clean_env(
        DRILL=str(drill),
        PORT=str(free_port()),
        PATH=os.pathsep.join([bindir, os.environ.get("PATH", "")]),
    )
    log: list[str] = []
    for number, (line, code) in enumerate(blocks, 1):
        cwd = drill if drill.is_dir() else tmp_path
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", code],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
        )
        log.append(f"--- block {number} (line {line}): exit {done.returncode}\n"
                   f"{done.stdout}{done.stderr}")  # fmt: skip
        assert done.returncode == 0, "\n".join(log)
