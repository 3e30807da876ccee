"""Every action of the catalog against its vendor's fake, four ways: it works; wrong
credentials are a permanent ActionFailed; a 429 with Retry-After is a retryable
ActionUnavailable carrying that delay; a 5xx is retryable, and the call made again works.

A new action must be added to INPUTS: the first test fails until it is."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import TypeAdapter

from ghapplets.connectors.catalog import catalog
from ghapplets.connectors.config import ConnectorConfig, ConnectorKind
from ghapplets.connectors.registry import Connectors
from ghapplets.exceptions import ActionFailed, ActionUnavailable
from ghapplets.fakes.config import generate_app_key
from ghapplets.secrets.refs import Lookup
from ghapplets.secrets.scopes import Reader

R = {"owner": "octo-org", "repo": "hello-world"}
SHA = "a" * 40
Setup = Callable[[Any], dict[str, Any]]  # the fakes -> the action's input, state made ready


def _deployment(fakes: Any) -> dict[str, Any]:
    github = fakes.github
    with github.lock:  # a deployment made earlier (what a status refers to)
        github.repo("octo-org/hello-world").deployments.append(
            {"id": 77, "url": "https://api.github.com/deployments/77", "environment": "staging"}
        )
    return {**R, "deployment_id": 77, "state": "success"}


def _two_jira_issues(fakes: Any) -> dict[str, Any]:
    fakes.jira.add_issue("PROJ", "Blocker")
    fakes.jira.add_issue("PROJ", "Blocked")
    return {"type": "Blocks", "inward": "PROJ-2", "outward": "PROJ-1"}


def _jira_issue(extra: dict[str, Any]) -> Setup:
    def setup(fakes: Any) -> dict[str, Any]:
        fakes.jira.add_issue("PROJ", "Existing")
        return {"issue": "PROJ-1", **extra}

    return setup


def _incident(extra: dict[str, Any]) -> Setup:
    def setup(fakes: Any) -> dict[str, Any]:
        sys_id = fakes.servicenow.insert("incident", {"short_description": "x"})["sys_id"]
        return {"table": "incident", "sys_id": sys_id, **extra}

    return setup


def _plain(value: dict[str, Any]) -> Setup:
    return lambda fakes: dict(value)


INPUTS: dict[str, Setup] = {
    "github.create_comment": _plain({**R, "issue_number": 1, "body": "hi"}),
    "github.add_labels": _plain({**R, "issue_number": 1, "labels": ["bug"]}),
    "github.create_commit_status": _plain(
        {**R, "sha": SHA, "state": "success", "context": "ci/ghapplets"}
    ),
    "github.create_check_run": _plain({**R, "name": "lint", "head_sha": SHA}),
    "github.create_deployment": _plain({**R, "ref": "main", "environment": "staging"}),
    "github.create_deployment_status": _deployment,
    "github.repository_dispatch": _plain({**R, "event_type": "deploy"}),
    "github.request": _plain({"method": "GET", "path": "/repos/octo-org/hello-world/issues/1"}),
    "jira.create_issue": _plain({"project": "PROJ", "issue_type": "Task", "summary": "s"}),
    "jira.add_comment": _jira_issue({"body": "hi"}),
    "jira.transition_issue": _jira_issue({"transition": "Done"}),
    "jira.search": _plain({"jql": "project = PROJ"}),
    "jira.link_issues": _two_jira_issues,
    "servicenow.create_record": _plain({"table": "incident", "fields": {"urgency": 1}}),
    "servicenow.update_record": _incident({"fields": {"urgency": 2}}),
    "servicenow.get_record": _incident({}),
    "servicenow.query": _plain({"table": "incident", "query": "active=true"}),
    "servicenow.create_change_request": _plain({"fields": {"short_description": "c"}}),
    "splunk.send_event": _plain({"event": {"hello": "world"}}),
}
ACTIONS = sorted(INPUTS)


def no_secrets(reader: Reader) -> Lookup:
    async def lookup(name: str) -> str:
        raise AssertionError(f"{reader} read {name}")

    return lookup


def settings(fakes: Any, *, wrong: bool) -> dict[str, Any]:
    """The fakes' connectors, with wrong credentials when ``wrong``."""
    found = {k: v for k, v in fakes.connectors().items() if k != "jira-dc"}
    if wrong:
        found["github"]["private_key"] = generate_app_key()[0]  # not the App's key
        found["jira"]["token"] = "not-the-api-token"
        found["servicenow"]["password"] = "not-the-password"
        found["splunk"]["token"] = "00000000-0000-0000-0000-000000000000"
    return found


