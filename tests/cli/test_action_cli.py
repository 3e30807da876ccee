"""``ghapplets action`` outside a job: the project's connectors, against the HEC fake."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ghapplets.fakes.config import HecToken
from tests.cli.helpers import cli
from tests.conftest import ProjectBuilder


@pytest.fixture
def root(tmp_path: Path, ghapplets_fakes: Any) -> Path:
    builder = ProjectBuilder(tmp_path / "p")
    builder.extra = (
        "connectors:\n  splunk:\n    kind: splunk\n"
        f"    url: {ghapplets_fakes.splunk.base_url}\n    token: ${{env:HEC_TOKEN}}\n"
    )
    return builder.build()


ENV = {"HEC_TOKEN": HecToken().token}


def test_the_output_is_the_vendors_json(root: Path, ghapplets_fakes: Any) -> None:
    result = cli(
        "action", "splunk.send_event", "--input", '{"event": {"n": 1}}', "-p", root, env=ENV
    )
    assert result.code == 0, result
    assert json.loads(result.out) == {"text": "Success", "code": 0}
    assert [e.event for e in ghapplets_fakes.splunk.events] == [{"n": 1}]


def test_input_from_a_file_and_from_stdin(root: Path, ghapplets_fakes: Any, tmp_path: Path) -> None:
    (tmp_path / "in.json").write_text('{"event": "from a file"}')
    assert (
        cli(
            "action", "splunk.send_event", "-i", f"@{tmp_path / 'in.json'}", "-p", root, env=ENV
        ).code
        == 0
    )
    piped = cli(
        "action", "splunk.send_event", "-i", "-", "-p", root, env=ENV, input='{"event": "piped"}'
    )
    assert piped.code == 0, piped
    assert [e.event for e in ghapplets_fakes.splunk.events] == ["from a file", "piped"]


def test_exit_codes(root: Path, ghapplets_fakes: Any) -> None:
    unreadable = cli("action", "splunk.send_event", "-i", "{not json", "-p", root, env=ENV)
    assert unreadable.code == 2 and "--input is not JSON" in unreadable.err
    invalid = cli("action", "splunk.send_event", "-i", '{"index": "x"}', "-p", root, env=ENV)
    assert invalid.code == 1 and "ActionInputInvalid" in invalid.err
    assert ghapplets_fakes.splunk.requests() == []
    ghapplets_fakes.splunk.inject(503)
    busy = cli("action", "splunk.send_event", "-i", '{"event": 1}', "-p", root, env=ENV)
    assert busy.code == 75 and "Server is busy" in busy.err
    refused = cli(
        "action",
        "splunk.send_event",
        "-i",
        '{"event": 1}',
        "-p",
        root,
        env={"HEC_TOKEN": "bad-token-value"},
    )
    assert refused.code == 1 and "ActionFailed" in refused.err
    assert "bad-token-value" not in refused.err + refused.out
    unset = cli("action", "splunk.send_event", "-i", '{"event": 1}', "-p", root, env={})
    assert unset.code == 3 and "HEC_TOKEN is not set" in unset.err
