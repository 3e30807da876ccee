"""Text that comes from webhooks, applets or the user is printed as it is, never read as Rich
markup: ``[bold red]`` and ``[/]`` in an id, a subject or an error message print literally."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from ghapplets.backends import open_backends
from ghapplets.config.loader import load_config
from ghapplets.store.records import (
    AttemptOutcome,
    AttemptRecord,
    DeliveryRecord,
    DeliveryStatus,
    JobRecord,
    JobStatus,
    JobUpdate,
)
from tests.cli.helpers import cli

DELIVERY = "evil[/]-[bold red]id"
SUBJECT = "[bold red]owner/repo[/] #1 [/]"
ERROR = "no [/] such [link=http://x]thing[/link] [bold"
JOB = f"github:{DELIVERY}:hello-python"
ATTRIBUTES = {
    "specversion": "1.0",
    "id": DELIVERY,
    "source": "/github",
    "type": "com.github.issues.opened",
    "subject": SUBJECT,
}
WIDE = {"COLUMNS": "400"}  # no cell is cut short


@pytest.fixture
def stored(scaffolded: Path) -> Path:
    """A delivery and a dead job whose id, subject and error look like markup."""
    now = time.time()

    async def go() -> None:
        async with open_backends(load_config(scaffolded).config, scaffolded / ".ghapplets") as b:
            delivery = DeliveryRecord(
                "github", DELIVERY, "com.github.issues.opened", SUBJECT, "t", now,
                DeliveryStatus.DISPATCHED, ATTRIBUTES, {}, b'{"action": "opened"}', 1,
            )  # fmt: skip
            job = JobRecord(JOB, "github", DELIVERY, "hello-python", JobStatus.QUEUED, now, now)
            await b.store.record_dispatch([delivery], [job])
            attempt = AttemptRecord(JOB, 1, now, now, AttemptOutcome.PERMANENT, "Boom[/]", ERROR)
            await b.store.job_finished(JobUpdate(JOB, JobStatus.DEAD, attempt, dead_reason=ERROR))

    asyncio.run(go())
    return scaffolded


def flat(text: str) -> str:
    """Table cells wrap: the words of the output, joined again."""
    return "".join(text.split())


def test_lists_print_stored_text_literally(stored: Path) -> None:
    listed = cli("deliveries", "-p", stored, env=WIDE)
    assert listed.code == 0, listed
    assert flat(DELIVERY) in flat(listed.out) and flat(SUBJECT) in flat(listed.out)
    jobs = cli("jobs", "-p", stored, env=WIDE)
    assert jobs.code == 0, jobs
    assert flat(JOB) in flat(jobs.out)
    assert flat(f"Boom[/]: {ERROR}"[:80]) in flat(jobs.out)


def test_show_prints_stored_text_literally(stored: Path) -> None:
    shown = cli("deliveries", "-p", stored, "show", DELIVERY)
    assert shown.code == 0, shown
    assert SUBJECT in shown.out and DELIVERY in shown.out
    job = cli("jobs", "-p", stored, "show", JOB)
    assert job.code == 0, job
    assert ERROR in job.out


def test_replay_prints_stored_ids_literally(stored: Path) -> None:
    replayed = cli("replay", DELIVERY, "-p", stored)
    assert replayed.code == 0, replayed
    assert f"queued {JOB} (applet hello-python)" in replayed.out
    again = cli("replay", "--job", JOB, "-p", stored)
    assert again.code == 0, again
    assert f"queued {JOB} (applet hello-python)" in again.out


def test_unknown_ids_in_errors_print_literally(stored: Path) -> None:
    missing = cli("jobs", "-p", stored, "show", "[bold red]nope[/]")
    assert missing.code == 4 and "no job '[bold red]nope[/]'" in missing.err, missing


def test_a_secret_scope_prints_literally(tmp_path: Path) -> None:
    refused = cli("secrets", "set", "x", "--value", "v", "--scope", "applet:[/]x", "-p", tmp_path)
    assert refused.code == 2, refused  # not a scope; and the message shows it as given
    assert "invalid scope 'applet:[/]x'" in refused.err
    result = cli("secrets", "set", "x", "--value", "v", "--scope", "applet:x", "-p", tmp_path)
    assert result.code == 0, result
    assert "stored secret x (applet:x)" in result.out
    removed = cli("secrets", "rm", "x", "-p", tmp_path)
    assert removed.code == 0 and "removed secret x" in removed.out
