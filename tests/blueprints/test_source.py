"""Reading blueprint files: YAML 1.2 and JSON into plain data, positions, and what is refused."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from ghapplets.blueprints.source import (
    MAX_ALIAS_VALUES,
    MAX_BYTES,
    MAX_DEPTH,
    parse_source,
    read_source,
)
from ghapplets.exceptions import BlueprintInvalid, ConfigError

PLAIN = {dict, list, str, int, float, bool, type(None)}


def parse(text: str, *, json_syntax: bool = False) -> Any:
    return parse_source(textwrap.dedent(text), "bp.yaml", json_syntax=json_syntax)


def refused(text: str, *, json_syntax: bool = False) -> list[str]:
    with pytest.raises(BlueprintInvalid) as exc:
        parse(text, json_syntax=json_syntax)
    return [str(p) for p in exc.value.problems]


def kinds(value: Any) -> set[type]:
    found = {type(value)}
    if isinstance(value, dict):
        for key, item in value.items():
            found |= {type(key)} | kinds(item)
    elif isinstance(value, list):
        for item in value:
            found |= kinds(item)
    return found


def test_yaml_1_2_scalars_keep_their_meaning() -> None:
    data, _ = parse(
        """\
        on: yes
        off: no
        y: n
        flags: [on, off, yes, no, y, n, true, false, True, FALSE]
        nothing: ~
        empty:
        hex: 0x1F
        octal: 0o17
        float: 1.5e3
        when: 2024-07-26T16:59:57Z
        version: 1.0.3
        """
    )
    assert data == {
        "on": "yes",
        "off": "no",
        "y": "n",
        "flags": ["on", "off", "yes", "no", "y", "n", True, False, True, False],
        "nothing": None,
        "empty": None,
        "hex": 31,
        "octal": 15,
        "float": 1500.0,
        "when": "2024-07-26T16:59:57Z",  # the 1.2 core schema has no timestamps
        "version": "1.0.3",
    }
    assert kinds(data) <= PLAIN  # no ruamel type leaks out
    assert type(data["hex"]) is int
    assert type(data["flags"][6]) is bool


def test_keys_and_values_have_their_positions() -> None:
    _, locator = parse(
        """\
        document:
          name: x
        do:
          - first:
              set:
                a: ${ .b }
          -   second: {wait: PT1S}
        """
    )
    assert locator.file == "bp.yaml"
    assert locator.marks[("document",)] == (1, 1)
    assert locator.marks[("document", "name")] == (2, 3)
    assert locator.values[("document", "name")] == (2, 9)
    assert locator.marks[("do", 0)] == (4, 5)
    assert locator.marks[("do", 0, "first", "set", "a")] == (6, 9)
    assert locator.values[("do", 0, "first", "set", "a")] == (6, 12)
    assert locator.marks[("do", 1, "second", "wait")] == (7, 16)
    assert locator.values[("do", 1, "second", "wait")] == (7, 22)
    value = locator.value_problem(("do", 0, "first", "set", "a"), "bad")
    assert str(value) == "bp.yaml:6:12: do.0.first.set.a: bad"
    key = locator.problem(("do", 0, "first", "set", "a"), "bad")
    assert str(key) == "bp.yaml:6:9: do.0.first.set.a: bad"
    # a value without a position of its own falls back to its key, then to its ancestors
    assert str(locator.value_problem(("do", 0, "first", "nope"), "x")).startswith("bp.yaml:4:5:")


def test_duplicate_keys_are_refused_at_the_second() -> None:
    assert refused(
        """\
        document: {}
        do:
          - a:
              set: {x: 1}
              set: {x: 2}
        """
    ) == ["bp.yaml:5:7: do.0.a: duplicate key 'set' (first at line 4, column 7)"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a:\n  1: one\n", "bp.yaml:2:3: a: a key must be a string, not '1' (quote it: '1')"),
        ("a:\n  true: x\n", "bp.yaml:2:3: a: a key must be a string, not 'true'"),
        ("a:\n  ~: x\n", "bp.yaml:2:3: a: a key must be a string, not '~'"),
        ("? [a, b]\n: x\n", "bp.yaml:1:3: a key must be a string, not a collection"),
    ],
)
def test_keys_must_be_strings(text: str, expected: str) -> None:
    [problem] = refused(text)
    assert problem.startswith(expected)


def test_aliases_are_expanded_within_limits() -> None:
    data, locator = parse(
        """\
        base: &retry {delay: {seconds: 3}}
        again: *retry
        """
    )
    assert data["again"] == data["base"] == {"delay": {"seconds": 3}}
    assert data["again"] is not data["base"]  # plain data, no shared structure
    assert locator.marks[("again",)] == (2, 1)


def test_an_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    [problem] = refused("\n".join(lines))
    assert f"aliases expand to more than {MAX_ALIAS_VALUES} values" in problem
    # a0 holds 11 values, a1 111, a2 1111: a3's 8th alias is the one that goes over
    assert problem.startswith("bp.yaml:4:45: ")


def test_an_alias_that_holds_itself_is_refused() -> None:
    [problem] = refused("a: &a [*a]\n")
    assert problem == f"bp.yaml:1:4: nested more than {MAX_DEPTH} levels deep"


def test_merge_keys_are_refused() -> None:
    assert refused("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n") == [
        "bp.yaml:3:3: other: merge keys ('<<') are not YAML 1.2: write the keys out"
    ]


def test_nesting_has_a_limit() -> None:
    data, _ = parse("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    assert isinstance(data, list)
    [problem] = refused("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert problem == f"bp.yaml:1:{MAX_DEPTH + 1}: nested more than {MAX_DEPTH} levels deep"


def test_size_has_a_limit(tmp_path: Path) -> None:
    text = "a: " + "x" * MAX_BYTES + "\n"
    assert refused(text) == [
        f"bp.yaml:1:1: file too large: {len(text)} bytes (at most {MAX_BYTES})"
    ]
    big = tmp_path / "big.yaml"
    big.write_text(text)
    with pytest.raises(BlueprintInvalid) as exc:
        read_source(big)
    assert [str(p) for p in exc.value.problems] == [
        f"{big}:1:1: file too large: more than {MAX_BYTES} bytes"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: !!binary aGk=\n", "bp.yaml:1:4: a: unsupported tag 'tag:yaml.org,2002:binary'"),
        ("a: !secret token\n", "bp.yaml:1:4: a: unsupported tag '!secret'"),
        ("a: !!set {x}\n", "bp.yaml:1:4: a: unsupported tag 'tag:yaml.org,2002:set'"),
        ("a: .nan\n", "bp.yaml:1:4: a: '.nan' is not a number JSON can hold"),
        ("a: [-.inf]\n", "bp.yaml:1:5: a.0: '-.inf' is not a number JSON can hold"),
        ("a: 9223372036854775808\n", "bp.yaml:1:4: a: integer out of range (more than 64 bits)"),
        ("%YAML 1.1\n---\na: yes\n", "bp.yaml:2:1: %YAML 1.1: a blueprint is YAML 1.2"),
        ("a: 1\n---\nb: 2\n", "bp.yaml:2:1: invalid YAML: but found another document"),
        ("a: [1, 2\n", "bp.yaml:2:1: invalid YAML: expected ',' or ']'"),
        ("a: *nowhere\n", "bp.yaml:1:4: invalid YAML: found undefined alias 'nowhere'"),
    ],
)
def test_what_yaml_text_is_refused(text: str, expected: str) -> None:
    [problem] = refused(text)
    assert problem.startswith(expected)


def test_the_largest_integer_and_a_yaml_1_2_directive_are_fine() -> None:
    data, _ = parse("%YAML 1.2\n---\na: 9223372036854775807\nb: -9223372036854775808\n")
    assert data == {"a": (1 << 63) - 1, "b": -(1 << 63)}


def test_an_empty_file_is_none() -> None:
    assert parse("# nothing here\n")[0] is None


def test_json_is_read_strictly_with_positions() -> None:
    text = '{\n\t"document": {"name": "x"},\n  "tags": ["a", "\\ud83d\\ude00"],\n  "n": 1e3\n}'
    data, locator = parse(text, json_syntax=True)
    assert data == {"document": {"name": "x"}, "tags": ["a", "\U0001f600"], "n": 1000.0}
    assert kinds(data) <= PLAIN
    assert locator.marks[("document", "name")] == (2, 15)
    assert locator.values[("tags", 1)] == (3, 17)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": [1, 2,]}', "bp.yaml:1:13: invalid JSON: Expecting value"),
        ("{a: 1}", "bp.yaml:1:2: invalid JSON: Expecting property name enclosed in double quotes"),
        ('{"a": NaN}', "bp.yaml:1:1: invalid JSON: NaN is not JSON"),
        ('{\n "a": 1,\n "a": 2\n}', "bp.yaml:3:2: duplicate key 'a' (first at line 2, column 2)"),
        ("{}\n{}", "bp.yaml:2:1: invalid JSON: Extra data"),
    ],
)
def test_what_json_text_is_refused(text: str, expected: str) -> None:
    assert refused(text, json_syntax=True) == [expected]


def test_yaml_syntax_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "flow.json"
    path.write_text("a: 1\n")
    with pytest.raises(BlueprintInvalid) as exc:
        read_source(path)
    assert str(exc.value.problems[0]) == f"{path}:1:1: invalid JSON: Expecting value"


def test_files_are_read_by_their_suffix(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("\ufeffon: yes\n")  # a byte order mark is skipped
    (tmp_path / "b.JSON").write_text('{"on": "yes"}')
    assert read_source(tmp_path / "a.yaml")[0] == {"on": "yes"}
    assert read_source(tmp_path / "b.JSON")[0] == {"on": "yes"}


def test_unreadable_files_are_located_problems(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(BlueprintInvalid) as exc:
        read_source(missing)
    assert [str(p) for p in exc.value.problems] == [f"{missing}:1:1: file not found"]
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"a: 1\nb: caf\xe9\n")
    with pytest.raises(ConfigError) as error:  # BlueprintInvalid is a ConfigError
        read_source(latin)
    assert str(error.value.problems[0]) == f"{latin}:2:1: not UTF-8 text: invalid continuation byte"
    with pytest.raises(BlueprintInvalid) as exc:
        read_source(tmp_path)
    assert str(exc.value.problems[0]).startswith(f"{tmp_path}:1:1: cannot read the file")
