"""YAML documents that remember where each value came from, for line-precise errors.

:func:`load_yaml` parses a file into plain Python data plus a :class:`Locator` mapping each key
path to its line and column. :func:`validate` runs a pydantic model over the data and turns every
validation error into ``file:line:col: key.path: message``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from ghapplets.exceptions import ConfigError

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]

# pydantic names an enum's members as ``<ConnectorKind.GITHUB: 'github'>``; a user wrote 'github'
_ENUM_MEMBER = re.compile(r"<[A-Za-z_][\w.]*: ('[^'<>]*')>")


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    column: int
    where: str
    message: str

    def __str__(self) -> str:
        where = f"{self.where}: " if self.where else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"


@dataclass
class Locator:
    file: str
    marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def find(self, loc: Loc) -> tuple[int, int]:
        """The line/column of ``loc``, or of its nearest ancestor that exists."""
        for end in range(len(loc), -1, -1):
            mark = self.marks.get(tuple(loc[:end]))
            if mark:
                return mark
        return (1, 1)

    def problem(self, loc: Loc, message: str) -> Problem:
        line, col = self.find(loc)
        return Problem(self.file, line, col, ".".join(str(p) for p in loc), message)


def _to_python(node: yaml.Node, loc: Loc, locator: Locator, loader: yaml.SafeLoader) -> Any:
    locator.marks[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            if isinstance(key, list | dict):
                raise ConfigError([locator.problem(loc, "a mapping key must be a scalar")])
            if key in out:
                line = key_node.start_mark.line + 1
                col = key_node.start_mark.column + 1
                raise ConfigError(
                    [
                        Problem(
                            locator.file,
                            line,
                            col,
                            ".".join(map(str, loc)),
                            f"duplicate key {key!r}",
                        )
                    ]
                )
            sub = (*loc, key)
            out[key] = _to_python(value_node, sub, locator, loader)
            # point errors about a key at the key itself
            locator.marks[sub] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*loc, i), locator, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)  # type: ignore[no-untyped-call]


def parse_yaml(text: str, file: str) -> tuple[Any, Locator]:
    locator = Locator(file)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()  # type: ignore[no-untyped-call]
        if node is None:
            return None, locator
        return _to_python(node, (), locator, loader), locator
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ConfigError([Problem(file, line, col, "", f"invalid YAML: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(file, 1, 1, "", f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()  # type: ignore[no-untyped-call]


def load_yaml(path: Path) -> tuple[Any, Locator]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem(str(path), 1, 1, "", "file not found")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(str(path), 1, 1, "", f"not UTF-8 text: {exc}")]) from None
    return parse_yaml(text, str(path))


def _in_file(data: Any, loc: Loc, missing: bool) -> Loc:
    """``loc`` as a key path of the file: without the tags pydantic adds to the location of an
    error inside a member of a tagged union (``connectors.j.jira.token`` is ``connectors.j.token``
    in the file). A tag is a name that is not a key of the mapping it would index (or indexes a
    value that is no mapping); a missing key (``missing``) is the last part of its location, and
    kept."""
    out: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        absent = not isinstance(node, dict | list) or (isinstance(node, dict) and part not in node)
        if absent and isinstance(part, str):
            if not (missing and i == len(loc) - 1 and isinstance(node, dict)):
                continue
        out.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(out)


def validate(model: type[M], data: Any, locator: Locator, base: Loc = ()) -> M:
    """Validate ``data`` (found at ``base`` in the file) against ``model``, with located errors."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([locator.problem(base, "expected a mapping of keys to values")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            [
                locator.problem(
                    (*base, *_in_file(data, err["loc"], err["type"] == "missing")),
                    _ENUM_MEMBER.sub(r"\1", err["msg"]),
                )
                for err in exc.errors()
            ]
        ) from None
