"""The pytest plugin (entry point ``ghapplets``): fixtures for testing applets and projects.

- ``ghapplets_event(kind, event, variant=None, payload=None)``: a realistic CloudEvent.
- ``ghapplets_signed_request(kind, event, ...)``: ``(source, SignedRequest)`` as the vendor sends.
- ``ghapplets_invoke(applet, event, secrets=..., http=...)``: run an applet, get ``InvokeResult``.
- ``ghapplets_gateway(project_dir)``: async context manager with the whole platform in-process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ghapplets.testing.events import fixture_event, signed_request
from ghapplets.testing.gateway import GatewayClient, running_gateway
from ghapplets.testing.invoke import invoke


@pytest.fixture
def ghapplets_event() -> Callable[..., Any]:
    return fixture_event


@pytest.fixture
def ghapplets_signed_request() -> Callable[..., Any]:
    return signed_request


@pytest.fixture
def ghapplets_invoke() -> Callable[..., Any]:
    return invoke


@pytest.fixture
def ghapplets_gateway(
    tmp_path: Path,
) -> Callable[[Path], contextlib.AbstractAsyncContextManager[GatewayClient]]:
    counter = iter(range(1_000_000))

    def factory(project: Path) -> contextlib.AbstractAsyncContextManager[GatewayClient]:
        return running_gateway(project, tmp_path / f"ghapplets-data-{next(counter)}")

    return factory
