"""Tests for this project's applets, with the Ghapplets pytest plugin."""

from pathlib import Path

APPLETS = Path(__file__).parent.parent / "applets"


async def test_hello_python_thanks_the_author(ghapplets_event, ghapplets_invoke):
    event = ghapplets_event("github", "issues.opened")
    run = await ghapplets_invoke(APPLETS / "hello-python", event)
    assert run.ok, run.outcome
    issue = event.data["issue"]
    assert run.result["comment"].startswith(f"Thanks @{issue['user']['login']}")


async def test_hello_python_ignores_other_events(ghapplets_event, ghapplets_invoke):
    run = await ghapplets_invoke(APPLETS / "hello-python", ghapplets_event("github", "push"))
    assert run.ok and run.result is None


async def test_hello_shell_reports_the_type(ghapplets_event, ghapplets_invoke):
    event = ghapplets_event("github", "push")
    run = await ghapplets_invoke(APPLETS / "hello-shell", event)
    assert run.ok, run.outcome
    assert run.result["type"] == "com.github.push"
    assert run.result["bytes"] > 100
