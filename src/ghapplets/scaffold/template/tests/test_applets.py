"""Tests for this project's applets, with the Ghapplets pytest plugin.

Plain pytest runs them (no async plugin needed): ``ghapplets_invoke`` returns a coroutine, which
``asyncio.run`` drives. Run them with ``pytest tests``.
"""

import asyncio
from pathlib import Path

APPLETS = Path(__file__).parent.parent / "applets"


def test_hello_python_thanks_the_author(ghapplets_event, ghapplets_invoke):
    event = ghapplets_event("github", "issues.opened")
    run = asyncio.run(ghapplets_invoke(APPLETS / "hello-python", event))
    assert run.ok, run.outcome
    issue = event.data["issue"]
    assert run.result["comment"].startswith(f"Thanks @{issue['user']['login']}")


def test_hello_python_has_no_handler_for_pushes(ghapplets_event, ghapplets_invoke):
    # the gateway only routes issues.opened to it; any other event is a permanent NoHandler error
    event = ghapplets_event("github", "push")
    run = asyncio.run(ghapplets_invoke(APPLETS / "hello-python", event))
    assert not run.ok and not run.retryable
    assert run.error_type == "NoHandler"


def test_hello_shell_reports_the_type(ghapplets_event, ghapplets_invoke):
    event = ghapplets_event("github", "push")
    run = asyncio.run(ghapplets_invoke(APPLETS / "hello-shell", event))
    assert run.ok, run.outcome
    assert run.result["type"] == "com.github.push"
    assert run.result["bytes"] > 100
