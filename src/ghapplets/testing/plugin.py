"""The pytest plugin (entry point ``ghapplets``): fixtures for testing applets and projects.

- ``ghapplets_event(kind, event, variant=None, payload=None)``: a realistic CloudEvent.
- ``ghapplets_signed_request(kind, event, ...)``: ``(source, SignedRequest)`` as the vendor sends.
- ``ghapplets_invoke(applet, event, secrets=..., http=...)``: run an applet, get ``InvokeResult``.
- ``ghapplets_gateway(project_dir)``: async context manager with the whole platform in-process.
- ``ghapplets_blueprint``: a :class:`~ghapplets.testing.blueprints.BlueprintHarness` that runs
  blueprints in process on a virtual clock, with mocked applets, actions and HTTP, injected
  events and crash injection (paths relative to the pytest root folder).
- ``ghapplets_fakes``: the vendor fakes (GitHub, Jira Cloud and Data Center, ServiceNow,
  Splunk HEC) served on free local ports for the test session, reset before each test; a
  :class:`~ghapplets.fakes.runner.FakeSet` (``.github``, ``.jira``, ``.jira_dc``,
  ``.servicenow``, ``.splunk``, each with ``base_url``). Override the session fixture
  ``ghapplets_fakes_config`` to configure them.

What a test exercised goes into its report, so a JUnit XML report (``pytest --junitxml``) says
it for each test case as ``<property>`` elements: ``ghapplets.applet`` (each applet
``ghapplets_invoke`` ran) with ``ghapplets.event`` (the event's type), and
``ghapplets.blueprint`` (``namespace/name version`` of each blueprint ``ghapplets_blueprint``
ran). They are the test item's ``user_properties``, which every reporter sees.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ghapplets.testing.events import fixture_event, signed_request
from ghapplets.testing.gateway import GatewayClient, running_gateway
from ghapplets.testing.invoke import InvokeResult, invoke, load_applet

if TYPE_CHECKING:  # imported when the fixtures are used, so the plugin loads fast
    from ghapplets.applets.model import AppletSpec
    from ghapplets.blueprints.loader import Blueprint
    from ghapplets.events import CloudEvent
    from ghapplets.fakes.config import FakesConfig
    from ghapplets.fakes.runner import FakeSet
    from ghapplets.testing.blueprints import BlueprintHarness


@pytest.fixture
def ghapplets_event() -> Callable[..., Any]:
    return fixture_event


@pytest.fixture
def ghapplets_signed_request() -> Callable[..., Any]:
    return signed_request


class PropertyName(StrEnum):
    """The properties the fixtures record on the test that uses them (``user_properties``,
    ``<property>`` elements of a JUnit XML report)."""

    APPLET = "ghapplets.applet"
    EVENT = "ghapplets.event"
    BLUEPRINT = "ghapplets.blueprint"


def record(item: pytest.Item, name: PropertyName, value: str) -> None:
    """Note ``name=value`` in ``item``'s report, once however often it is recorded."""
    if (str(name), value) not in item.user_properties:
        item.user_properties.append((str(name), value))


@pytest.fixture
def ghapplets_invoke(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """:func:`~ghapplets.testing.invoke.invoke`, recording the applet and event type it runs."""

    async def invoke_recorded(
        applet: Path | str | AppletSpec, event: CloudEvent, **options: Any
    ) -> InvokeResult:
        from ghapplets.applets.model import AppletSpec

        spec = applet if isinstance(applet, AppletSpec) else load_applet(Path(applet))
        record(request.node, PropertyName.APPLET, spec.name)
        record(request.node, PropertyName.EVENT, event.type)
        return await invoke(spec, event, **options)

    return invoke_recorded


@pytest.fixture
def ghapplets_gateway(
    tmp_path: Path,
) -> Callable[[Path], contextlib.AbstractAsyncContextManager[GatewayClient]]:
    counter = iter(range(1_000_000))

    def factory(project: Path) -> contextlib.AbstractAsyncContextManager[GatewayClient]:
        return running_gateway(project, tmp_path / f"ghapplets-data-{next(counter)}")

    return factory


@pytest.fixture
def ghapplets_blueprint(request: pytest.FixtureRequest) -> BlueprintHarness:
    from ghapplets.testing.blueprints import BlueprintHarness

    def ran(blueprint: Blueprint) -> None:
        name = f"{blueprint.namespace}/{blueprint.name} {blueprint.version}"
        record(request.node, PropertyName.BLUEPRINT, name)

    return BlueprintHarness(Path(request.config.rootpath), on_run=ran)


@pytest.fixture(scope="session")
def ghapplets_fakes_config() -> FakesConfig:
    """The fakes' configuration (the defaults of ``docs/fakes.md``); override it in a
    ``conftest.py`` to change apps, users, tokens or webhook targets."""
    from ghapplets.fakes.config import FakesConfig

    return FakesConfig()


@pytest.fixture(scope="session")
def ghapplets_fakes_session(ghapplets_fakes_config: FakesConfig) -> Iterator[FakeSet]:
    """The fakes served once for the whole test session (see ``ghapplets_fakes``)."""
    from ghapplets.fakes.runner import serve_fakes

    with serve_fakes(ghapplets_fakes_config) as fakes:
        yield fakes


@pytest.fixture
def ghapplets_fakes(ghapplets_fakes_session: FakeSet) -> FakeSet:
    """The running fakes, back to their configuration: no state, requests, faults or clock
    offset left by an earlier test."""
    ghapplets_fakes_session.reset()
    return ghapplets_fakes_session
