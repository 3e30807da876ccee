"""``ghapplets actions``: the catalog, as a table and as JSON Lines with each input schema."""

from __future__ import annotations

import json

import jsonschema

from ghapplets.connectors.catalog import catalog
from tests.cli.helpers import cli


def test_json_lists_every_action_with_a_valid_input_schema() -> None:
    result = cli("actions", "--json")
    assert result.code == 0, result
    rows = [json.loads(line) for line in result.out.splitlines()]
    assert [r["name"] for r in rows] == [a.name for a in catalog()]
    assert "splunk.send_event" in {r["name"] for r in rows}
    for row in rows:
        assert row["connector"] == row["name"].split(".")[0]
        assert row["summary"] and row["output"]
        jsonschema.Draft202012Validator.check_schema(row["input"])
        assert "connector" in row["input"]["properties"]  # every action can name its connector


def test_the_table_marks_required_input() -> None:
    result = cli("actions")
    assert result.code == 0, result
    assert "splunk.send_event" in result.out and "event*" in result.out
