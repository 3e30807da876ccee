"""Reading a blueprint file: YAML 1.2 or JSON into plain data, with each value's line and column.

This module owns the step from bytes to data. :func:`read_source` and :func:`parse_source` return
JSON-compatible Python data (``dict``, ``list``, ``str``, ``int``, ``float``, ``bool``, ``None``;
no ruamel types) and a :class:`SourceLocator`, a :class:`~ghapplets.config.located.Locator` that
knows where each key (``marks``) and each value (``values``) starts.

YAML is read as YAML 1.2 (ruamel.yaml): ``on``, ``yes``, ``no``, ``off``, ``y`` are strings and
only ``true``/``false`` are booleans; a ``%YAML 1.1`` directive is refused rather than followed.
A timestamp-looking scalar stays a string (the 1.2 core schema has no timestamps). Each of these
is refused with a located problem: a file over :data:`MAX_BYTES`, text that is not UTF-8, more
than one document, nesting deeper than :data:`MAX_DEPTH`, a duplicate key, a key that is not a
string, a merge key (``<<``), a tag other than the JSON ones, a number JSON cannot hold (``.nan``,
``.inf``, an integer beyond 64 bits), and aliases that expand to more than :data:`MAX_ALIAS_VALUES`
values (a "billion laughs"). JSON files are parsed strictly (``json``), and ruamel.yaml only
supplies the positions (JSON is YAML 1.2).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    ScalarEvent,
)
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ghapplets.config.located import Loc, Locator, Problem
from ghapplets.exceptions import BlueprintInvalid

MAX_BYTES = 1 << 20  # 1 MiB: a blueprint is a program, not a data set
MAX_DEPTH = 100  # nested mappings and lists
MAX_ALIAS_VALUES = 10_000  # values that aliases may add by repeating what an anchor holds
_INT_RANGE = (-(1 << 63), (1 << 63) - 1)  # what a JSON number can carry to every reader

_YAML = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_YAML}{t}" for t in ("str", "int", "float", "bool", "null", "timestamp")}


@dataclass
class SourceLocator(Locator):
    """A :class:`Locator` that also knows where each value starts (``values``), so a problem
    about a value (an expression, a name it refers to) points at the value itself."""

    values: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def value_problem(self, loc: Loc, message: str) -> Problem:
        """A problem at the value found at ``loc`` (else at its key, else its nearest
        ancestor)."""
        mark = self.values.get(tuple(loc))
        if mark is None:
            return self.problem(loc, message)
        return Problem(self.file, mark[0], mark[1], ".".join(str(p) for p in loc), message)


def _fail(file: str, line: int, column: int, message: str, loc: Loc = ()) -> BlueprintInvalid:
    return BlueprintInvalid([Problem(file, line, column, ".".join(map(str, loc)), message)])


def _at(node: Node | Any) -> tuple[int, int]:
    mark = node.start_mark
    return mark.line + 1, mark.column + 1


class _Converter:
    """Turns a composed YAML node tree into plain data, filling a :class:`SourceLocator`."""

    def __init__(self, yaml: YAML, locator: SourceLocator) -> None:
        self.constructor = yaml.constructor
        self.locator = locator

    def fail(self, node: Node, message: str, loc: Loc) -> BlueprintInvalid:
        return _fail(self.locator.file, *_at(node), message, loc)

    def convert(self, node: Node, loc: Loc, depth: int) -> Any:
        if depth > MAX_DEPTH:  # an alias that holds itself, too: at the node, no long key path
            raise self.fail(node, f"nested more than {MAX_DEPTH} levels deep", ())
        if isinstance(node, MappingNode):
            return self.mapping(node, loc, depth)
        if isinstance(node, SequenceNode):
            if node.tag != f"{_YAML}seq":
                raise self.fail(node, f"unsupported tag {node.tag!r}: a list has no tag", loc)
            out: list[Any] = []
            for i, item in enumerate(node.value):
                self.locator.marks[(*loc, i)] = _at(item)
                self.locator.values[(*loc, i)] = _at(item)
                out.append(self.convert(item, (*loc, i), depth + 1))
            return out
        return self.scalar(node, loc)

    def mapping(self, node: MappingNode, loc: Loc, depth: int) -> dict[str, Any]:
        if node.tag != f"{_YAML}map":
            raise self.fail(node, f"unsupported tag {node.tag!r}: a mapping has no tag", loc)
        out: dict[str, Any] = {}
        keys: dict[str, tuple[int, int]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == f"{_YAML}merge":
                message = "merge keys ('<<') are not YAML 1.2: write the keys out"
                raise self.fail(key_node, message, loc)
            if not isinstance(key_node, ScalarNode):
                raise self.fail(key_node, "a key must be a string, not a collection", loc)
            if key_node.tag != f"{_YAML}str":
                shown = key_node.value
                raise self.fail(
                    key_node, f"a key must be a string, not {shown!r} (quote it: '{shown}')", loc
                )
            key = str(key_node.value)
            if key in keys:
                line, col = keys[key]
                raise self.fail(
                    key_node, f"duplicate key {key!r} (first at line {line}, column {col})", loc
                )
            keys[key] = _at(key_node)
            sub = (*loc, key)
            self.locator.marks[sub] = _at(key_node)
            self.locator.values[sub] = _at(value_node)
            out[key] = self.convert(value_node, sub, depth + 1)
        return out

    def scalar(self, node: Node, loc: Loc) -> Any:
        tag = node.tag
        if tag not in _SCALAR_TAGS:
            raise self.fail(
                node, f"unsupported tag {tag!r}: only strings, numbers, booleans and null", loc
            )
        if tag in (f"{_YAML}str", f"{_YAML}timestamp"):
            return str(node.value)  # YAML 1.2 (core) has no timestamps: the text as written
        try:
            value = self.constructor.construct_object(node, deep=True)
        except (YAMLError, ValueError) as exc:
            raise self.fail(node, f"not a valid {tag.removeprefix(_YAML)}: {exc}", loc) from None
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            number = int(value)
            if not _INT_RANGE[0] <= number <= _INT_RANGE[1]:
                raise self.fail(node, "integer out of range (more than 64 bits)", loc)
            return number
        number_f = float(value)
        if not math.isfinite(number_f):
            raise self.fail(node, f"{node.value!r} is not a number JSON can hold", loc)
        return number_f


def _check_events(yaml: YAML, text: str, file: str) -> None:
    """Refuse what the node tree would not show safely: a YAML version other than 1.2, nesting
    so deep that composing it would recurse too far, and aliases that repeat too much (each
    alias adds as many values as its anchor holds, aliases inside included)."""
    depth = 0
    count = 0  # values so far, aliases expanded
    by_aliases = 0  # of which added by aliases
    held: dict[str, int] = {}  # anchor -> how many values it holds
    opened: list[tuple[str | None, int]] = []  # open collections: (anchor, count before)
    for event in yaml.parse(text):
        if isinstance(event, DocumentStartEvent) and event.version not in (None, (1, 2)):
            version = ".".join(map(str, event.version))
            raise _fail(
                file, *_at(event), f"%YAML {version}: a blueprint is YAML 1.2 (drop the directive)"
            )
        if isinstance(event, ScalarEvent):
            count += 1
            if event.anchor:
                held[event.anchor] = 1
        elif isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _fail(file, *_at(event), f"nested more than {MAX_DEPTH} levels deep")
            opened.append((event.anchor, count))
            count += 1
        elif isinstance(event, CollectionEndEvent):
            depth -= 1
            anchor, before = opened.pop()
            if anchor:
                held[anchor] = count - before
        elif isinstance(event, AliasEvent):
            added = held.get(event.anchor, 0)  # 0: undefined, or an alias inside its anchor
            count += added
            by_aliases += added
            if by_aliases > MAX_ALIAS_VALUES:
                raise _fail(
                    file,
                    *_at(event),
                    f"aliases expand to more than {MAX_ALIAS_VALUES} values: write the values "
                    "out, or use fewer aliases (no alias bombs)",
                )


class _NotYaml(Exception):
    """ruamel.yaml could not read the text (a located syntax problem)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _parse_yaml(text: str, file: str) -> tuple[Any, SourceLocator]:
    locator = SourceLocator(file)
    yaml = YAML(typ="safe", pure=True)
    try:
        _check_events(yaml, text, file)
        node = YAML(typ="safe", pure=True).compose(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            what = f"{exc.problem} ({exc.context})"
        raise _NotYaml(Problem(file, line, col, "", f"invalid YAML: {what}")) from None
    except YAMLError as exc:
        raise _NotYaml(Problem(file, 1, 1, "", f"invalid YAML: {exc}")) from None
    if node is None:
        return None, locator
    locator.marks[()] = locator.values[()] = _at(node)
    return _Converter(yaml, locator).convert(node, (), 0), locator


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _check_plain(data: Any, file: str, depth: int = 0) -> None:
    """The limits :class:`_Converter` enforces, for JSON data read without positions."""
    if depth > MAX_DEPTH:
        raise _fail(file, 1, 1, f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(data, bool) or not isinstance(data, int | dict | list):
        return
    if isinstance(data, int):
        if not _INT_RANGE[0] <= data <= _INT_RANGE[1]:
            raise _fail(file, 1, 1, "integer out of range (more than 64 bits)")
        return
    for value in data.values() if isinstance(data, dict) else data:
        _check_plain(value, file, depth + 1)


def _parse_json(text: str, file: str) -> tuple[Any, SourceLocator]:
    try:
        data = json.loads(text, parse_constant=_no_constants, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise _fail(file, exc.lineno, exc.colno, f"invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise _fail(file, 1, 1, f"nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:  # a constant or a duplicate key, without a position
        try:
            _parse_yaml(text, file)  # finds the duplicate key with its position
        except _NotYaml:
            pass
        raise _fail(file, 1, 1, f"invalid JSON: {exc}") from None
    try:
        positioned, locator = _parse_yaml(text, file)
    except _NotYaml:  # valid JSON that is not valid YAML 1.2 (rare): no positions then
        _check_plain(data, file)
        return data, SourceLocator(file)
    # JSON decides the values (ruamel.yaml does not join surrogate pairs, for one)
    return (positioned if positioned == data else data), locator


def parse_source(text: str, file: str, *, json_syntax: bool = False) -> tuple[Any, SourceLocator]:
    """Parse ``text`` (YAML 1.2, or strict JSON with ``json_syntax``) into plain data and its
    locator. ``file`` names it in problems. Raises :class:`BlueprintInvalid`."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise _fail(file, 1, 1, f"file too large: {size} bytes (at most {MAX_BYTES})")
    if json_syntax:
        return _parse_json(text, file)
    try:
        return _parse_yaml(text, file)
    except _NotYaml as exc:
        raise BlueprintInvalid([exc.problem]) from None


def is_json_file(path: str | Path) -> bool:
    return str(path).lower().endswith(".json")


def read_source(path: Path) -> tuple[Any, SourceLocator]:
    """Read the blueprint file at ``path`` (``.json``: JSON, else YAML 1.2). Raises
    :class:`BlueprintInvalid`."""
    file = str(path)
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise _fail(file, 1, 1, "file not found") from None
    except OSError as exc:
        raise _fail(file, 1, 1, f"cannot read the file: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise _fail(file, 1, 1, f"file too large: more than {MAX_BYTES} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _fail(file, line, 1, f"not UTF-8 text: {exc.reason}") from None
    return parse_source(text, file, json_syntax=is_json_file(path))


__all__ = [
    "MAX_ALIAS_VALUES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "SourceLocator",
    "is_json_file",
    "parse_source",
    "read_source",
]
