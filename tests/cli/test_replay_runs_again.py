"""``ghapplets replay`` from another process against a running ``ghapplets serve``: a replayed
delivery's job, and a job replayed with ``--job``, each run the applet again (its side effect,
a line appended to a file, happens once more), not merely get reported as queued.

(Unknown ids exit with status 4: tests/cli/test_serve_flow.py::test_replay_of_unknown_ids_exits_4.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.cli.helpers import cli, poll, serving
from tests.conftest import ProjectBuilder

EFFECT = """
from ghapplets import Applet, Context
app = Applet("effect")

@app.on("com.github.issues.opened")
async def handle(ctx: Context) -> int:
    with open({log!r}, "a") as f:
        f.write(f"{{ctx.idempotency_key}} {{ctx.attempt}}\\n")
    return ctx.attempt
"""
JOB = "github:cli-1:effect"


def test_replay_of_a_delivery_and_of_a_job_run_the_applet_again(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    project.python_applet("effect", EFFECT.format(log=str(log)))
    root = project.build()

    def effects() -> list[str]:
        return log.read_text().splitlines() if log.exists() else []

    def job() -> dict[str, Any] | None:
        shown = cli("jobs", "-p", root, "show", JOB, "--json")
        if shown.code == 4:  # not dispatched yet
            return None
        assert shown.code == 0, shown
        (doc,) = shown.json_lines()
        return doc  # type: ignore[no-any-return]

    def finished(attempts: int) -> bool:
        """The job is done, after ``attempts`` attempts in all."""
        doc = job()
        return (
            doc is not None and doc["status"] == "succeeded" and len(doc["attempt_log"]) == attempts
        )

    with serving(root) as server:
        sent = cli(
            "send", "issues.opened", "--delivery-id", "cli-1", "--url", server.url, "-p", root
        )
        assert sent.code == 0 and sent.out.startswith("202 "), sent
        poll(lambda: finished(1), timeout=20, interval=0.05)
        assert effects() == [f"{JOB} 1"]

        replayed = cli("replay", "cli-1", "-p", root)  # the delivery: every matching applet
        assert replayed.code == 0, replayed
        assert f"queued {JOB} (applet effect)" in replayed.out, replayed
        poll(lambda: finished(2), timeout=20, interval=0.05)
        assert effects() == [f"{JOB} 1", f"{JOB} 2"]  # ran again: 1 -> 2

        again = cli("replay", "--job", JOB, "-p", root)  # one job
        assert again.code == 0, again
        assert f"queued {JOB} (applet effect)" in again.out, again
        poll(lambda: finished(3), timeout=20, interval=0.05)
        assert effects() == [f"{JOB} 1", f"{JOB} 2", f"{JOB} 3"]  # and again: 2 -> 3
        assert (job() or {}).get("result") == 3