@pytest.fixture
async def opened(ghapplets_fakes: Any) -> AsyncIterator[Callable[[bool], Any]]:
    made: list[Connectors] = []

    async def open_(wrong: bool = False) -> Connectors:
        adapter: TypeAdapter[ConnectorConfig] = TypeAdapter(ConnectorConfig)
        configs = {
            name: adapter.validate_python(value)
            for name, value in settings(ghapplets_fakes, wrong=wrong).items()
        }
        connectors = await Connectors.open(configs, no_secrets)
        made.append(connectors)
        return connectors

    yield open_
    for connectors in made:
        await connectors.aclose()


def fake_of(fakes: Any, name: str) -> Any:
    kind = ConnectorKind(name.split(".")[0])
    return {
        ConnectorKind.GITHUB: fakes.github,
        ConnectorKind.JIRA: fakes.jira,
        ConnectorKind.SERVICENOW: fakes.servicenow,
        ConnectorKind.SPLUNK: fakes.splunk,
    }[kind]


def test_every_action_of_the_catalog_is_in_this_matrix() -> None:
    assert sorted(a.name for a in catalog()) == ACTIONS


@pytest.mark.parametrize("name", ACTIONS)
async def test_the_action_works(name: str, ghapplets_fakes: Any, opened: Any) -> None:
    data = INPUTS[name](ghapplets_fakes)
    connectors = await opened()
    await connectors.act(name, data)
    answered = [r.status for r in fake_of(ghapplets_fakes, name).requests()]
    assert answered and all(s is not None and s < 300 for s in answered), answered


@pytest.mark.parametrize("name", ACTIONS)
async def test_wrong_credentials_are_permanent(
    name: str, ghapplets_fakes: Any, opened: Any
) -> None:
    data = INPUTS[name](ghapplets_fakes)
    connectors = await opened(wrong=True)
    with pytest.raises(ActionFailed) as failed:
        await connectors.act(name, data)
    assert failed.value.status in (401, 403) and not failed.value.retryable
    assert "not-the-" not in failed.value.message and "0000-0000" not in failed.value.message


@pytest.mark.parametrize("name", ACTIONS)
async def test_a_429_is_retryable_after_the_vendors_delay(
    name: str, ghapplets_fakes: Any, opened: Any
) -> None:
    data = INPUTS[name](ghapplets_fakes)
    connectors = await opened()
    fake_of(ghapplets_fakes, name).inject(429, retry_after=17, times=None)
    with pytest.raises(ActionUnavailable) as limited:
        await connectors.act(name, data)
    assert limited.value.retryable and limited.value.status == 429
    assert limited.value.retry_after == 17.0


@pytest.mark.parametrize("name", ACTIONS)
async def test_a_5xx_is_retryable_and_the_next_try_works(
    name: str, ghapplets_fakes: Any, opened: Any
) -> None:
    data = INPUTS[name](ghapplets_fakes)
    connectors = await opened()
    fake = fake_of(ghapplets_fakes, name)
    fake.inject(503, times=1)
    with pytest.raises(ActionUnavailable) as unavailable:
        await connectors.act(name, data)
    assert unavailable.value.retryable and unavailable.value.status == 503
    await connectors.act(name, data)  # the job's next attempt
