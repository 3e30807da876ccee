"""Helpers for the engine tests: a harness per test, and blueprints written as short YAML."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ghapplets.testing.blueprints import BlueprintHarness

HEADER = """\
document:
  dsl: '1.0.0'
  namespace: test
  name: {name}
  version: '0.1.0'
"""


def blueprint(body: str, name: str = "under-test") -> str:
    """A whole blueprint: the document header, then ``body`` (dedented YAML)."""
    return HEADER.format(name=name) + textwrap.dedent(body).strip() + "\n"


@pytest.fixture
def harness(tmp_path: Path) -> BlueprintHarness:
    return BlueprintHarness(tmp_path)
