"""jq paths and comparisons as JSONPath and Choice rules; what is more than that is refused."""

from __future__ import annotations

import pytest

from ghapplets.exceptions import NotExportable
from ghapplets.fission.conditions import choice_rule, json_path


@pytest.mark.parametrize(
    ("jq", "path"),
    [
        (".", "$"),
        (".a", "$.a"),
        ("${ .pr.number }", "$.pr.number"),
        (".items[0]", "$.items[0]"),
        (".items[-1].id", "$.items[-1].id"),
        ('.["x-y"].z', "$['x-y'].z"),
        ("$item", "$"),
        ("$item.body", "$.body"),
    ],
)
def test_paths(jq: str, path: str) -> None:
    assert json_path(jq, variable="item") == path


@pytest.mark.parametrize(
    "jq", [".a + 1", ".a | length", "..a", "$other.a", ".a[]", '.["it\'s"]', "{a: .b}"]
)
def test_what_is_no_path_is_refused(jq: str) -> None:
    with pytest.raises(NotExportable):
        json_path(jq, variable="item")


def test_a_variable_is_a_path_only_where_it_is_allowed() -> None:
    with pytest.raises(NotExportable):
        json_path("$item")


@pytest.mark.parametrize(
    ("jq", "rule"),
    [
        ('.state == "open"', {"variable": "$.state", "stringEquals": "open"}),
        ("${ .count > 3 }", {"variable": "$.count", "numericGreaterThan": 3}),
        ("3 < .n", {"variable": "$.n", "numericGreaterThan": 3}),
        (".n < 2.5", {"variable": "$.n", "numericLessThan": "2.5"}),
        (".n == 1e3", {"variable": "$.n", "numericEquals": 1000}),
        (".draft == false", {"variable": "$.draft", "booleanEquals": False}),
        ('.x != "y"', {"not": {"variable": "$.x", "stringEquals": "y"}}),
        ("(.a == 1)", {"variable": "$.a", "numericEquals": 1}),
        (
            '.a == 1 and .b == "x"',
            {
                "and": [
                    {"variable": "$.a", "numericEquals": 1},
                    {"variable": "$.b", "stringEquals": "x"},
                ]
            },
        ),
        (
            ".a == 1 or .b > -2",
            {
                "or": [
                    {"variable": "$.a", "numericEquals": 1},
                    {"variable": "$.b", "numericGreaterThan": -2},
                ]
            },
        ),
    ],
)
def test_comparisons(jq: str, rule: dict[str, object]) -> None:
    assert choice_rule(jq) == rule


@pytest.mark.parametrize(
    ("jq", "why"),
    [
        (".n >= 3", "no >="),
        (".a == null", "missing key"),
        (".a", "not a path compared with a literal"),
        (".a == .b", "a path with a literal"),
        ('.n > "x"', "orders numbers only"),
        (".a == 1 and .b == 2 or .c == 3", "mixes and with or"),
        (".a != 1 and .b == 2", "nested not"),
        ("(.a == 1) and (.b == 2)", "parentheses"),
        ('.a | test("x")', "more than a comparison"),
        ("not .a", "parentheses and not"),
    ],
)
def test_what_a_choice_cannot_say_is_refused(jq: str, why: str) -> None:
    with pytest.raises(NotExportable, match=why):
        choice_rule(jq)
